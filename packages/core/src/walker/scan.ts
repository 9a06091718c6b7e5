/**
 * Directories of the walk read by the native addon: a directory's listing with every entry's lstat
 * (relative to the directory), symlink targets and, when asked, extended attributes, in one call.
 * With a warm cache the walker reads each directory on the main thread (`scanDirSync`: a hand-over
 * to the threadpool costs more than the reading); when reads turn slow (a cold cache, a network
 * file system) it reads a few directories per threadpool job (`scanDirs`), ahead of the walk, so
 * that several reads are in flight. Linux only; elsewhere, without the addon, or with injected
 * file-system calls, the walker uses Node's `fs` (walk.ts).
 */
import type { BigIntStats } from 'node:fs';
import { getSystemErrorMap } from 'node:util';
import { nativeFs, type NativeScan } from '../native/native-fs.js';
import { anchorsAvailable } from '../restore/anchors.js';
import { XATTR_LIMITS } from '../xattr/codec.js';

/** Which extended attributes a scan reads: of no entry, of entries other than regular files, of all. */
export type ScanXattrs = 'none' | 'non-files' | 'all';

const FLAG_XATTR_FILES = 1;
const FLAG_XATTR_OTHER = 2;
const FLAG_LINKS = 4;
const FLAG_XATTRS_AT = 8;
const INTS = 6;
const STATS = 16;
const NS = 1_000_000_000n;
const MS = 1_000_000n;

const S_IFMT = 0o170000n;

/** An lstat result from a scan, with the fields and methods of Node's `BigIntStats` (birthtime is ctime, as libuv reports it without statx). */
export class ScanStats implements BigIntStats {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mode: bigint;
  readonly nlink: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly rdev: bigint;
  readonly size: bigint;
  readonly blksize: bigint;
  readonly blocks: bigint;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;

  constructor(s: BigInt64Array, at: number) {
    this.dev = s[at]!;
    this.ino = s[at + 1]!;
    this.mode = s[at + 2]!;
    this.nlink = s[at + 3]!;
    this.uid = s[at + 4]!;
    this.gid = s[at + 5]!;
    this.rdev = s[at + 6]!;
    this.size = s[at + 7]!;
    this.blksize = s[at + 8]!;
    this.blocks = s[at + 9]!;
    this.atimeNs = s[at + 10]! * NS + s[at + 11]!;
    this.mtimeNs = s[at + 12]! * NS + s[at + 13]!;
    this.ctimeNs = s[at + 14]! * NS + s[at + 15]!;
  }

  get birthtimeNs(): bigint {
    return this.ctimeNs;
  }
  get atimeMs(): bigint {
    return this.atimeNs / MS;
  }
  get mtimeMs(): bigint {
    return this.mtimeNs / MS;
  }
  get ctimeMs(): bigint {
    return this.ctimeNs / MS;
  }
  get birthtimeMs(): bigint {
    return this.ctimeNs / MS;
  }
  get atime(): Date {
    return new Date(Number(this.atimeMs));
  }
  get mtime(): Date {
    return new Date(Number(this.mtimeMs));
  }
  get ctime(): Date {
    return new Date(Number(this.ctimeMs));
  }
  get birthtime(): Date {
    return new Date(Number(this.ctimeMs));
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000n;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000n;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000n;
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === 0o010000n;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === 0o140000n;
  }
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === 0o020000n;
  }
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === 0o060000n;
  }
}

/** Extended attributes as the addon lists them: [name, value | size over the limit | -errno, ...]. */
export type XattrList = Array<Buffer | number> & { truncated?: number };

/**
 * One entry of a scanned directory. `stat` is an Error when its lstat failed. `link` is the
 * symlink target (an Error when readlink failed; undefined when not read). `xattrs`: the list, null
 * when read and there are none, an Error when listing them failed, undefined when not read.
 */
export interface ScannedEntry {
  name: Buffer;
  stat: ScanStats | NodeJS.ErrnoException;
  link: Buffer | NodeJS.ErrnoException | undefined;
  xattrs: XattrList | NodeJS.ErrnoException | null | undefined;
}

let errorMap: Map<number, [string, string]> | undefined;

/** An fs-style error (code, errno, syscall, path) for a negated errno of the addon. */
export function errnoError(negErrno: number, syscall: string, path: Buffer): NodeJS.ErrnoException {
  errorMap ??= getSystemErrorMap();
  const [code, desc] = errorMap.get(negErrno) ?? ['EUNKNOWN', `error ${-negErrno}`];
  const p = path.toString('utf8');
  return Object.assign(new Error(`${code}: ${desc}, ${syscall} '${p}'`), { errno: negErrno, code, syscall, path: p });
}

