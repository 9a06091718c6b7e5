/**
 * Directory anchors: how the restore names the places it writes to so that nobody else can redirect
 * them, even a process of another user that can write inside the target while the restore runs.
 *
 * A path like `/target/home/me/file` is looked up again at every call: whoever can write in
 * `/target/home` can swap `me` for a symlink to `/etc` between two calls and have the next file
 * created there. On Linux the restore never walks such a path. It holds a descriptor of the target,
 * and names every entry as `/proc/self/fd/<descriptor of its directory>/<one name>`: the kernel
 * takes the directory the descriptor refers to (wherever it has moved to) and looks up that one
 * name in it, and none of the restore's calls follows a final symlink (O_NOFOLLOW, lstat, mkdir,
 * rename, unlink, symlink, link, mknod).
 *
 * Every directory of the restore gets a descriptor when it is made (or found): opened by its one
 * name in its parent's descriptor, O_DIRECTORY|O_NOFOLLOW. One made in a directory others may
 * write to (the target, an existing directory) is checked to be the restore's own (its owner, mode
 * 0700 at most); if it is not (swapped in by someone else, or a file system whose owners and modes
 * are made up, like vfat), its entries are looked at as in an existing directory. One made in a directory the
 * restore made itself ("safe": nobody else can add, rename or remove entries in a mode-0700
 * directory they do not own) needs no such check. Files of a directory are created, renamed and
 * removed by name in its descriptor (native-fs `writeFilesAt`: openat/renameat, no path lookup at
 * all). Paths stay short however deep the tree (no ENAMETOOLONG at 4096 bytes).
 *
 * A directory's descriptor is closed once everything below it is written and its metadata set; a
 * later use (a hard link to a file in it) opens the way there again, one name at a time. The
 * restore bounds how many descriptors are open at once (its traversal waits).
 *
 * Elsewhere (no `/proc`: macOS, the BSDs), paths are plain paths and the race above is open; see
 * docs/restore.md.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, statSync } from 'node:fs';

/** Flags to open a directory without following a symlink in its place. */
export const DIR_OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_DIRECTORY ?? 0) | (fsConstants.O_NOFOLLOW ?? 0);
/** Linux's O_PATH (the same value on every architecture Node runs on); 0 elsewhere. */
export const O_PATH = process.platform === 'linux' ? 0o10000000 : 0;
/** The skeleton (skeleton.ts) makes directories by paths from a descriptor up to this long (the traversal makes the others). */
export const SKELETON_PATH_BYTES = 1024;
const SLASH = Buffer.from('/');

let forced: boolean | undefined;
let probed: boolean | undefined;

/** Whether the restore anchors directories (Linux with `/proc` mounted). */
export function anchorsAvailable(): boolean {
  if (forced !== undefined) return forced;
  if (probed === undefined) probed = probeProcFd();
  return probed;
}

/** Tests: force anchors off (the plain-path way of other systems) or on; undefined: as detected. */
export function setAnchorsForTesting(on: boolean | undefined): void {
  forced = on;
}

/** `/proc/self/fd/N` names the directory open as N: checked on one descriptor of `/`. */
function probeProcFd(): boolean {
  if (process.platform !== 'linux') return false;
  let fd: number | undefined;
  try {
    fd = openSync('/', DIR_OPEN_FLAGS);
    const a = fstatSync(fd, { bigint: true });
    const b = statSync(fdPath(fd), { bigint: true });
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The path that names directory descriptor `fd`. */
export function fdPath(fd: number): Buffer {
  return Buffer.from(`/proc/self/fd/${fd}`, 'latin1');
}

/** `prefix/name`. */
export function childPath(prefix: Buffer, name: Buffer): Buffer {
  return Buffer.concat([prefix, SLASH, name]);
}

let madeUpOwners = false;

/**
 * Tests: every directory the restore makes where others may write looks like someone else's (as on
 * vfat, whose owners and modes are made up by the mount).
 */
export function setMadeUpOwnersForTesting(on: boolean): void {
  madeUpOwners = on;
}

/** Whether `st` of a directory just made is the restore's own (`euid`, mode 0700 at most). */
export function ownMadeDirectory(st: { uid: number; mode: number }, euid: number): boolean {
  return !madeUpOwners && (euid < 0 || st.uid === euid) && (st.mode & 0o077) === 0;
}

let maxForTesting: number | undefined;

/** Tests: bound the directory descriptors a restore keeps open (undefined: from the limit). */
export function setMaxOpenDirsForTesting(n: number | undefined): void {
  maxForTesting = n;
}

/**
 * How many directory descriptors the restore keeps open at most: a quarter of the soft limit on
 * open files (Node raises it to the hard limit at start), at most 1,024.
 */
export function maxOpenDirs(): number {
  if (maxForTesting !== undefined) return maxForTesting;
  let soft = 4096;
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (m) soft = Number(m[1]);
  } catch {
    // not Linux: the default
  }
  return Math.max(64, Math.min(1024, Math.floor(soft / 4)));
}

/** Removes Node's `, op '/proc/self/fd/…'` tails from a message (the report names the entry). */
export function withoutAnchorPaths(message: string): string {
  return message.includes('/proc/self/fd/') ? message.replace(/ '\/proc\/self\/fd\/[^']*'( -> '\/proc\/self\/fd\/[^']*')?/g, '') : message;
}
