/**
 * The one validator of decoded trees and snapshots, used by every reader (restore, ls, diff,
 * backup's parent, check). A tree keeps its valid entries in `nodes`; each invalid one is
 * described (index, name when it has one, reason) in the tree's non-enumerable `invalid` list,
 * so a reader reports it as one error and goes on with the rest. A snapshot, or a tree that
 * is not a tree at all, fails as a whole with an {@link IntegrityError}. The limits are in
 * limits.ts.
 */
import { posix, win32 } from 'node:path';
import { IntegrityError } from './errors.js';
import { isBlobId } from './index-table.js';
import {
  MAX_DATA_BLOB_SIZE,
  MAX_LINK_TARGET_BYTES,
  MAX_NAME_BYTES,
  MAX_NODE_METADATA_BYTES,
  MAX_OWNER_NAME_LENGTH,
  MAX_REPORTED_ERRORS,
  MAX_SNAPSHOT_PATHS,
  MAX_SNAPSHOT_SIZE,
  MAX_SNAPSHOT_STRING,
  MAX_SNAPSHOT_TAGS,
  MAX_TREE_BLOB_SIZE,
  MAX_TREE_ENTRIES,
  TREE_BYTES_PER_COMMA,
  TREE_BYTES_PER_CONTAINER,
  TREE_DENSITY_CHECK_FROM,
} from './limits.js';
import type { Node, NodeType, Snapshot, Tree } from './types.js';
import { xattrsProblem } from '../xattr/codec.js';

/** One entry of a stored tree that failed validation (it is not in `tree.nodes`). */
export interface InvalidNode {
  /** Position in the stored `nodes` array. */
  index: number;
  /** The entry's name, when it has a usable one (at most 256 characters, for messages). */
  name?: string;
  /** What is wrong with it. */
  reason: string;
}

