export { repairIndex, type RepairIndexOptions, type RepairIndexResult } from './repair-index.js';
export { repairPacks, resolvePackIds, type RepairPacksOptions, type RepairPacksResult } from './repair-packs.js';
export { repairSnapshots, MAX_LISTED_REMOVED, type RepairSnapshotsOptions, type RepairSnapshotsResult } from './repair-snapshots.js';
export { prune, parseMaxUnused, DEFAULT_MAX_UNUSED, type MaxUnused, type PruneOptions, type PruneResult } from './prune.js';
export { findUsedBlobs, type UsedBlobs } from './used-blobs.js';
export { copySnapshots, type CopyOptions, type CopyResult } from './copy.js';
