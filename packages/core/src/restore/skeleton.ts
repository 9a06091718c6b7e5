/**
 * The directory skeleton of a full restore into a fresh target: every directory of the snapshot
 * is made (mode 0700, as the traversal makes them) before the first file is written, breadth
 * first, from the same checked listings the traversal uses (names.ts: refused and duplicate names
 * are skipped; the traversal reports them).
 *
 * Why: ext4 places a new directory by the Orlov allocator and a new file in its directory's
 * group. Made while files are being created, directories land where those files are, and file
 * creation then passes over more allocated and recently freed inodes: on the bench machine,
 * 26,000 files in 520 directories took ~6 s of CPU with each directory made just before its files
 * and ~3 s with all directories made first (same process, same data, alternating; restic makes
 * its directories in a first pass too).
 *
 * The traversal then takes each directory as made (`take`): it is the restore's own (mode 0700)
 * in a directory that is its own too, so nothing is looked at again. The directories made in the
 * target itself, which others may be able to write to, are opened (O_DIRECTORY|O_NOFOLLOW) right
 * after `mkdir` and checked to be the restore's own; everything below them is made through those
 * descriptors (anchors.ts), which the traversal takes over. An interrupted restore leaves the
 * (empty) directories it had not reached yet.
 */
import { closeSync, fstatSync, mkdirSync, openSync } from 'node:fs';
import type { BlobId } from '../repository/types.js';
import { TreeLoader, type TreeSource } from '../snapshot-ops/tree-loader.js';
import { listTree } from './names.js';
import { MAX_TREE_DEPTH } from '../repository/limits.js';
import { DIR_OPEN_FLAGS, SKELETON_PATH_BYTES, anchorsAvailable, childPath, fdPath, ownMadeDirectory } from './anchors.js';

/** Directories made ahead at most (past this, the traversal makes the rest as before). */
export const SKELETON_MAX_DIRS = 100_000;
/** Directories made in the target itself at most (each holds a descriptor until the traversal takes it). */
const SKELETON_MAX_TOP = 256;
/** Stored bytes of tree blobs read ahead per level. */
const LEVEL_AHEAD_BYTES = 4 * 1024 * 1024;

/** What the traversal gets for a directory the skeleton made: its descriptor (made in the target), or true. */
export type Made = number | true;

export class Skeleton {
  /** Directories made and not yet taken by the traversal: latin1 keys of their paths below the target. */
  readonly #made = new Map<string, Made>();

  /**
   * Makes the directories of tree `rootTree` in the target (whose entries are named `rootPath/name`);
   * failures are left to the traversal.
   */
  async make(source: TreeSource, rootTree: BlobId, rootPath: Buffer, signal: AbortSignal | undefined, maxDirs = SKELETON_MAX_DIRS): Promise<void> {
    const anchors = anchorsAvailable();
    const euid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
    let level: Array<{ tree: BlobId; path: Buffer; key: string }> = [{ tree: rootTree, path: rootPath, key: '' }];
    let made = 0;
    // Directories of the next level are this deep (the traversal refuses those past MAX_TREE_DEPTH).
    let depth = 1;
    while (level.length > 0 && made < maxDirs && depth <= MAX_TREE_DEPTH) {
      signal?.throwIfAborted();
      const loader = new TreeLoader(source, LEVEL_AHEAD_BYTES, false);
      loader.want(level.map((l) => l.tree));
      const next: typeof level = [];
      try {
        for (const { tree, path, key } of level) {
          let listing;
          try {
            listing = listTree(await loader.take(tree));
          } catch {
            continue; // the traversal reports it
          }
          for (const item of listing.items) {
            const node = item.node;
            if (item.raw === undefined || node.type !== 'dir' || typeof node.subtree !== 'string') continue;
            if ((listing.counts.get(item.raw.toString('latin1')) ?? 0) > 1) continue;
            if (made >= maxDirs || (depth === 1 && made >= SKELETON_MAX_TOP)) break;
            const sub = childPath(path, item.raw);
            if (sub.length > SKELETON_PATH_BYTES) continue; // the traversal makes it on its way, name by name
            try {
              mkdirSync(sub, { mode: 0o700 });
            } catch {
              continue; // the traversal makes it (or reports why not)
            }
            made++;
            const subKey = depth === 1 ? item.raw.toString('latin1') : `${key}/${item.raw.toString('latin1')}`;
            let entry: Made = true;
            let below = sub;
            if (depth === 1 && anchors) {
              const fd = ownDirectory(sub, euid);
              if (fd === undefined) continue; // not the one just made: the traversal deals with what is there
              entry = fd;
              below = fdPath(fd);
            }
            this.#made.set(subKey, entry);
            next.push({ tree: node.subtree, path: below, key: subKey });
          }
        }
      } finally {
        loader.close();
      }
      level = next;
      depth++;
    }
  }

  /** Whether the skeleton made the directory at `key` (latin1 path below the target), and its descriptor if it has one; each is taken once. */
  take(key: string): Made | false {
    if (this.#made.size === 0) return false;
    const m = this.#made.get(key);
    if (m === undefined) return false;
    this.#made.delete(key);
    return m;
  }

  /** Whether directories are left to take (the traversal computes keys only then). */
  get pending(): boolean {
    return this.#made.size > 0;
  }

  /** Closes the descriptors the traversal did not take. */
  close(): void {
    for (const m of this.#made.values()) if (m !== true) closeSync(m);
    this.#made.clear();
  }
}

/**
 * Opens directory `path` just made (mode 0700) without following a symlink, and returns its
 * descriptor if it is the restore's own (owner `euid`, no bits for group or others); undefined if
 * someone put something else there.
 */
export function ownDirectory(path: Buffer, euid: number): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, DIR_OPEN_FLAGS);
  } catch {
    return undefined;
  }
  if (!ownMadeDirectory(fstatSync(fd), euid)) {
    closeSync(fd);
    return undefined;
  }
  return fd;
}