const NODE_TYPES: ReadonlySet<string> = new Set<NodeType>(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']);
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const INT64_RE = /^-?[0-9]{1,19}$/;
const UINT64_RE = /^[0-9]{1,20}$/;
// Digit strings of equal length compare like their numbers.
const INT64_MAX = '9223372036854775807';
const INT64_MIN_ABS = '9223372036854775808';
const UINT64_MAX = '18446744073709551615';
const TIME_NS_RE = /^-?[0-9]{1,28}$/;
// A time is what the file system's timespec holds: 64-bit signed seconds and 0…999,999,999 ns,
// written as one count of nanoseconds (so beyond 64 bits after 2262-04-11 and before 1677-09-21).
const TIME_NS_MAX = '9223372036854775807999999999';
const TIME_NS_MIN_ABS = '9223372036854775808000000000';
/** uid/gid 2^32 − 1 is "no owner" (chown's −1): not a valid owner. */
const MAX_ID = 2 ** 32 - 2;

/** Decoded bytes of canonical base64 `s`, or undefined. */
function base64Bytes(s: string, max: number): Buffer | undefined {
  if (s.length % 4 !== 0 || s.length > ((max + 2) / 3) * 4 + 4 || !BASE64_RE.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/**
 * True for a time in nanoseconds since the epoch that a file system can hold: a decimal string
 * whose seconds fit in 64 bits (years about −292 billion to +292 billion; beyond 64 bits of
 * nanoseconds after 2262-04-11, which file systems such as ext4, XFS and tmpfs store).
 */
export function isTimeNs(v: unknown): v is string {
  if (typeof v !== 'string' || !TIME_NS_RE.test(v)) return false;
  const neg = v.charCodeAt(0) === 0x2d;
  const digits = neg ? v.slice(1) : v;
  return digits.length < 28 || digits <= (neg ? TIME_NS_MIN_ABS : TIME_NS_MAX);
}

function isDecimal(v: unknown, signed: boolean): boolean {
  if (typeof v !== 'string' || !(signed ? INT64_RE : UINT64_RE).test(v)) return false;
  if (!signed) return v.length < 20 || v <= UINT64_MAX;
  const neg = v.charCodeAt(0) === 0x2d;
  const digits = neg ? v.slice(1) : v;
  return digits.length < 19 || digits <= (neg ? INT64_MIN_ABS : INT64_MAX);
}

/** What is wrong with name bytes, or undefined. */
function nameBytesProblem(raw: Buffer): string | undefined {
  if (raw.byteLength === 0) return 'empty name';
  if (raw.byteLength > MAX_NAME_BYTES) return `name of ${raw.byteLength} bytes (limit ${MAX_NAME_BYTES})`;
  if (raw.includes(0x2f)) return "name contains '/'";
  if (raw.includes(0)) return 'name contains a NUL byte';
  if ((raw.byteLength === 1 && raw[0] === 0x2e) || (raw.byteLength === 2 && raw[0] === 0x2e && raw[1] === 0x2e)) return `name is ${raw.toString('latin1')}`;
  return undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** What is wrong with a name given as a string (its UTF-8 bytes), or undefined. */
function nameStringProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name.length * 3 > MAX_NAME_BYTES && Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `name of ${Buffer.byteLength(name, 'utf8')} bytes (limit ${MAX_NAME_BYTES})`;
  if (name.includes('/')) return "name contains '/'";
  if (name.includes('\0')) return 'name contains a NUL byte';
  if (name === '.' || name === '..') return `name is ${name}`;
  return undefined;
}

/**
 * A key that is equal for two nodes exactly when their raw name bytes are, or a reason why the
 * node has no valid name. (Valid UTF-8 names are their own key; other raw names cannot collide
 * with those: their key starts with a NUL.)
 */
function nodeNameKey(n: Record<string, unknown>): string | { problem: string } {
  if (typeof n.name !== 'string') return { problem: 'name is not a string' };
  if (n.name.length > MAX_NAME_BYTES) return { problem: `name of ${n.name.length} characters (limit ${MAX_NAME_BYTES} bytes)` };
  if (n.nameRaw === undefined) {
    const problem = nameStringProblem(n.name);
    return problem ? { problem } : n.name;
  }
  const raw = typeof n.nameRaw === 'string' ? base64Bytes(n.nameRaw, MAX_NAME_BYTES) : undefined;
  if (!raw) return { problem: 'nameRaw is not base64' };
  const problem = nameBytesProblem(raw);
  if (problem) return { problem };
  let text: string | undefined;
  try {
    text = utf8.decode(raw);
  } catch {
    text = undefined;
  }
  return text ?? `\0${raw.toString('latin1')}`;
}

const OWNER_KEYS = ['user', 'group'] as const;
const TIME_KEYS = ['mtimeNs', 'ctimeNs'] as const;
const FILE_ID_KEYS = ['inode', 'dev'] as const;

/** What is wrong with a node's fields other than its name, or undefined. */
function fieldsProblem(n: Record<string, unknown>): string | undefined {
  const type = n.type;
  if (typeof type !== 'string' || !NODE_TYPES.has(type)) return `unknown type ${JSON.stringify(type)?.slice(0, 40)}`;
  if (!isInt(n.mode, 0, 0o7777)) return 'mode is not an integer in 0…0o7777';
  if (!isInt(n.uid, 0, MAX_ID)) return `uid ${String(n.uid).slice(0, 40)} is not an integer in 0…${MAX_ID}`;
  if (!isInt(n.gid, 0, MAX_ID)) return `gid ${String(n.gid).slice(0, 40)} is not an integer in 0…${MAX_ID}`;
  for (const k of OWNER_KEYS) {
    if (n[k] !== undefined && (typeof n[k] !== 'string' || (n[k] as string).length > MAX_OWNER_NAME_LENGTH)) return `${k} is not a string of at most ${MAX_OWNER_NAME_LENGTH} characters`;
  }
  for (const k of TIME_KEYS) if (!isTimeNs(n[k])) return `${k} is not a time in nanoseconds (a decimal string, its seconds within 64 bits)`;
  for (const k of FILE_ID_KEYS) if (!isDecimal(n[k], false)) return `${k} is not an unsigned 64-bit decimal string`;
  if (n.rdev !== undefined && !isDecimal(n.rdev, false)) return 'rdev is not an unsigned 64-bit decimal string';
  if (n.links !== undefined && !isInt(n.links, 1, 2 ** 32 - 1)) return 'links is not a positive integer';
  if (!isInt(n.size, 0, Number.MAX_SAFE_INTEGER)) return `size ${String(n.size).slice(0, 40)} is not a non-negative integer`;
  if (type === 'file') {
    const c = n.content;
    if (!Array.isArray(c)) return 'file without a content list';
    // Every data blob holds at least one byte and at most the blob cap.
    if (c.length > n.size) return `content lists ${c.length} blobs for ${n.size} bytes`;
    if (n.size > c.length * MAX_DATA_BLOB_SIZE) return `content lists ${c.length} blobs, too few for ${n.size} bytes`;
    for (let i = 0; i < c.length; i++) if (!isBlobId(c[i])) return `content[${i}] is not a blob id`;
  } else if (type === 'dir') {
    if (!isBlobId(n.subtree)) return 'directory without a valid subtree id';
  } else if (type === 'symlink') {
    let target: Buffer | undefined;
    if (n.linkTargetRaw !== undefined) {
      target = typeof n.linkTargetRaw === 'string' ? base64Bytes(n.linkTargetRaw, MAX_LINK_TARGET_BYTES) : undefined;
      if (!target) return 'linkTargetRaw is not base64';
    } else if (typeof n.linkTarget === 'string') {
      if (n.linkTarget.length > MAX_LINK_TARGET_BYTES) return `link target longer than ${MAX_LINK_TARGET_BYTES} bytes`;
      target = Buffer.from(n.linkTarget, 'utf8');
    } else {
      return 'symlink without a target';
    }
    if (target.byteLength === 0) return 'empty link target';
    if (target.byteLength > MAX_LINK_TARGET_BYTES) return `link target of ${target.byteLength} bytes (limit ${MAX_LINK_TARGET_BYTES})`;
    if (target.includes(0)) return 'link target contains a NUL byte';
  }
  if (n.sparse !== undefined && typeof n.sparse !== 'boolean') return 'sparse is not a boolean';
  if (n.xattrs !== undefined) {
    const problem = xattrsProblem(n.xattrs);
    if (problem !== undefined) return problem;
  }
  if (n.metadata !== undefined) {
    if (typeof n.metadata !== 'object' || n.metadata === null || Array.isArray(n.metadata)) return 'metadata is not an object';
    const size = Buffer.byteLength(JSON.stringify(n.metadata), 'utf8');
    if (size > MAX_NODE_METADATA_BYTES) return `metadata of ${size} bytes (limit ${MAX_NODE_METADATA_BYTES})`;
  }
  return undefined;
}

function displayName(n: unknown): string | undefined {
  const name = typeof n === 'object' && n !== null ? (n as { name?: unknown }).name : undefined;
  return typeof name === 'string' && name.length > 0 ? name.slice(0, 256) : undefined;
}

/**
 * Validate the parsed JSON of tree blob `id`. Throws {@link IntegrityError} when it is not a tree
 * (not an object with a `nodes` array, or more than {@link MAX_TREE_ENTRIES} entries); otherwise
 * returns a tree of the valid nodes, with the invalid ones in {@link invalidNodes}. Entries that
 * share a name are all invalid (which one is meant cannot be known).
 */
export function validateTree(value: unknown, id: string): Tree {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as Tree).nodes)) {
    throw new IntegrityError(`tree blob ${id} has no nodes array`, { blobId: id });
  }
  const stored = (value as { nodes: unknown[] }).nodes;
  if (stored.length > MAX_TREE_ENTRIES) {
    throw new IntegrityError(`tree blob ${id} has ${stored.length} entries, more than the limit of ${MAX_TREE_ENTRIES}`, { blobId: id });
  }
  const invalid: InvalidNode[] = [];
  let invalidCount = 0;
  const reject = (index: number, n: unknown, reason: string) => {
    invalidCount++;
    if (invalid.length < MAX_REPORTED_ERRORS) {
      const name = displayName(n);
      invalid.push(name === undefined ? { index, reason } : { index, name, reason });
    }
  };
  // One pass, no record per entry: valid nodes are kept with their name keys; only when a name
  // repeats (never in a tree Kiwi wrote) does a second pass take the repeated ones out.
  const nodes: Node[] = [];
  const indexes: number[] = [];
  const seen = new Set<string>();
  let repeated: Set<string> | undefined;
  for (let i = 0; i < stored.length; i++) {
    const n = stored[i];
    if (typeof n !== 'object' || n === null || Array.isArray(n)) {
      reject(i, n, `entry is ${n === null ? 'null' : Array.isArray(n) ? 'an array' : typeof n}, not an object`);
      continue;
    }
    const rec = n as Record<string, unknown>;
    const name = nodeNameKey(rec);
    const problem = typeof name !== 'string' ? name.problem : fieldsProblem(rec);
    if (problem !== undefined) {
      reject(i, n, problem);
      continue;
    }
    const key = name as string;
    if (seen.has(key)) (repeated ??= new Set()).add(key);
    else seen.add(key);
    nodes.push(n as Node);
    indexes.push(i);
  }
  if (repeated) {
    // Compacted in place: `nodes.push(...kept)` would pass every kept node as an argument, and
    // past ~100,000 of them that overflows the stack (a RangeError, not a tree with its repeated
    // names left out: readers then lost the whole directory, and `repair snapshots` emptied it).
    let kept = 0;
    for (let k = 0; k < nodes.length; k++) {
      const name = nodeNameKey(nodes[k] as unknown as Record<string, unknown>);
      if (repeated.has(name as string)) reject(indexes[k]!, nodes[k], 'duplicate name in this tree');
      else nodes[kept++] = nodes[k]!;
    }
    nodes.length = kept;
  }
  if (invalidCount > 1) invalid.sort((a, b) => a.index - b.index);
  const tree: Tree = { ...(value as object), nodes } as Tree;
  if (invalidCount > 0) {
    Object.defineProperty(tree, 'invalid', { value: invalid, enumerable: false });
    Object.defineProperty(tree, 'invalidCount', { value: invalidCount, enumerable: false });
  }
  return tree;
}

