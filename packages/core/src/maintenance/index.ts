export { repairIndex, type RepairIndexOptions, type RepairIndexResult } from './repair-index.js';
export { repairPacks, resolvePackIds, type RepairPacksOptions, type RepairPacksResult } from './repair-packs.js';
export { repairSnapshots, MAX_LISTED_REMOVED, type RepairSnapshotsOptions, type RepairSnapshotsResult } from './repair-snapshots.js';
