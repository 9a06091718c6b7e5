/**
 * The metadata of restored entries: owner, mode, extended attributes (POSIX
 * ACLs included) and times, in that order. chown clears setuid/setgid and
 * file capabilities, so the mode and the attributes (`security.capability`)
 * come after it; setting the ACL attribute after the mode keeps the group
 * bits in step with the ACL's mask; times come last. Regular files and
 * directories are set through an O_NOFOLLOW descriptor; symlinks and special
 * files through their path, never following a final symlink.
 *
 * An attribute the file system refuses is an error of its entry (the entry
 * itself stays restored). Attributes in the `trusted.` and `security.`
 * namespaces that an unprivileged restore may not set, and any attribute when
 * `@kiwi-backup/native-fs` is not available, are reported as not restored
 * (`skipped`).
 */
import {
  chmod,
  chown,
  fstat as fsFstat,
  closeSync,
  fchmod as fsFchmod,
  fchmodSync,
  fchown as fsFchown,
  fchownSync,
  openSync,
  constants as fsConstants,
  close as fsClose,
  open as fsOpen,
} from 'node:fs';
import { lchown } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Node } from '../repository/types.js';
import { nativeFs } from '../native/native-fs.js';
import { xattrsAvailable, xattrsUnavailableReason } from '../xattr/xattrs.js';
import { nodeXattrs } from './names.js';
import { lsetTimesNs, setTimesNs, setTimesNsSync } from './times.js';
import { O_PATH, fdPath } from './anchors.js';
import { isSpecialOfType } from './special.js';


const fchmodFd = promisify(fsFchmod);
const fchownFd = promisify(fsFchown);
const chmodPath = promisify(chmod);
const chownPath = promisify(chown);
const fstatFd = promisify(fsFstat);
const openFd = promisify(fsOpen) as (path: Buffer, flags: number, mode: number) => Promise<number>;
const closeFd = promisify(fsClose);
const DIR_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_DIRECTORY ?? 0) | (fsConstants.O_NOFOLLOW ?? 0);

/** Files up to this size are written with synchronous calls; a synchronous call slower than SLOW_MS switches to async. */
export const SYNC_SLOW_MS = 20;
const ASYNC_CREDITS = 200;

/**
 * Synchronous calls are a few microseconds each on a local disk, far less
 * than a thread-pool round trip; when one turns out slow (network file
 * system, cold disk), the next {@link ASYNC_CREDITS} uses go asynchronous.
 */
export class SyncBudget {
  credits = 0;
  /** Whether the next call may be synchronous (consumes a credit when not). */
  take(): boolean {
    if (this.credits === 0) return true;
    this.credits--;
    return false;
  }
  /** Accounts a synchronous call that started at `t0` (performance.now()). */
  timed(t0: number): void {
    if (performance.now() - t0 > SYNC_SLOW_MS) this.credits = ASYNC_CREDITS;
  }
}

/** Where per-entry problems go. */
export interface MetaReport {
  /** The entry is restored, but something of it failed. */
  error(path: string, err: unknown): void;
  /** Something of the entry is not restored, by rule (privileges, platform). */
  skip(path: string, message: string): void;
}

/** The process umask, read once (applied by open(2) to the mode of new files). */
let umaskCache: number | undefined;
export function currentUmask(): number {
  if (umaskCache === undefined) {
    const m = process.umask(0o022);
    process.umask(m);
    umaskCache = m;
  }
  return umaskCache;
}

const PRIVILEGED = /^(trusted|security)\./;

export class MetaWriter {
  readonly euid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
  readonly xattrs = xattrsAvailable();
  /**
   * Whether open(2) gives new files exactly `mode & ~umask`. Not under a default ACL (the target
   * has one): then the mode is always set.
   */
  umaskExact = true;

  constructor(
    /** Restore owners (uid/gid). */
    readonly owners: boolean,
    readonly report: MetaReport,
    readonly budget: SyncBudget,
  ) {}

  /** Under a default ACL, open(2) does not apply the umask: then every file's mode is set explicitly. */
  noteDefaultAcl(dir: Buffer): void {
    const n = nativeFs();
    if (!n?.xattrSupported) return;
    try {
      if (n.llistxattrSync(dir).some((name) => name.toString() === 'system.posix_acl_default')) this.umaskExact = false;
    } catch {
      // no attributes here
    }
  }

  /**
   * Whether to set the owner: always when restoring owners. (Not even a file this restore created
   * is sure to have the restoring user's ids: in a setgid directory it gets the directory's group;
   * and an existing file or directory kept may have any owner.)
   */
  chown(_node: Node): boolean {
    return this.owners;
  }

  /**
   * The mode to set with fchmod on a file that open(2) made with `node.mode & 0o777` (`created`)
   * or found (not created), or -1 when open(2) already gave it exactly (the umask takes nothing
   * from it, no default ACL).
   */
  chmodMode(node: Node, created: boolean): number {
    const mode = node.mode & 0o7777;
    return !created || !this.umaskExact || mode !== (mode & 0o777 & ~currentUmask()) ? mode : -1;
  }

  /** Owner, mode, attributes and times of a regular file through its descriptor. `created`: open(2) made it with the mode. */
  async file(node: Node, fd: number, snapPath: string, created: boolean): Promise<void> {
    const mode = node.mode & 0o7777;
    if (this.chown(node)) await fchownFd(fd, node.uid, node.gid);
    if (!created || !this.umaskExact || mode !== (mode & 0o777 & ~currentUmask())) await fchmodFd(fd, mode);
    if (node.xattrs !== undefined) this.setXattrs(node, snapPath, { fd });
    await setTimesNs(fd, node.mtimeNs);
  }