/** The invalid entries of a loaded tree (at most {@link MAX_REPORTED_ERRORS} listed; see {@link invalidNodeCount}). */
export function invalidNodes(tree: Tree): readonly InvalidNode[] {
  return tree.invalid ?? [];
}

/** How many entries of a loaded tree are invalid (all of them, listed or not). */
export function invalidNodeCount(tree: Tree): number {
  return tree.invalidCount ?? 0;
}

/**
 * Count the bytes that make JSON values cost memory when parsed; throws {@link IntegrityError}
 * when there are more than a tree's can have (see {@link TREE_DENSITY_CHECK_FROM}).
 */
function checkDensity(bytes: Uint8Array, id: string): void {
  let containers = 0;
  let commas = 0;
  for (let i = 0; i < bytes.byteLength; i++) {
    const b = bytes[i]!;
    if (b === 0x2c) commas++;
    else if (b === 0x7b || b === 0x5b) containers++;
  }
  if (containers > bytes.byteLength / TREE_BYTES_PER_CONTAINER || commas > bytes.byteLength / TREE_BYTES_PER_COMMA) {
    throw new IntegrityError(
      `tree blob ${id}: ${containers} objects/arrays and ${commas} values in ${bytes.byteLength} bytes, far denser than any tree (parsing it could take ~${Math.round((containers * 70) / 2 ** 20)} MiB)`,
      { blobId: id },
    );
  }
}

