/**
 * Which blobs the snapshots use: a walk of every snapshot's trees (each distinct tree read
 * once, in batches, through the {@link TreeLoader}), marking the index entry of each used
 * blob — the copy that is kept. No file data is read.
 *
 * The result is a bitmap over index entry numbers (one byte per indexed blob location), so
 * memory stays proportional to the index, never to the number of files.
 */
import { IntegrityError } from '../repository/errors.js';
import type { Repository } from '../repository/repository.js';
import type { BlobId, Snapshot } from '../repository/types.js';
import { TreeLoader } from '../snapshot-ops/tree-loader.js';
import { invalidNodeCount, invalidNodes } from '../repository/validate.js';

/** Stored bytes of trees read ahead and not yet walked. */
const TREES_AHEAD_BYTES = 32 * 1024 * 1024;

export interface UsedBlobs {
  /** `used[e] === 1` for the index entry kept for each used blob. */
  used: Uint8Array;
  /** Distinct trees walked. */
  trees: number;
  /** Distinct data blobs used. */
  dataBlobs: number;
}

/**
 * Mark the blobs of `snapshots`. A tree that cannot be read or has entries the tree validator
 * refuses, or a blob no usable copy of which is indexed, fails with an {@link IntegrityError} naming it and the snapshot: deleting data
 * around a damaged snapshot could delete what a repair still needs.
 */
export async function findUsedBlobs(
  repo: Repository,
  snapshots: ReadonlyArray<{ id: string; snapshot: Snapshot }>,
  onProgress?: (trees: number) => void,
): Promise<UsedBlobs> {
  const { index } = repo.internals();
  const used = new Uint8Array(index.size);
  const loader = new TreeLoader(repo, TREES_AHEAD_BYTES, false);
  let trees = 0;
  let dataBlobs = 0;
  const mark = (type: 'data' | 'tree', id: BlobId, snapshot: string, path: string): boolean => {
    const e = index.find(type, id);
    if (e < 0) {
      throw new IntegrityError(
        `snapshot ${snapshot.slice(0, 8)} uses ${type} blob ${id} (${path}), which has no readable copy in the repository: run \`kiwi check\`, then \`kiwi repair index\` / \`kiwi repair snapshots\``,
        { blobId: id },
      );
    }
    if (used[e] === 1) return false;
    used[e] = 1;
    if (type === 'data') dataBlobs++;
    return true;
  };
  try {
    for (const { id: snap, snapshot } of snapshots) {
      if (!mark('tree', snapshot.tree, snap, '/')) continue;
      // Breadth first, so trees are taken in the order the loader reads them ahead.
      const queue: Array<{ id: BlobId; path: string }> = [{ id: snapshot.tree, path: '/' }];
      loader.want([snapshot.tree]);
      for (let q = 0; q < queue.length; q++) {
        const { id, path } = queue[q]!;
        queue[q] = undefined as never; // let walked entries go
        let tree;
        try {
          tree = await loader.take(id);
        } catch (err) {
          // A storage failure (a read error, an unreachable store) is not damage: passed on as it is,
          // so that it is reported as what it is (and exits as such), not with a repair to run.
          if (!(err instanceof IntegrityError)) throw err;
          throw new IntegrityError(`snapshot ${snap.slice(0, 8)}: the tree of ${path} (${id}) cannot be read: ${(err as Error).message}; run \`kiwi check\``, { blobId: id, cause: err });
        }
        // Entries the tree validator refused are not in `nodes`: the blobs they name would look
        // unused. Deleting around them could delete what a repair still needs.
        const invalid = invalidNodes(tree)[0];
        if (invalid) {
          throw new IntegrityError(
            `snapshot ${snap.slice(0, 8)}: the tree of ${path} (${id}) has ${invalidNodeCount(tree)} invalid entr${invalidNodeCount(tree) === 1 ? 'y' : 'ies'} (entry ${invalid.index}${invalid.name !== undefined ? `, ${JSON.stringify(invalid.name)}` : ''}: ${invalid.reason}); run \`kiwi check\``,
            { blobId: id },
          );
        }
        trees++;
        if (trees % 256 === 0) onProgress?.(trees);
        const subs: BlobId[] = [];
        for (const node of tree.nodes) {
          const child = path === '/' ? `/${node.name}` : `${path}/${node.name}`;
          if (node.type === 'file') {
            for (const c of node.content ?? []) mark('data', c, snap, child);
          } else if (node.type === 'dir' && typeof node.subtree === 'string') {
            if (mark('tree', node.subtree, snap, child)) {
              queue.push({ id: node.subtree, path: child });
              subs.push(node.subtree);
            }
          }
        }
        if (subs.length > 0) loader.want(subs);
      }
    }
  } finally {
    loader.close();
  }
  onProgress?.(trees);
  return { used, trees, dataBlobs };
}