  /** The synchronous {@link file}. */
  fileSync(node: Node, fd: number, snapPath: string, created: boolean): void {
    const mode = node.mode & 0o7777;
    if (this.chown(node)) fchownSync(fd, node.uid, node.gid);
    if (!created || !this.umaskExact || mode !== (mode & 0o777 & ~currentUmask())) fchmodSync(fd, mode);
    if (node.xattrs !== undefined) this.setXattrs(node, snapPath, { fd });
    setTimesNsSync(fd, node.mtimeNs);
  }

  /**
   * Owner, mode, attributes and mtime of a directory (after its children), through its own
   * descriptor `fd` when it has one (anchors.ts), else through one opened at `fsPath` O_NOFOLLOW.
   */
  async dir(node: Node, fsPath: Buffer, snapPath: string, fd?: number): Promise<void> {
    if (this.budget.credits === 0) {
      const t0 = performance.now();
      const own = fd ?? openSync(fsPath, DIR_FLAGS);
      try {
        this.dirFdSync(node, own, snapPath);
      } finally {
        if (fd === undefined) closeSync(own);
      }
      this.budget.timed(t0);
      return;
    }
    const own = fd ?? (await openFd(fsPath, DIR_FLAGS, 0));
    try {
      await this.dirFd(node, own, snapPath);
    } finally {
      if (fd === undefined) await closeFd(own);
    }
  }

  dirFdSync(node: Node, fd: number, snapPath: string): void {
    if (this.chown(node)) fchownSync(fd, node.uid, node.gid);
    fchmodSync(fd, node.mode & 0o7777);
    if (node.xattrs !== undefined) this.setXattrs(node, snapPath, { fd });
    setTimesNsSync(fd, node.mtimeNs);
  }

  async dirFd(node: Node, fd: number, snapPath: string): Promise<void> {
    if (this.chown(node)) await fchownFd(fd, node.uid, node.gid);
    await fchmodFd(fd, node.mode & 0o7777);
    if (node.xattrs !== undefined) this.setXattrs(node, snapPath, { fd });
    await setTimesNs(fd, node.mtimeNs);
  }

  /** Owner, attributes and mtime of a symlink (never followed; its mode means nothing on Linux). */
  async symlink(node: Node, fsPath: Buffer, snapPath: string): Promise<void> {
    if (this.owners) await lchown(fsPath, node.uid, node.gid);
    if (node.xattrs !== undefined) this.setXattrs(node, snapPath, { path: fsPath });
    try {
      await lsetTimesNs(fsPath, node.mtimeNs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSYS') throw err;
    }
  }

  /**
   * Owner, mode, attributes and mtime of a FIFO, device or socket file just created at `fsPath`.
   * chown and chmod follow symlinks, so on Linux they go through an O_PATH|O_NOFOLLOW descriptor
   * of the node, checked to be the kind just made (someone who can write in its directory may have
   * put a symlink in its place); elsewhere through its path (see anchors.ts).
   */
  async special(node: Node, fsPath: Buffer, snapPath: string): Promise<void> {
    const mode = node.mode & 0o7777;
    if (O_PATH !== 0) {
      const fd = await openFd(fsPath, O_PATH | (fsConstants.O_NOFOLLOW ?? 0), 0);
      try {
        const st = await fstatFd(fd);
        if (!isSpecialOfType(st.mode, node.type)) throw Object.assign(new Error('replaced by something else while the restore made it'), { code: 'EEXIST' });
        const own = fdPath(fd);
        if (this.owners) await chownPath(own, node.uid, node.gid);
        await chmodPath(own, mode);
      } finally {
        await closeFd(fd);
      }
    } else {
      if (this.owners) await lchown(fsPath, node.uid, node.gid);
      await chmodPath(fsPath, mode);
    }
    if (node.xattrs !== undefined) this.setXattrs(node, snapPath, { path: fsPath });
    await lsetTimesNs(fsPath, node.mtimeNs);
  }

  /**
   * Sets the node's extended attributes on a descriptor or a path. Problems
   * are reported (one message per entry), never thrown: the entry stays.
   */
  setXattrs(node: Node, snapPath: string, target: { fd: number } | { path: Buffer }): void {
    const list = nodeXattrs(node);
    if (!list || list.length === 0) return;
    if (!this.xattrs) {
      this.report.skip(snapPath, `${list.length} extended attribute${list.length === 1 ? '' : 's'} not restored: ${xattrsUnavailableReason() ?? 'unavailable'}`);
      return;
    }
    const n = nativeFs()!;
    const failed: string[] = [];
    const needRoot: string[] = [];
    for (const { name, value } of list) {
      try {
        if ('fd' in target) n.fsetxattrSync(target.fd, name, value);
        else n.lsetxattrSync(target.path, name, value);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        const shown = name.toString('utf8');
        if ((code === 'EPERM' || code === 'EACCES') && this.euid !== 0 && PRIVILEGED.test(shown)) needRoot.push(shown);
        else failed.push(`${shown} (${code})`);
      }
    }
    if (needRoot.length > 0) this.report.skip(snapPath, `extended attributes not restored (they need root): ${needRoot.join(', ')}`);
    if (failed.length > 0) this.report.error(snapPath, new Error(`extended attributes not restored: ${failed.join(', ')}`));
  }
}
