/**
 * Restoring into a directory that already holds files: what is there is
 * looked at only where the restore did not create the directory itself (a
 * fresh restore pays nothing for this).
 *
 * Overwrite policy (`overwrite`), for each entry of the snapshot that finds
 * something at its path:
 * - `always`: replace it.
 * - `if-changed` (default, as restic): a regular file of the same size and
 *   mtime is taken to be the same content, and only its metadata is set;
 *   anything else is replaced.
 * - `if-newer`: replace it only when the snapshot's mtime is later.
 * - `never`: leave it as it is.
 * Entries left as they were are counted (`kept`, `unchanged`), so a restore
 * never silently mixes old and new.
 *
 * Type changes: a file, symlink or special file where a directory goes is
 * replaced by the directory; a directory where a file (or symlink, ...) goes
 * is replaced when it is empty, or with `delete`; otherwise that entry fails
 * ("a directory is in the way"), never with EISDIR.
 *
 * `delete`: once a restored directory is complete, each entry in it that the
 * snapshot does not have is removed, unless the restore's exclude patterns
 * (or its includes) leave that path out anyway. Only in directories the
 * restore brings back as a whole; never above the restored paths.
 */
import { close as fsClose, fstat as fsFstat, lstatSync, open as fsOpen, statSync, type BigIntStats, type Dirent } from 'node:fs';
import { lstat, opendir, readdir, rmdir, stat, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Node } from '../repository/types.js';
import { exactTimesAvailable } from './times.js';
import { isLeftoverTemp, isTempName } from './temp.js';
import { DIR_OPEN_FLAGS, anchorsAvailable, childPath, fdPath } from './anchors.js';

const openFd = promisify(fsOpen) as (path: Buffer, flags: number) => Promise<number>;
const closeFd = promisify(fsClose);
const fstatFd = promisify(fsFstat) as (fd: number, opts: { bigint: true }) => Promise<BigIntStats>;

export type OverwritePolicy = 'always' | 'if-changed' | 'if-newer' | 'never';
export const OVERWRITE_POLICIES: readonly OverwritePolicy[] = ['always', 'if-changed', 'if-newer', 'never'];

/** What to do with one entry whose path may hold something. */
export type Plan =
  /** Nothing there (or it was cleared): create the entry. */
  | { kind: 'write' }
  /** Same file (if-changed): keep the content, set the metadata. */
  | { kind: 'meta' }
  /** Leave what is there (the policy says so). */
  | { kind: 'keep'; reason: string }
  /** Cannot be replaced: an error of the entry. */
  | { kind: 'fail'; reason: string };

function lstatOrUndefined(p: Buffer): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** mtime equality at the precision this restore sets times with (ns with the native addon, else µs). */
function sameMtime(st: BigIntStats, mtimeNs: string): boolean {
  const want = BigInt(mtimeNs);
  if (exactTimesAvailable()) return st.mtimeNs === want;
  return st.mtimeNs / 1000n === want / 1000n;
}

export class ExistingTarget {
  /** Entries removed by `delete` (and directories removed to make room). */
  deleted = 0;

  constructor(
    readonly policy: OverwritePolicy,
    readonly deleteExtra: boolean,
  ) {}

  /**
   * Decides for a non-directory entry at `fsPath` (in a directory the restore
   * did not create). Clears a directory in the way when allowed.
   */
  async plan(node: Node, fsPath: Buffer): Promise<Plan> {
    const st = lstatOrUndefined(fsPath);
    if (!st) return { kind: 'write' };
    if (this.policy === 'never') return { kind: 'keep', reason: 'exists (--overwrite never)' };
    const newer = BigInt(node.mtimeNs) > st.mtimeNs;
    if (this.policy === 'if-newer' && !newer) return { kind: 'keep', reason: 'the existing entry is not older (--overwrite if-newer)' };
    if (st.isDirectory()) {
      // A directory where a file goes: replaced only when empty, or with --delete.
      try {
        await rmdir(fsPath);
        this.deleted++;
        return { kind: 'write' };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      }
      if (!this.deleteExtra) return { kind: 'fail', reason: `a directory is in the way (not empty; --delete replaces it)` };
      const slash = fsPath.lastIndexOf(0x2f);
      const parent = fsPath.subarray(0, slash);
      await removeTree(parent, fsPath.subarray(slash + 1), statSync(parent, { bigint: true }).dev);
      this.deleted++;
      return { kind: 'write' };
    }
    if (this.policy === 'if-changed' && node.type === 'file' && st.isFile() && st.size === BigInt(node.size) && sameMtime(st, node.mtimeNs)) {
      return { kind: 'meta' };
    }
    return { kind: 'write' };
  }

