/**
 * FIFOs, character and block devices, and sockets: made with mknod(2)
 * through `@kiwi-backup/native-fs`. Devices need root (CAP_MKNOD). A socket
 * comes back as a socket file, as `rsync --specials` makes it: the inode
 * with its owner, mode and times, that no program listens on (a program that
 * owns one recreates it when it starts). What cannot be made here (no addon,
 * no privilege, a system that refuses) is reported as not restored, never
 * dropped silently.
 */
import { constants as fsConstants } from 'node:fs';
import type { Node, NodeType } from '../repository/types.js';
import { nativeFs, nativeFsUnavailableReason } from '../native/native-fs.js';

const KIND: Partial<Record<NodeType, { bits: number | undefined; what: string }>> = {
  fifo: { bits: fsConstants.S_IFIFO, what: 'FIFO' },
  chardev: { bits: fsConstants.S_IFCHR, what: 'character device' },
  blockdev: { bits: fsConstants.S_IFBLK, what: 'block device' },
  socket: { bits: fsConstants.S_IFSOCK, what: 'socket' },
};

/** Thrown when a special file cannot be made here by rule (reported as not restored, not as a failure). */
export class NotRestorable extends Error {
  override readonly name = 'NotRestorable';
}

export function isSpecial(type: NodeType): boolean {
  return KIND[type] !== undefined;
}

/** Whether file mode `mode` (from a stat) is that of a FIFO, device or socket of `type`. */
export function isSpecialOfType(mode: number, type: NodeType): boolean {
  const bits = KIND[type]?.bits;
  return bits !== undefined && (mode & fsConstants.S_IFMT) === bits;
}

/**
 * Makes the FIFO, device or socket of `node` at `fsPath` (nothing may be
 * there: the caller replaces what is). Throws {@link NotRestorable} when this
 * system or this user cannot, else the file system's error.
 */
export function makeSpecial(node: Node, fsPath: Buffer): void {
  const kind = KIND[node.type];
  if (!kind || kind.bits === undefined) throw new NotRestorable(`${node.type} not restored: not supported on ${process.platform}`);
  const n = nativeFs();
  if (!n) throw new NotRestorable(`${kind.what} not restored: @kiwi-backup/native-fs is not available (${nativeFsUnavailableReason() ?? 'unknown reason'})`);
  const dev = node.type === 'chardev' || node.type === 'blockdev' ? BigInt(node.rdev ?? '0') : 0n;
  try {
    n.mknodSync(fsPath, kind.bits | (node.mode & 0o777), dev);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const root = typeof process.geteuid === 'function' && process.geteuid() === 0;
    if ((code === 'EPERM' || code === 'EACCES') && dev !== 0n && !root) throw new NotRestorable(`${kind.what} not restored: making devices needs root`);
    if (code === 'EPERM' || code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
      if (node.type === 'socket' || (dev !== 0n && root)) throw new NotRestorable(`${kind.what} not restored: this system or file system refuses to make one (${code})`);
    }
    throw err;
  }
}
