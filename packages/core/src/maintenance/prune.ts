/**
 * `kiwi prune`: remove the data no snapshot uses.
 *
 * 1. Under an exclusive lock, the index is read and the packs listed; a repository with
 *    damage that prune could make worse (a damaged index file, a missing or wrongly sized
 *    pack, a snapshot or tree that cannot be read) is refused, naming the repair command.
 * 2. The snapshots' trees are walked (no file data is read) to mark the used blobs.
 * 3. Packs holding no used blob are deleted. Packs holding some unused data are repacked
 *    (their used blobs copied into new packs) while the unused data left would exceed
 *    `maxUnused` — by default 5 % of the used data — the most wasteful packs first.
 * 4. Crash-safe order: new packs → new index files superseding all old ones → old index
 *    files removed → old packs removed. A prune killed at any point leaves a valid
 *    repository; what it leaves behind is unindexed packs (reclaimable), which the next prune
 *    removes and which a backup in between may adopt harmlessly.
 *
 * Reads: the index files, the trees, and the used blobs of the packs it repacks (repack.ts).
 */
import { IntegrityError } from '../repository/errors.js';
import type { Repository } from '../repository/repository.js';
import type { BlobLocation } from '../repository/types.js';
import { handlePath, removeFiles, type Storage } from '../storage/types.js';
import { rawPacksFromIndex, removeIndexFiles, writeIndexFiles } from './index-files.js';
import { repackBlobs } from './repack.js';
import { findUsedBlobs } from './used-blobs.js';

/** How much unused data prune may leave: a share of the used data, an absolute size, or any amount. */
export type MaxUnused = { kind: 'percent'; value: number } | { kind: 'bytes'; value: number } | { kind: 'unlimited' };

export const DEFAULT_MAX_UNUSED: MaxUnused = { kind: 'percent', value: 5 };

/** Parse `5%`, `unlimited`, or a size (`500M`, `2G`, `1024`; k/m/g/t, powers of 1024). */
export function parseMaxUnused(text: string): MaxUnused {
  const t = text.trim().toLowerCase();
  if (t === 'unlimited') return { kind: 'unlimited' };
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(t);
  if (pct) {
    const value = Number(pct[1]);
    if (!(value >= 0 && value < 100)) throw new RangeError(`--max-unused ${text}: a percentage must be at least 0 and below 100`);
    return { kind: 'percent', value };
  }
  const size = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/.exec(t);
  if (size) {
    const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[size[2] as '' | 'k' | 'm' | 'g' | 't'];
    return { kind: 'bytes', value: Math.floor(Number(size[1]) * mult) };
  }
  throw new RangeError(`--max-unused ${text}: expected a percentage (5%), a size (500M, 2G) or "unlimited"`);
}

export interface PruneOptions {
  maxUnused?: MaxUnused;
  /** Work out and report what would be deleted and repacked; change nothing. */
  dryRun?: boolean;
  onProgress?: (p: { phase: 'trees' | 'repack' | 'index' | 'delete'; done: number; total: number }) => void;
  /** The caller holds the repository's exclusive lock already (e.g. `forget --prune`). */
  noLock?: boolean;
}

export interface PruneResult {
  dryRun: boolean;
  snapshots: number;
  packs: { total: number; deleted: number; repacked: number; kept: number; created: number };
  blobs: { used: number; unused: number; repacked: number };
  bytes: {
    /** All pack bytes before. */
    total: number;
    /** Bytes of used blobs. */
    used: number;
    /** Bytes that are not used blobs (unused blobs, headers of packs), before. */
    unused: number;
    /** Bytes of packs deleted (including those repacked), minus the bytes of new packs. */
    freed: number;
    /** Bytes of used blobs copied into new packs. */
    repacked: number;
    /** Unused bytes left in the packs kept. */
    unusedAfter: number;
  };
  deletedPacks: string[];
  repackedPacks: string[];
  indexFiles: { written: number; removed: number };
  /** Temporary files that interrupted saves left behind (older than 15 minutes), removed. */
  temporaries?: { files: number; bytes: number };
}

interface PackStat {
  id: string;
  no: number;
  size: number;
  usedBytes: number;
  usedBlobs: number;
  blobs: number;
}

export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  if (opts.noLock) return pruneLocked(repo, opts);
  const lock = await repo.lock('exclusive');
  try {
    return await pruneLocked(repo, opts);
  } finally {
    await lock.release();
  }
}