/** Parse and validate a tree blob's plaintext; throws {@link IntegrityError} when it is not a tree. */
export function parseTree(bytes: Uint8Array, id: string): Tree {
  if (bytes.byteLength > MAX_TREE_BLOB_SIZE) {
    throw new IntegrityError(`tree blob ${id} is ${bytes.byteLength} bytes, more than the limit of ${MAX_TREE_BLOB_SIZE}`, { blobId: id });
  }
  if (bytes.byteLength >= TREE_DENSITY_CHECK_FROM) checkDensity(bytes, id);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new IntegrityError(`tree blob ${id} is not valid JSON`, { blobId: id, cause: err });
  }
  return validateTree(value, id);
}

// ---------------------------------------------------------------- snapshots

function isAbsolutePath(p: string): boolean {
  return posix.isAbsolute(p) || win32.isAbsolute(p);
}

function stringList(v: unknown, max: number, what: string, check?: (s: string) => string | undefined): string | undefined {
  if (!Array.isArray(v)) return `${what} is not an array`;
  if (v.length > max) return `${what} has ${v.length} entries (limit ${max})`;
  for (let i = 0; i < v.length; i++) {
    const s = v[i];
    if (typeof s !== 'string' || s.length > MAX_SNAPSHOT_STRING || s.includes('\0')) return `${what}[${i}] is not a string of at most ${MAX_SNAPSHOT_STRING} characters without NUL`;
    const p = check?.(s);
    if (p) return `${what}[${i}] ${p}`;
  }
  return undefined;
}

