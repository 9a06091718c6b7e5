/**
 * `kiwi stats`: what snapshots hold (restore size: files, directories and bytes a restore
 * writes) and what they cost (raw data: the unique blobs they reference, their plaintext and
 * stored sizes, the packs holding them, and the deduplication ratio).
 *
 * Every distinct tree is read once, however many snapshots share it, through the
 * {@link TreeLoader} read-ahead (trees of one pack arrive in a few ranged reads). Sizes are
 * summed bottom-up per tree and reused, so a hundred snapshots of a mostly unchanged tree
 * cost little more than one. As restic's `restore-size`, a file with several hard links in
 * one snapshot counts its bytes once (per device and inode).
 */
import { IntegrityError } from '../repository/errors.js';
import type { BlobId, BlobLocation, BlobType, Snapshot, Tree } from '../repository/types.js';
import { TreeLoader, type TreeSource } from '../snapshot-ops/tree-loader.js';
import { invalidNodeCount } from '../repository/validate.js';

export type StatsMode = 'restore-size' | 'raw-data';

/** What the stats need from a repository (`Repository` is one). */
export interface StatsRepository extends TreeSource {
  loadIndex?(): Promise<unknown>;
  indexStats?(): { loaded: boolean };
  lookupBlob(type: BlobType, id: BlobId): Pick<BlobLocation, 'pack' | 'length' | 'rawLength'> | undefined;
}

export interface RestoreSize {
  /** Regular files. */
  files: number;
  /** Directories (including the ancestors of the backed-up paths). */
  dirs: number;
  /** Symlinks, FIFOs, sockets, devices. */
  others: number;
  /** Bytes of file content a restore writes (hard links once). */
  bytes: number;
}

export interface RawDataStats {
  /** Distinct blobs the snapshots reference (data + tree). */
  blobs: number;
  dataBlobs: number;
  treeBlobs: number;
  /** Plaintext bytes of those blobs, and of the data blobs alone. */
  rawBytes: number;
  dataRawBytes: number;
  /** Bytes they take in packs (compressed and encrypted). */
  storedBytes: number;
  /** Packs holding at least one of them. */
  packs: number;
  /** Referenced blobs that are not in the index (a damaged repository: `kiwi check` says more). */
  missingBlobs: number;
  /** Logical bytes (restore size of all snapshots) per plaintext byte of unique data; undefined without data. */
  dedupRatio: number | undefined;
  /** Plaintext bytes per stored byte (compression, net of encryption overhead); undefined without blobs. */
  compressionRatio: number | undefined;
}

export interface SnapshotStatsResult {
  mode: StatsMode;
  snapshots: Array<{ id: string; size: RestoreSize }>;
  /** Sum over the snapshots (a file in two snapshots counts twice, as two restores would write it). */
  total: RestoreSize;
  /** Distinct trees read. */
  trees: number;
  /** Tree entries the validator refused (left out of every count; `kiwi check` names them). */
  invalidEntries: number;
  /** With `raw-data`. */
  raw?: RawDataStats;
}

export interface SnapshotStatsOptions {
  mode?: StatsMode;
  /** Stored bytes of trees read ahead (default 32 MiB). */
  readAheadBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: { treesDone: number; treesKnown: number }) => void;
}

interface TreeSummary {
  files: number;
  dirs: number;
  others: number;
  bytes: number;
  /** Files with more than one link: `dev:inode` and size (counted once per snapshot). */
  links: Array<[string, number]> | undefined;
  /** Sub-directory trees, once per directory that has them. */
  subtrees: BlobId[];
}

/** Hard cap on the directory depth followed (a deeper tree is damage, not data). */
const MAX_DEPTH = 100_000;

function summarize(tree: Tree, id: BlobId, dataBlobs: Set<BlobId> | undefined): TreeSummary {
  const s: TreeSummary = { files: 0, dirs: 0, others: 0, bytes: 0, links: undefined, subtrees: [] };
  for (const n of tree.nodes) {
    if (n.type === 'dir') {
      s.dirs++;
      if (typeof n.subtree === 'string') s.subtrees.push(n.subtree);
      else if (n.subtree !== undefined) throw new IntegrityError(`tree blob ${id}: directory ${JSON.stringify(n.name)} has an invalid subtree`, { blobId: id });
      continue;
    }
    if (n.type !== 'file') {
      s.others++;
      continue;
    }
    s.files++;
    const size = Number.isSafeInteger(n.size) && n.size >= 0 ? n.size : 0;
    if (typeof n.links === 'number' && n.links > 1) (s.links ??= []).push([`${n.dev}:${n.inode}`, size]);
    else s.bytes += size;
    if (dataBlobs && Array.isArray(n.content)) for (const c of n.content) if (typeof c === 'string') dataBlobs.add(c);
  }
  return s;
}

/**
 * Walk the snapshots' trees and count. Loads the index first when needed. A tree that cannot
 * be read fails the whole run (with the error naming the blob and pack).
 */