async function pruneLocked(repo: Repository, opts: PruneOptions): Promise<PruneResult> {
  const { storage, keys, config, index, reader } = repo.internals();
  const progress = opts.onProgress ?? (() => undefined);
  const loaded = await repo.loadIndex({ verifyPacks: true });
  // Every damaged index file this repository object has met, not only those of this load: a file found
  // damaged by an earlier load (a library caller's, say) is not read, nor reported, again.
  refuseDamage(repo, { ...loaded, damagedFiles: repo.internals().indexLoader.damaged() });

  const snapshots = await repo.listSnapshots().catch((err: unknown) => {
    const file = err instanceof IntegrityError ? err.file : undefined;
    if (!file?.startsWith('snapshots/')) throw err;
    // What a damaged snapshot uses cannot be known: deleting anything could delete its data.
    const id = file.slice('snapshots/'.length);
    throw new IntegrityError(
      `refusing to prune: ${(err as Error).message}. What that snapshot uses cannot be known, so nothing is deleted; ` +
        `remove it with \`kiwi forget ${id.slice(0, 8)}\` (its data is then pruned like any forgotten snapshot's), or put the file back from a copy`,
      { file, cause: err },
    );
  });
  const { used } = await findUsedBlobs(repo, snapshots, (trees) => progress({ phase: 'trees', done: trees, total: 0 }));

  // The pack listing loadIndex made (each prefix is listed once).
  const sizes = new Map(repo.internals().indexLoader.lastPackListing ?? []);
  if (sizes.size === 0) for await (const f of storage.list('data')) sizes.set(f.name, f.size);

  // Per pack: used blobs and bytes.
  const stats = new Map<number, PackStat>();
  for (let e = 0; e < index.size; e++) {
    const no = index.entryPack(e);
    let s = stats.get(no);
    if (!s) {
      const id = index.packId(no);
      const size = sizes.get(id);
      if (size === undefined) continue; // written by nobody we know of: not a stored pack
      stats.set(no, (s = { id, no, size, usedBytes: 0, usedBlobs: 0, blobs: 0 }));
    }
    s.blobs++;
    if (used[e] === 1) {
      s.usedBlobs++;
      s.usedBytes += index.entryLength(e);
    }
  }
  const indexed = new Set([...stats.values()].map((s) => s.id));
  // Packs in storage that no index lists and whose header cannot be read hold nothing any snapshot uses.
  const garbage = [...sizes.keys()].filter((id) => !indexed.has(id));

  const toDelete: PackStat[] = [];
  const partial: PackStat[] = [];
  let usedTotal = 0;
  let total = 0;
  for (const s of stats.values()) {
    total += s.size;
    usedTotal += s.usedBytes;
    if (s.usedBlobs === 0) toDelete.push(s);
    else if (s.usedBytes < s.size) partial.push(s);
  }
  for (const id of garbage) total += sizes.get(id)!;

  // Repack the most wasteful partly used packs while the unused data left is above the limit.
  const limit = unusedLimit(opts.maxUnused ?? DEFAULT_MAX_UNUSED, usedTotal);
  let unusedLeft = partial.reduce((n, s) => n + (s.size - s.usedBytes), 0);
  partial.sort((a, b) => (b.size - b.usedBytes) / b.size - (a.size - a.usedBytes) / a.size || b.size - a.size);
  const toRepack: PackStat[] = [];
  for (const s of partial) {
    if (unusedLeft <= limit) break;
    toRepack.push(s);
    unusedLeft -= s.size - s.usedBytes;
  }
  const repackBytes = toRepack.reduce((n, s) => n + s.usedBytes, 0);
  const result: PruneResult = {
    dryRun: Boolean(opts.dryRun),
    snapshots: snapshots.length,
    packs: { total: stats.size + garbage.length, deleted: toDelete.length + garbage.length, repacked: toRepack.length, kept: stats.size - toDelete.length - toRepack.length, created: 0 },
    blobs: {
      used: [...stats.values()].reduce((n, s) => n + s.usedBlobs, 0),
      unused: [...stats.values()].reduce((n, s) => n + s.blobs - s.usedBlobs, 0),
      repacked: toRepack.reduce((n, s) => n + s.usedBlobs, 0),
    },
    bytes: {
      total,
      used: usedTotal,
      unused: total - usedTotal,
      freed: toDelete.reduce((n, s) => n + s.size, 0) + garbage.reduce((n, id) => n + sizes.get(id)!, 0) + toRepack.reduce((n, s) => n + s.size - s.usedBytes, 0),
      repacked: repackBytes,
      unusedAfter: unusedLeft,
    },
    deletedPacks: [...toDelete.map((s) => s.id), ...garbage],
    repackedPacks: toRepack.map((s) => s.id),
    indexFiles: { written: 0, removed: 0 },
  };
  if (opts.dryRun) return result;
  if (result.deletedPacks.length === 0 && toRepack.length === 0) {
    await removeTemporaries(storage, result);
    return result;
  }

  // 1. new packs: the used blobs of the packs being repacked, stored again. They are built in
  //    temporary files, not in memory (a prune's memory stays small however much it repacks).
  await repo.spillPacks();
  // Per pack repacked, the entry numbers of its used blobs (their locations are made when its turn comes).
  const usedOf = new Map<number, number[]>(toRepack.map((s) => [s.no, []]));
  for (let e = 0; e < used.length; e++) if (used[e] === 1) usedOf.get(index.entryPack(e))?.push(e);
  // Every pack that goes (repacked or deleted) is retired, so that saveBlob never deduplicates a
  // repacked blob against a copy that is about to be deleted (nor reports it as a lost copy).
  for (const s of toRepack) index.retirePack(s.no);
  for (const s of toDelete) index.retirePack(s.no);
  let repacked = 0;
  const newBytes = await repackBlobs(
    repo,
    toRepack.map((s) => ({ pack: s.id, locs: () => usedOf.get(s.no)!.map((e) => index.get(e)) })),
    () => progress({ phase: 'repack', done: ++repacked, total: toRepack.length }),
  );
  await repo.flush();
  // The plan counted the repacked packs' unused bytes as freed; their used bytes were stored again
  // as `newBytes` (copied as stored: the same, less the blobs that another kept pack holds too).
  result.bytes.freed += repackBytes - newBytes;

  // 2. new index files listing every pack kept (and the new ones), superseding all old files; 3. old
  //    files removed. The content comes from the in-memory index (every index file, every adopted
  //    pack, every new pack), so no index file is read or listed again.
  const gone = new Set(result.deletedPacks.concat(result.repackedPacks));
  const keep = rawPacksFromIndex(index, (no) => !gone.has(index.packId(no)));
  result.packs.created = keep.filter((p) => !stats.has(index.findPack(p.id))).length;
  progress({ phase: 'index', done: 0, total: 1 });
  const oldNames = [...repo.internals().indexLoader.loadedFiles];
  const written = await writeIndexFiles(storage, keys, config.compression.level, keep, oldNames);
  const fresh = new Set(written);
  const toRemove = oldNames.filter((n) => !fresh.has(n));
  await removeIndexFiles(storage, toRemove);
  result.indexFiles = { written: written.length, removed: toRemove.length };
  progress({ phase: 'index', done: 1, total: 1 });

  // 4. old packs removed.
  const doomed = [...gone];
  await removeTemporaries(storage, result);
  progress({ phase: 'delete', done: 0, total: doomed.length });
  for (let i = 0; i < doomed.length; i += 1000) {
    await removeFiles(storage, doomed.slice(i, i + 1000).map((name) => ({ type: 'data' as const, name })));
    progress({ phase: 'delete', done: Math.min(i + 1000, doomed.length), total: doomed.length });
  }
  return result;
}

