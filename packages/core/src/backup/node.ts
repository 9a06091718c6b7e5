import type { BigIntStats, Stats } from 'node:fs';
import { userInfo } from 'node:os';
import type { Node, NodeType } from '../repository/types.js';
import type { OwnerNames } from './owners.js';

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Decodes bytes as strict UTF-8; undefined when they are not valid UTF-8. */
export function strictUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Sets `name` (and `nameRaw` when the bytes are not valid UTF-8) of a node from raw name bytes. */
export function nameFields(raw: Buffer): { name: string; nameRaw?: string } {
  const s = strictUtf8(raw);
  if (s !== undefined) return { name: s };
  return { name: raw.toString('utf8'), nameRaw: raw.toString('base64') };
}

/** The raw bytes of a node's name. */
export function nodeNameBytes(node: Pick<Node, 'name' | 'nameRaw'>): Buffer {
  return node.nameRaw !== undefined ? Buffer.from(node.nameRaw, 'base64') : Buffer.from(node.name, 'utf8');
}

/** A map key for a raw name (latin1 keeps every byte distinct). */
export function nameKey(raw: Buffer): string {
  return raw.toString('latin1');
}

/** Map key of a node's name. */
export function nodeKey(node: Pick<Node, 'name' | 'nameRaw'>): string {
  return nodeNameBytes(node).toString('latin1');
}

/** A file counts as sparse when at least this many bytes of its size are not allocated. */
const SPARSE_MIN_HOLE = 4096n;

/**
 * Builds a tree node from `lstat` results. Content/subtree/link target are
 * filled in by the caller. Field order is fixed so that an unchanged entry
 * serialises to the same JSON (and an unchanged directory to the same tree id).
 */
export function nodeFromStat(rawName: Buffer, type: NodeType, st: BigIntStats, owners: OwnerNames): Node {
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const n = nameFields(rawName);
  const node: Node = {
    name: n.name,
    ...(n.nameRaw !== undefined ? { nameRaw: n.nameRaw } : {}),
    type,
    mode: Number(st.mode & 0o7777n),
    uid,
    gid,
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    inode: st.ino.toString(),
    dev: st.dev.toString(),
    size: type === 'file' ? Number(st.size) : 0,
  };
  const user = owners.user(uid);
  if (user !== undefined) node.user = user;
  const group = owners.group(gid);
  if (group !== undefined) node.group = group;
  if (type === 'chardev' || type === 'blockdev') node.rdev = st.rdev.toString();
  // Holes: a whole block or more not allocated (small files stored inside the inode do not count).
  if (type === 'file' && st.size - st.blocks * 512n >= SPARSE_MIN_HOLE && process.platform !== 'win32') node.sparse = true;
  // A file with several names: the restore links the names of one (dev, inode) together again.
  if (type === 'file' && st.nlink > 1n) node.links = Number(st.nlink);
  return node;
}

/**
 * A directory node with no directory read behind it (the root, a virtual directory, an ancestor of
 * a source that could not be read; virtual files start from it too): owned by the current user,
 * with `mtime` as its mtime and ctime.
 */
export function syntheticDirNode(key: Buffer, mode: number, owners: OwnerNames, mtime: Date = new Date()): Node {
  const me = safeUserInfo();
  const uid = me?.uid ?? 0;
  const gid = me?.gid ?? 0;
  const ns = (BigInt(mtime.getTime()) * 1_000_000n).toString();
  const node: Node = {
    ...nameFields(key),
    type: 'dir',
    mode,
    uid: uid < 0 ? 0 : uid,
    gid: gid < 0 ? 0 : gid,
    mtimeNs: ns,
    ctimeNs: ns,
    inode: '0',
    dev: '0',
    size: 0,
  };
  const user = owners.user(node.uid);
  if (user !== undefined) node.user = user;
  const group = owners.group(node.gid);
  if (group !== undefined) node.group = group;
  return node;
}

/** The current user, or undefined when `os.userInfo()` throws (no passwd entry). */
export function safeUserInfo(): { username: string; uid: number; gid: number } | undefined {
  try {
    return userInfo();
  } catch {
    return undefined;
  }
}

/** A plain `fs.Stats`-like view of BigInt stats, for plug-ins (numbers and Dates). */
export function toNumberStats(st: BigIntStats): Stats {
  const ms = (ns: bigint) => Number(ns / 1000n) / 1000;
  const s = {
    dev: Number(st.dev),
    ino: Number(st.ino),
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    size: Number(st.size),
    blksize: Number(st.blksize),
    blocks: Number(st.blocks),
    atimeMs: ms(st.atimeNs),
    mtimeMs: ms(st.mtimeNs),
    ctimeMs: ms(st.ctimeNs),
    birthtimeMs: ms(st.birthtimeNs),
    atime: new Date(Number(st.atimeMs)),
    mtime: new Date(Number(st.mtimeMs)),
    ctime: new Date(Number(st.ctimeMs)),
    birthtime: new Date(Number(st.birthtimeMs)),
    isFile: () => st.isFile(),
    isDirectory: () => st.isDirectory(),
    isSymbolicLink: () => st.isSymbolicLink(),
    isFIFO: () => st.isFIFO(),
    isSocket: () => st.isSocket(),
    isCharacterDevice: () => st.isCharacterDevice(),
    isBlockDevice: () => st.isBlockDevice(),
  };
  return s as unknown as Stats;
}