function joinName(dir: Buffer, name: Buffer): Buffer {
  const slash = dir.length > 0 && dir[dir.length - 1] === 0x2f;
  return Buffer.concat(slash ? [dir, name] : [dir, Buffer.from('/'), name]);
}

/** The native scanner, when the addon has it (Linux). */
export function nativeScanAvailable(): boolean {
  const n = nativeFs();
  return typeof n?.scanDirs === 'function' && typeof n.scanDirSync === 'function';
}

/**
 * A directory's entries, with the device and inode of the directory the scanner actually opened
 * (undefined from an addon built before it gave them).
 */
export type ScanListing = ScannedEntry[] & { opened?: { dev: bigint; ino: bigint } };

/** A directory's entries, or why it could not be read (code, syscall 'scandir'). */
export type ScanOutcome = ScanListing | NodeJS.ErrnoException;

/** Whether two device or inode numbers are the same (the addon gives them signed, Node's lstat unsigned). */
export function sameId(a: bigint, b: bigint): boolean {
  return a === b || BigInt.asUintN(64, a) === BigInt.asUintN(64, b);
}

/**
 * Whether the scanner can read attributes by name in the directory's descriptor
 * (`/proc/self/fd/N/name`), so that a directory above swapped for a symlink cannot make it read
 * those of an entry elsewhere. The walker asks for it where others can write above a directory.
 */
export function scanXattrsAtAvailable(): boolean {
  return nativeFs()?.scanXattrsAt === true && anchorsAvailable();
}

/**
 * Reads the directories `dirs` in one threadpool job; never rejects (a failed job is each
 * directory's error). `at`: read attributes by name in each directory's descriptor.
 */
export async function scanDirectories(dirs: Buffer[], xattrs: ScanXattrs, at = false): Promise<ScanOutcome[]> {
  const flags = flagsFor(xattrs, at);
  let results: Array<NativeScan | Error>;
  try {
    results = await nativeFs()!.scanDirs!(dirs, flags, XATTR_LIMITS.maxValue, XATTR_LIMITS.maxCount, XATTR_LIMITS.maxList);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return dirs.map(() => e);
  }
  return results.map((r, i) => (r instanceof Error ? r : entriesOf(dirs[i]!, r)));
}

/** Reads the directory `dir` on this thread (a warm cache: no hand-over to the threadpool). */
export function scanDirectorySync(dir: Buffer, xattrs: ScanXattrs, at = false): ScanOutcome {
  try {
    return entriesOf(dir, nativeFs()!.scanDirSync!(dir, flagsFor(xattrs, at), XATTR_LIMITS.maxValue, XATTR_LIMITS.maxCount, XATTR_LIMITS.maxList));
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

function flagsFor(xattrs: ScanXattrs, at: boolean): number {
  return FLAG_LINKS | (xattrs === 'all' ? FLAG_XATTR_FILES | FLAG_XATTR_OTHER : xattrs === 'non-files' ? FLAG_XATTR_OTHER : 0) | (at && xattrs !== 'none' ? FLAG_XATTRS_AT : 0);
}

function entriesOf(dir: Buffer, r: NativeScan): ScanListing {
  const { count, names, ints, stats } = r;
  const lists = new Map<number, XattrList>();
  for (let i = 0; i + 1 < r.xattrs.length; i += 2) lists.set(r.xattrs[i] as number, r.xattrs[i + 1] as XattrList);
  const out: ScanListing = new Array<ScannedEntry>(count);
  if (r.dev !== undefined && r.ino !== undefined) out.opened = { dev: r.dev, ino: r.ino };
  for (let i = 0; i < count; i++) {
    const o = i * INTS;
    const name = names.subarray(ints[o]!, ints[o]! + ints[o + 1]!);
    const lstatErr = ints[o + 2]!;
    if (lstatErr !== 0) {
      out[i] = { name, stat: errnoError(lstatErr, 'lstat', joinName(dir, name)), link: undefined, xattrs: undefined };
      continue;
    }
    const linkLen = ints[o + 4]!;
    const link = linkLen >= 0 ? names.subarray(ints[o + 3]!, ints[o + 3]! + linkLen) : linkLen < -1 ? errnoError(linkLen, 'readlink', joinName(dir, name)) : undefined;
    const state = ints[o + 5]!;
    const xa = state === 0 ? undefined : state === 1 ? null : state === 2 ? lists.get(i) ?? null : errnoError(state, 'llistxattr', joinName(dir, name));
    out[i] = { name, stat: new ScanStats(stats, i * STATS), link, xattrs: xa };
  }
  return out;
}