/** Temporary files left by saves a crash interrupted: older than this, no save still writes them. */
const STALE_TEMPORARY_MS = 15 * 60 * 1000;

/** Remove what interrupted saves left behind (stores that write a temporary file, then rename it). */
async function removeTemporaries(storage: Storage, result: PruneResult): Promise<void> {
  if (!storage.removeTemporaries) return;
  const r = await storage.removeTemporaries(STALE_TEMPORARY_MS);
  result.temporaries = r;
  result.bytes.freed += r.bytes;
}

function unusedLimit(max: MaxUnused, used: number): number {
  switch (max.kind) {
    case 'unlimited':
      return Infinity;
    case 'bytes':
      return max.value;
    case 'percent':
      return (used * max.value) / 100;
  }
}

/** Refuse to prune around damage: name it and the command that repairs it. */
function refuseDamage(repo: Repository, loaded: { damagedFiles: Array<{ file: string }>; missingPacks: string[]; wrongSizePacks: Array<{ pack: string }> }): void {
  const { index } = repo.internals();
  const bad: string[] = [];
  for (const id of index.packList()) {
    if (index.packInfo(index.findPack(id)).bad) bad.push(handlePath({ type: 'data', name: id }));
  }
  if (loaded.damagedFiles.length > 0) {
    throw new IntegrityError(`refusing to prune: ${loaded.damagedFiles.map((d) => d.file).join(', ')} cannot be read. Run \`kiwi repair index\` first`, { file: loaded.damagedFiles[0]!.file });
  }
  if (bad.length > 0) {
    throw new IntegrityError(
      `refusing to prune: ${bad.length} pack${bad.length === 1 ? ' is' : 's are'} missing or damaged (${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ', …' : ''}). Run \`kiwi check\`, then \`kiwi repair index\` (missing packs) or \`kiwi repair packs <id>\` (damaged packs)`,
      { file: bad[0]! },
    );
  }
}
