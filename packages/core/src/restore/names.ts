/**
 * The entries of a tree as the restore sees them: names validated, every
 * field the restore uses checked. A tree is untrusted input; an entry that is
 * not sound is reported as one error and left out, and the rest of the
 * directory is restored. (Core's shared tree validator may already drop such
 * entries in `loadTree`; this check is what the restore itself relies on.)
 */
import type { Node, NodeType, Tree } from '../repository/types.js';
import { invalidNodeCount, invalidNodes, isTimeNs, type InvalidNode } from '../repository/validate.js';
import { nodeNameBytes } from '../backup/node.js';
import { decodeXattrs, type DecodedXattr } from '../xattr/xattrs.js';

const SLASH = 0x2f;
const TYPES = new Set<NodeType>(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']);
const BLOB_ID = /^[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Owner ids: 32-bit, and not 2^32-1 (which chown reads as "leave unchanged"). */
const MAX_ID = 2 ** 32 - 2;
/** Longest symlink target restored (Linux's PATH_MAX). */
const MAX_LINK = 4096;

/**
 * Validates a node name from a tree: raw bytes, never empty, `.`, `..`, and
 * never containing `/` or NUL. Returns the bytes or throws.
 */
export function safeName(node: Pick<Node, 'name' | 'nameRaw'>): Buffer {
  const raw = nodeNameBytes(node);
  if (raw.length === 0) throw new Error('empty file name in tree');
  if ((raw.length === 1 && raw[0] === 0x2e) || (raw.length === 2 && raw[0] === 0x2e && raw[1] === 0x2e)) {
    throw new Error(`refusing file name '${raw.toString()}' in tree`);
  }
  if (raw.includes(SLASH)) throw new Error(`refusing file name with '/': ${JSON.stringify(raw.toString())}`);
  if (raw.includes(0)) throw new Error(`refusing file name with NUL: ${JSON.stringify(raw.toString())}`);
  return raw;
}

/** Decoded extended attributes of checked nodes (decoded once, by {@link nodeProblem}). */
const xattrCache = new WeakMap<Node, DecodedXattr[]>();

/** The checked, decoded extended attributes of a node that passed {@link nodeProblem}. */
export function nodeXattrs(node: Node): DecodedXattr[] | undefined {
  if (node.xattrs === undefined) return undefined;
  let x = xattrCache.get(node);
  if (!x) {
    x = decodeXattrs(node.xattrs);
    xattrCache.set(node, x);
  }
  return x;
}

function isInt(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/**
 * What is wrong with a tree entry for a restore, or undefined when it can be
 * restored. Checks the type and every field the restore uses for it (the
 * name separately, {@link safeName}).
 */
export function nodeProblem(node: unknown): string | undefined {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return `not an entry (${node === null ? 'null' : Array.isArray(node) ? 'a list' : typeof node})`;
  const n = node as Record<string, unknown>;
  if (typeof n.name !== 'string' || (n.nameRaw !== undefined && (typeof n.nameRaw !== 'string' || !BASE64.test(n.nameRaw)))) return 'no valid name';
  if (typeof n.type !== 'string' || !TYPES.has(n.type as NodeType)) return `unknown type ${JSON.stringify(String(n.type)).slice(0, 40)}`;
  if (!isInt(n.mode, 0, 0o7777)) return `mode ${JSON.stringify(n.mode)} is not a permission mode`;
  if (!isInt(n.uid, 0, MAX_ID)) return `uid ${JSON.stringify(n.uid)} is not a valid owner id`;
  if (!isInt(n.gid, 0, MAX_ID)) return `gid ${JSON.stringify(n.gid)} is not a valid group id`;
  if (!isTimeNs(n.mtimeNs)) return `mtime ${JSON.stringify(n.mtimeNs)} is not a time in nanoseconds`;
  if (n.links !== undefined && (!isInt(n.links, 1, 2 ** 32) || typeof n.inode !== 'string' || typeof n.dev !== 'string')) return 'invalid hard link fields';
  if (n.sparse !== undefined && typeof n.sparse !== 'boolean') return 'sparse is not a boolean';
  switch (n.type as NodeType) {
    case 'file':
      if (!isInt(n.size, 0, Number.MAX_SAFE_INTEGER)) return `size ${JSON.stringify(n.size)} is not a byte count`;
      if (n.content !== undefined) {
        if (!Array.isArray(n.content) || !n.content.every((id) => typeof id === 'string' && BLOB_ID.test(id))) return 'content is not a list of blob ids';
        if (n.content.length > Math.max(1, n.size as number)) return `${n.content.length} content blobs for ${n.size as number} bytes`;
      }
      break;
    case 'dir':
      if (n.subtree !== undefined && (typeof n.subtree !== 'string' || !BLOB_ID.test(n.subtree))) return 'subtree is not a blob id';
      break;
    case 'symlink': {
      let target: Buffer;
      if (n.linkTargetRaw !== undefined) {
        if (typeof n.linkTargetRaw !== 'string' || n.linkTargetRaw.length > 2 * MAX_LINK || !BASE64.test(n.linkTargetRaw)) return 'linkTargetRaw is not base64';
        target = Buffer.from(n.linkTargetRaw, 'base64');
      } else {
        if (typeof n.linkTarget !== 'string' || n.linkTarget.length > MAX_LINK) return 'no valid symlink target';
        target = Buffer.from(n.linkTarget, 'utf8');
      }
      if (target.length === 0 || target.length > MAX_LINK) return 'the symlink target is empty or too long';
      if (target.includes(0)) return 'the symlink target holds a NUL byte';
      break;
    }
    case 'chardev':
    case 'blockdev':
      if (typeof n.rdev !== 'string' || !/^[0-9]{1,20}$/.test(n.rdev) || BigInt(n.rdev) >= 2n ** 64n) return `device number ${JSON.stringify(n.rdev)} is not valid`;
      break;
    default:
      break;
  }
  if (n.xattrs !== undefined) {
    try {
      xattrCache.set(node as Node, decodeXattrs(n.xattrs));
    } catch (err) {
      return (err as Error).message;
    }
  }
  return undefined;
}

/** One entry of a listing: the node with its validated name bytes, or why it is refused. */
export interface ListingItem {
  node: Node;
  /** The validated name bytes (undefined when refused). */
  raw: Buffer | undefined;
  /** Why the entry is refused. */
  err?: Error;
  /** The name for messages. */
  display: string;
}

/** A tree's entries, checked. */
export interface Listing {
  items: ListingItem[];
  /** How often each valid raw name (latin1) occurs (duplicates are all rejected). */
  counts: Map<string, number>;
  /** Every name of the tree that is a usable file name, valid entry or not (what `delete` keeps). */
  names: Map<string, true>;
  /** Stored entries the tree validator refused (not in `items`): each is reported as an error. */
  invalid?: readonly InvalidNode[];
  /** How many of those there are in all (only the first 1000 are listed). */
  invalidCount?: number;
}

/** {@link listNodes} of a loaded tree, with the entries core's tree validator refused. */
export function listTree(tree: Tree): Listing {
  const listing = listNodes(tree.nodes);
  const count = invalidNodeCount(tree);
  if (count > 0) {
    listing.invalid = invalidNodes(tree);
    listing.invalidCount = count;
    for (const bad of listing.invalid) if (bad.name !== undefined) listing.names.set(Buffer.from(bad.name, 'utf8').toString('latin1'), true);
  }
  return listing;
}

/** Checks every entry of a tree (see {@link nodeProblem}, {@link safeName}). */
export function listNodes(nodes: readonly unknown[]): Listing {
  const counts = new Map<string, number>();
  const names = new Map<string, true>();
  const items = nodes.map((value, i): ListingItem => {
    const node = value as Node;
    const display = typeof node === 'object' && node !== null && typeof node.name === 'string' ? node.name : `#${i}`;
    let raw: Buffer;
    try {
      if (typeof node !== 'object' || node === null || typeof node.name !== 'string') throw new Error('invalid tree entry: no name');
      raw = safeName(node);
    } catch (err) {
      return { node, raw: undefined, err: err as Error, display };
    }
    const k = raw.toString('latin1');
    names.set(k, true);
    const problem = nodeProblem(value);
    if (problem !== undefined) return { node, raw: undefined, err: new Error(`invalid tree entry: ${problem}`), display };
    counts.set(k, (counts.get(k) ?? 0) + 1);
    return { node, raw, display };
  });
  return { items, counts, names };
}

export function joinSnap(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
