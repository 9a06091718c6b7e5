/**
 * Change detection against the parent snapshot (the "compare with parent" stage of a backup): a
 * directory's listing in the parent, whether a file is unchanged, and whether a directory's new
 * entries are exactly its parent's (then its tree blob is reused as it is, without encoding,
 * hashing or storing it again).
 */
import type { BlobId, Node, Tree } from '../repository/types.js';
import { invalidNodeCount } from '../repository/validate.js';
import { nodeKey } from './node.js';

/** A directory as the parent snapshot has it. */
export interface Listing {
  /** Its tree blob. */
  id: BlobId;
  /** Its entries, in tree order. */
  nodes: readonly Node[];
  /** The same, by raw name ({@link nameKey}). */
  byName: Map<string, Node>;
  /**
   * The tree is exactly `{ nodes }` with every entry valid: when a directory's new entries equal
   * these, the tree blob is what saving them would store.
   */
  reusable: boolean;
}

export function listingOf(id: BlobId, tree: Tree): Listing {
  const byName = new Map<string, Node>();
  const nodes = tree.nodes;
  for (let i = 0; i < nodes.length; i++) byName.set(nodeKey(nodes[i]!), nodes[i]!);
  let keys = 0;
  for (const k in tree) if (Object.hasOwn(tree, k)) keys++;
  return { id, nodes, byName, reusable: keys === 1 && invalidNodeCount(tree) === 0 };
}

/**
 * Same type, size, mtime, ctime and inode (a file the backup need not read), and every content
 * blob still in the repository.
 */
export function unchangedFile(prev: Node, cur: Node, hasData: (id: BlobId) => boolean): boolean {
  if (prev.type !== 'file' || !prev.content) return false;
  if (prev.size !== cur.size || prev.mtimeNs !== cur.mtimeNs || prev.ctimeNs !== cur.ctimeNs || prev.inode !== cur.inode) return false;
  for (const id of prev.content) if (!hasData(id)) return false;
  return true;
}

/** Whether two JSON values encode to the same canonical JSON (keys in any order, `undefined` members left out). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (!Object.hasOwn(x, k)) continue;
    const v = x[k];
    if (v === undefined) continue;
    n++;
    if (!Object.hasOwn(y, k) || !sameJson(v, y[k])) return false;
  }
  for (const k in y) if (Object.hasOwn(y, k) && y[k] !== undefined) n--;
  return n === 0;
}

/** Whether `nodes` (in tree order) encode to the same tree as the parent's `listing`. */
export function sameEntries(listing: Listing, nodes: readonly Node[]): boolean {
  if (!listing.reusable || listing.nodes.length !== nodes.length) return false;
  for (let i = 0; i < nodes.length; i++) if (!sameJson(nodes[i], listing.nodes[i])) return false;
  return true;
}