export async function snapshotStats(
  repository: StatsRepository,
  snapshots: ReadonlyArray<{ id: string; snapshot: Pick<Snapshot, 'tree'> }>,
  options: SnapshotStatsOptions = {},
): Promise<SnapshotStatsResult> {
  const mode = options.mode ?? 'restore-size';
  if (repository.loadIndex && (!repository.indexStats || !repository.indexStats().loaded)) await repository.loadIndex();
  const dataBlobs = mode === 'raw-data' ? new Set<BlobId>() : undefined;

  // 1. Read every distinct tree once, breadth first, with the read-ahead fed a window ahead.
  const summaries = new Map<BlobId, TreeSummary>();
  const queue: BlobId[] = [];
  const queued = new Set<BlobId>();
  const enqueue = (id: BlobId) => {
    if (queued.has(id)) return;
    queued.add(id);
    queue.push(id);
  };
  for (const { snapshot } of snapshots) enqueue(snapshot.tree);
  const loader = new TreeLoader(repository, options.readAheadBytes ?? 32 * 1024 * 1024, false);
  const WINDOW = 2048;
  let wantedUpTo = 0;
  let invalidEntries = 0;
  try {
    for (let i = 0; i < queue.length; i++) {
      options.signal?.throwIfAborted();
      if (i >= wantedUpTo - WINDOW / 2) {
        loader.want(queue.slice(i, i + WINDOW));
        wantedUpTo = i + WINDOW;
      }
      const id = queue[i]!;
      const tree = await loader.take(id);
      invalidEntries += invalidNodeCount(tree);
      const s = summarize(tree, id, dataBlobs);
      summaries.set(id, s);
      for (const sub of s.subtrees) enqueue(sub);
      if ((i & 255) === 0) options.onProgress?.({ treesDone: i + 1, treesKnown: queue.length });
    }
  } finally {
    loader.close();
  }
  options.onProgress?.({ treesDone: queue.length, treesKnown: queue.length });

  // 2. Sizes bottom-up, each tree once (an explicit stack: no recursion limit on deep trees).
  type Agg = Omit<TreeSummary, 'subtrees'>;
  const memo = new Map<BlobId, Agg>();
  const aggregate = (root: BlobId): Agg => {
    const stack: BlobId[] = [root];
    const onStack = new Set<BlobId>([root]);
    while (stack.length > 0) {
      const id = stack[stack.length - 1]!;
      if (memo.has(id)) {
        stack.pop();
        onStack.delete(id);
        continue;
      }
      const s = summaries.get(id)!;
      let pending = false;
      for (const sub of s.subtrees) {
        if (memo.has(sub)) continue;
        if (onStack.has(sub)) throw new IntegrityError(`tree blob ${sub} contains itself (a cycle): the repository is damaged`, { blobId: sub });
        if (stack.length >= MAX_DEPTH) throw new IntegrityError(`tree blob ${id}: directories nested deeper than ${MAX_DEPTH} levels`, { blobId: id });
        stack.push(sub);
        onStack.add(sub);
        pending = true;
      }
      if (pending) continue;
      const a: Agg = { files: s.files, dirs: s.dirs, others: s.others, bytes: s.bytes, links: s.links };
      for (const sub of s.subtrees) {
        const c = memo.get(sub)!;
        a.files += c.files;
        a.dirs += c.dirs;
        a.others += c.others;
        a.bytes += c.bytes;
        if (c.links) a.links = a.links ? [...a.links, ...c.links] : c.links;
      }
      memo.set(id, a);
      stack.pop();
      onStack.delete(id);
    }
    return memo.get(root)!;
  };

  const result: SnapshotStatsResult = { mode, snapshots: [], total: { files: 0, dirs: 0, others: 0, bytes: 0 }, trees: summaries.size, invalidEntries };
  for (const { id, snapshot } of snapshots) {
    const a = aggregate(snapshot.tree);
    let bytes = a.bytes;
    if (a.links) {
      const seen = new Set<string>();
      for (const [key, size] of a.links) {
        if (seen.has(key)) continue;
        seen.add(key);
        bytes += size;
      }
    }
    const size: RestoreSize = { files: a.files, dirs: a.dirs, others: a.others, bytes };
    result.snapshots.push({ id, size });
    result.total.files += size.files;
    result.total.dirs += size.dirs;
    result.total.others += size.others;
    result.total.bytes += size.bytes;
  }

  if (dataBlobs) {
    const raw: RawDataStats = {
      blobs: 0,
      dataBlobs: 0,
      treeBlobs: 0,
      rawBytes: 0,
      dataRawBytes: 0,
      storedBytes: 0,
      packs: 0,
      missingBlobs: 0,
      dedupRatio: undefined,
      compressionRatio: undefined,
    };
    const packs = new Set<string>();
    const count = (type: BlobType, ids: Iterable<BlobId>) => {
      for (const id of ids) {
        const loc = repository.lookupBlob(type, id);
        if (!loc) {
          raw.missingBlobs++;
          continue;
        }
        raw.blobs++;
        if (type === 'data') {
          raw.dataBlobs++;
          raw.dataRawBytes += loc.rawLength;
        } else raw.treeBlobs++;
        raw.rawBytes += loc.rawLength;
        raw.storedBytes += loc.length;
        packs.add(loc.pack);
      }
    };
    count('data', dataBlobs);
    count('tree', summaries.keys());
    raw.packs = packs.size;
    if (raw.dataRawBytes > 0) raw.dedupRatio = result.total.bytes / raw.dataRawBytes;
    if (raw.storedBytes > 0) raw.compressionRatio = raw.rawBytes / raw.storedBytes;
    result.raw = raw;
  }
  return result;
}