function snapshotProblem(s: Record<string, unknown>): string | undefined {
  if (typeof s.time !== 'string' || s.time.length > 64 || !Number.isFinite(Date.parse(s.time))) return 'time is not a date';
  for (const k of ['hostname', 'username'] as const) {
    if (typeof s[k] !== 'string' || (s[k] as string).length > MAX_SNAPSHOT_STRING) return `${k} is not a string of at most ${MAX_SNAPSHOT_STRING} characters`;
  }
  for (const k of ['uid', 'gid'] as const) if (s[k] !== undefined && !isInt(s[k], 0, MAX_ID)) return `${k} is not a valid id`;
  const paths = stringList(s.paths, MAX_SNAPSHOT_PATHS, 'paths', (p) => (isAbsolutePath(p) ? undefined : 'is not an absolute path'));
  if (paths) return paths;
  if (s.tags !== undefined) {
    const tags = stringList(s.tags, MAX_SNAPSHOT_TAGS, 'tags');
    if (tags) return tags;
  }
  if (s.excludes !== undefined) {
    const ex = stringList(s.excludes, MAX_SNAPSHOT_TAGS, 'excludes');
    if (ex) return ex;
  }
  if (!isBlobId(s.tree)) return 'tree is not a blob id';
  if (s.parent !== undefined && !isBlobId(s.parent)) return 'parent is not a snapshot id';
  if (s.programVersion !== undefined && (typeof s.programVersion !== 'string' || s.programVersion.length > MAX_SNAPSHOT_STRING)) return 'programVersion is not a string';
  for (const k of ['summary', 'plugins'] as const) {
    if (s[k] !== undefined && (typeof s[k] !== 'object' || s[k] === null || Array.isArray(s[k]))) return `${k} is not an object`;
  }
  if (s.partial !== undefined && typeof s.partial !== 'boolean') return 'partial is not a boolean';
  // The copy markers (copy, tag, repair snapshots): an `original` that is no snapshot id, or a `repaired`
  // that is no marker, would be carried into every copy and retag (null counts as absent, as copy takes it).
  if (s.original !== undefined && s.original !== null && !isBlobId(s.original)) return 'original is not a snapshot id';
  const r = s.repaired;
  if (r !== undefined && r !== null && (typeof r !== 'object' || Array.isArray(r) || typeof (r as Record<string, unknown>).from !== 'string' || typeof (r as Record<string, unknown>).time !== 'string')) {
    return 'repaired is not a repair marker (from and time strings)';
  }
  return undefined;
}

/**
 * Validate a parsed snapshot: `time` a date; `hostname`, `username` strings; `paths` absolute
 * (POSIX or Windows) without NUL; `tags`, `excludes` strings; `tree` (and `parent`) ids; the
 * optional objects objects; counts and lengths within limits.ts. Throws {@link IntegrityError}
 * naming `file`. Missing `tags` become `[]`, a missing `programVersion` `''`.
 */
export function validateSnapshot(value: unknown, file: string): Snapshot {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new IntegrityError(`${file}: not a snapshot (not a JSON object)`, { file });
  const problem = snapshotProblem(value as Record<string, unknown>);
  if (problem) throw new IntegrityError(`${file}: not a valid snapshot: ${problem}`, { file });
  const s = value as Snapshot;
  return { ...s, tags: s.tags ?? [], programVersion: s.programVersion ?? '' };
}

/** Parse and validate a snapshot file's decrypted, decompressed body. */
export function parseSnapshot(body: Uint8Array, file: string): Snapshot {
  if (body.byteLength > MAX_SNAPSHOT_SIZE) throw new IntegrityError(`${file}: ${body.byteLength} bytes, more than the limit of ${MAX_SNAPSHOT_SIZE}`, { file });
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    throw new IntegrityError(`${file}: not valid JSON`, { file, cause: err });
  }
  return validateSnapshot(value, file);
}
