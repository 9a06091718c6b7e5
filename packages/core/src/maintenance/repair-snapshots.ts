/**
 * `kiwi repair snapshots`: for each snapshot that references lost blobs (not in the index, or
 * stored only in packs that are missing or known damaged), write a new snapshot without the
 * affected files: a file whose content cannot be read back entirely is left out, a directory
 * whose listing cannot be read becomes empty. The new snapshot names the original and lists
 * what was removed (`repaired` in the snapshot file); the original is kept unless `forget`.
 *
 * What "lost" means here is what the index knows: run `check --read-data` and `repair packs`
 * first, so that blobs damaged inside a pack are known (repair packs drops them from the
 * index). Unchanged subtrees are not rewritten (their tree blobs are reused as they are).
 */
import type { Repository } from '../repository/repository.js';
import type { BlobId, Node, Snapshot, Tree } from '../repository/types.js';
import { invalidNodeCount, invalidNodes } from '../repository/validate.js';

export interface RepairSnapshotsOptions {
  /** Only these snapshots (full ids); default all. */
  snapshotIds?: readonly string[];
  /** Remove each original snapshot once its repaired copy is saved. */
  forget?: boolean;
  /** Work out what would change; write nothing. */
  dryRun?: boolean;
  /** Called for each entry left out. */
  onRemoved?: (snapshotId: string, path: string, reason: string) => void;
}

export interface RepairSnapshotsResult {
  snapshots: Array<{
    id: string;
    /** The repaired snapshot (absent for a dry run, or when nothing needed repair). */
    newId?: string;
    /** Paths left out (at most {@link MAX_LISTED_REMOVED}; `removedCount` has them all). */
    removed: string[];
    removedCount: number;
    /** The snapshot could not be repaired at all (its root tree is lost). */
    unrepairable?: string;
    forgotten?: boolean;
  }>;
}

/** Paths listed in a repaired snapshot's `repaired.removed` (all are counted). */
export const MAX_LISTED_REMOVED = 1000;

export async function repairSnapshots(repo: Repository, opts: RepairSnapshotsOptions = {}): Promise<RepairSnapshotsResult> {
  const lock = await repo.lock(opts.forget && !opts.dryRun ? 'exclusive' : 'shared');
  try {
    return await repairLocked(repo, opts);
  } finally {
    await lock.release();
  }
}

async function repairLocked(repo: Repository, opts: RepairSnapshotsOptions): Promise<RepairSnapshotsResult> {
  await repo.loadIndex({ verifyPacks: true });
  const all = await repo.listSnapshots();
  const wanted = opts.snapshotIds ? all.filter((s) => opts.snapshotIds!.includes(s.id)) : all;
  const result: RepairSnapshotsResult = { snapshots: [] };
  /** Rewritten subtrees: old tree id → new id and what was removed below it (relative paths). */
  const memo = new Map<BlobId, { id: BlobId | null; removed: Array<{ path: string; reason: string }> }>();

  const rewrite = async (treeId: BlobId): Promise<{ id: BlobId | null; removed: Array<{ path: string; reason: string }> }> => {
    const known = memo.get(treeId);
    if (known) return known;
    let tree: Tree;
    try {
      tree = await repo.loadTree(treeId);
    } catch (err) {
      const r = { id: null, removed: [{ path: '', reason: `its listing cannot be read: ${(err as Error).message}` }] };
      memo.set(treeId, r);
      return r;
    }
    const nodes: Node[] = [];
    const removed: Array<{ path: string; reason: string }> = [];
    let changed = false;
    // Entries the tree validator refused (not in tree.nodes) are left out of the new tree.
    if (invalidNodeCount(tree) > 0) {
      changed = true;
      for (const bad of invalidNodes(tree)) removed.push({ path: bad.name ?? `#${bad.index}`, reason: `invalid entry: ${bad.reason}` });
      const unlisted = invalidNodeCount(tree) - invalidNodes(tree).length;
      if (unlisted > 0) removed.push({ path: '', reason: `and ${unlisted} more invalid entries` });
    }
    for (const node of tree.nodes) {
      if (node.type === 'file') {
        const lost = (node.content ?? []).find((c) => !repo.hasBlob('data', c));
        if (lost !== undefined) {
          changed = true;
          removed.push({ path: node.name, reason: `data blob ${lost} is lost` });
          continue;
        }
      } else if (node.type === 'dir' && typeof node.subtree === 'string') {
        const sub = await rewrite(node.subtree);
        for (const r of sub.removed) {
          if (removed.length < MAX_LISTED_REMOVED * 4) removed.push({ path: r.path ? `${node.name}/${r.path}` : `${node.name}/`, reason: r.reason });
        }
        if (sub.id === null) {
          changed = true;
          nodes.push({ ...node, subtree: opts.dryRun ? node.subtree : await repo.saveTree({ nodes: [] }) });
          continue;
        }
        if (sub.id !== node.subtree) {
          changed = true;
          nodes.push({ ...node, subtree: sub.id });
          continue;
        }
      }
      nodes.push(node);
    }
    const id = !changed ? treeId : opts.dryRun ? `${treeId}~` : await repo.saveTree({ nodes });
    const r = { id, removed };
    memo.set(treeId, r);
    return r;
  };

  for (const { id, snapshot } of wanted) {
    const r = await rewrite(snapshot.tree);
    const paths = r.removed.map((x) => `/${x.path}`);
    for (const x of r.removed) opts.onRemoved?.(id, `/${x.path}`, x.reason);
    const entry: RepairSnapshotsResult['snapshots'][number] = { id, removed: paths.slice(0, MAX_LISTED_REMOVED), removedCount: paths.length };
    result.snapshots.push(entry);
    if (r.id === null) {
      entry.unrepairable = 'its root tree is lost; nothing of it can be restored (forget it)';
      continue;
    }
    if (r.id === snapshot.tree || opts.dryRun) continue;
    await repo.flush();
    const repaired: Snapshot = {
      ...snapshot,
      tree: r.id,
      original: snapshot.original ?? id,
      repaired: { time: new Date().toISOString(), from: id, removed: entry.removed, removedCount: entry.removedCount },
    };
    entry.newId = await repo.saveSnapshot(repaired);
    if (opts.forget) {
      await repo.storage.remove({ type: 'snapshot', name: id });
      entry.forgotten = true;
    }
  }
  return result;
}