  /**
   * Decides for a directory entry of a directory the restore did not create:
   * `new` (nothing there, or a non-directory that was removed), `existing` (a
   * directory is there: its entries are looked at too), `keep` (the policy
   * leaves the non-directory there; the directory is not restored).
   */
  async planDir(node: Node, fsPath: Buffer): Promise<'new' | 'existing' | 'keep'> {
    const st = lstatOrUndefined(fsPath);
    if (!st) return 'new';
    if (st.isDirectory()) return 'existing';
    if (this.policy === 'never') return 'keep';
    if (this.policy === 'if-newer' && !(BigInt(node.mtimeNs) > st.mtimeNs)) return 'keep';
    await unlink(fsPath);
    this.deleted++;
    return 'new';
  }
}

/**
 * Removes the temporary files that killed restores left in directory
 * `dirPath` (see temp.ts). Returns how many. Errors other than a vanished
 * file are thrown.
 */
export async function removeLeftoverTemps(dirPath: Buffer): Promise<number> {
  let removed = 0;
  const dir = await opendir(dirPath, { encoding: 'buffer' as BufferEncoding, bufferSize: 256 });
  const leftovers: Buffer[] = [];
  for await (const d of dir as AsyncIterable<Dirent>) {
    const name = d.name as unknown as Buffer;
    if (name.length < 20 || name[0] !== 0x2e) continue;
    const s = name.toString('latin1');
    if (isTempName(s) && isLeftoverTemp(s) && d.isFile()) leftovers.push(childPath(dirPath, name));
  }
  for (const p of leftovers) {
    try {
      await unlink(p);
      removed++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}

/**
 * `delete`: removes the entries of directory `dirPath` whose names (latin1
 * keys) are not in `keep`, unless `spared(name)` says the restore's patterns
 * leave that path out. Temporary files of running restores are left alone.
 * Returns the paths removed (`onError` gets the ones that could not be).
 */
export async function deleteExtras(
  dirPath: Buffer,
  keep: ReadonlyMap<string, unknown>,
  spared: (name: Buffer, isDir: boolean) => boolean,
  onError: (name: Buffer, err: unknown) => void,
): Promise<Buffer[]> {
  const dir = await opendir(dirPath, { encoding: 'buffer' as BufferEncoding, bufferSize: 256 });
  const extra: Array<{ name: Buffer; isDir: boolean }> = [];
  for await (const d of dir as AsyncIterable<Dirent>) {
    const name = d.name as unknown as Buffer;
    const key = name.toString('latin1');
    if (keep.has(key) || isTempName(key)) continue;
    if (spared(name, d.isDirectory())) continue;
    extra.push({ name, isDir: d.isDirectory() });
  }
  const removed: Buffer[] = [];
  // (stat, not lstat: `dirPath` may be a /proc/self/fd/N anchor, see anchors.ts.)
  const dev = extra.some((e) => e.isDir) ? (await stat(dirPath, { bigint: true })).dev : 0n;
  for (const { name, isDir } of extra) {
    try {
      if (isDir) await removeTree(dirPath, name, dev);
      else await unlink(childPath(dirPath, name));
      removed.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onError(name, err);
    }
  }
  return removed;
}

/**
 * Removes entry `name` of directory `dirPath` and everything below it, never following a symlink
 * and never entering another file system (a mount point below is an error, and nothing of it is
 * removed). `dev`: the device the tree must be on. Each directory is opened (O_NOFOLLOW) and its
 * entries are named through its descriptor (anchors.ts), so a directory swapped for a symlink
 * while this runs is not followed.
 */
export async function removeTree(dirPath: Buffer, name: Buffer, dev: bigint): Promise<void> {
  const path = childPath(dirPath, name);
  const st = await lstat(path, { bigint: true });
  if (!st.isDirectory()) {
    await unlink(path);
    return;
  }
  if (st.dev !== dev) throw Object.assign(new Error(`${name.toString()} is a mount point: not removed`), { code: 'EXDEV', syscall: 'rmdir' });
  if (anchorsAvailable()) {
    const fd = await openFd(path, DIR_OPEN_FLAGS);
    try {
      const own = await fstatFd(fd, { bigint: true });
      if (own.dev !== st.dev || own.ino !== st.ino) throw Object.assign(new Error(`${name.toString()} was replaced while it was being removed`), { code: 'EBUSY', syscall: 'rmdir' });
      const here = fdPath(fd);
      for (const child of await readdir(here, { encoding: 'buffer' })) await removeTree(here, child, dev);
    } finally {
      await closeFd(fd);
    }
  } else {
    for (const child of await readdir(path, { encoding: 'buffer' })) await removeTree(path, child, dev);
  }
  await rmdir(path);
}
