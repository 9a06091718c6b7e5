/**
 * The local metadata cache of a remote repository (`<cacheDir>/<repository id>/`): index files,
 * snapshot files and the packs that hold tree blobs, so that `snapshots`, `ls`, `diff`, `find`
 * and a backup's change detection do not fetch them again on every run.
 *
 * The cache is never a source of truth:
 * - Every file is verified when read from the cache exactly as when read from storage: index and
 *   snapshot files by their name (the SHA-256 of their bytes) before they are decrypted, packs by
 *   their name when they are cached, and each tree blob by its AEAD tag and HMAC id when it is
 *   opened. A cached file that fails is dropped and read from storage again.
 * - It is invalidated by the repository's listings: cached index and snapshot files the storage no
 *   longer lists are removed, and so are cached packs the index no longer names.
 * - It is keyed by the repository id (from the encrypted config), so a new repository at the same
 *   URL never sees an old repository's cache.
 * - Two processes may share it: files are written to a temporary name and renamed into place, and
 *   a file that another process removed is simply a miss. Temporary files a killed process left
 *   behind are removed by cleaning once they are a day old.
 * - Everything under its directory may be damaged or planted (a crash, a copied cache, another
 *   process): a file is read only when it is a regular file within the size a valid one can have
 *   (never through a symlink, never a FIFO that would block), anything else in its place is
 *   removed, and writes and cleaning never follow a symlinked directory out of the cache. Only
 *   SHA-256 names become paths: a name from a listing or a caller cannot climb out with `..`.
 *
 * Cache failures (disk full, permissions) never fail a command: they are logged once, and the
 * cache is bypassed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MAX_INDEX_FILE_SIZE, MAX_SNAPSHOT_FILE_SIZE } from '../repository/limits.js';

/** Packs above this size are not cached (a tree pack is about the pack size, 16 MiB by default). */
export const MAX_CACHED_PACK = 128 * 1024 * 1024;

const CACHEDIR_TAG =
  'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by Kiwi (a backup tool).\n# For information about cache directory tags, see https://bford.info/cachedir/\n';

type MetaType = 'index' | 'snapshot';
const DIRS: Record<MetaType | 'data', string> = { index: 'index', snapshot: 'snapshots', data: 'data' };

/** The name of every file the cache holds: a SHA-256 (of an index or snapshot file, or of a pack). */
const NAME = /^[0-9a-f]{64}$/;

/**
 * The largest cache file of each kind that is read: what a storage read allows (see
 * repository/whole-file.ts), and for packs what {@link RepositoryCache.putPack} caches.
 */
const MAX_SIZE: Record<MetaType | 'data', number> = { index: MAX_INDEX_FILE_SIZE, snapshot: MAX_SNAPSHOT_FILE_SIZE, data: MAX_CACHED_PACK };

// O_NOFOLLOW: a symlink in place of a cache file is not followed (out of the cache); O_NONBLOCK:
// opening a FIFO in its place does not wait for a writer for ever. Neither changes reading a file.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
/** What opening with {@link READ_FLAGS} fails with when something other than a file is there. */
const NOT_A_FILE = new Set(['ELOOP', 'EMLINK', 'ENXIO']);

/** A temporary file this old was left by a process killed while writing it (a write takes seconds). */
const STALE_TMP_MS = 24 * 60 * 60 * 1000;

export class RepositoryCache {
  readonly dir: string;
  private disabled = false;
  private readonly warn: (message: string) => void;
  private warned = false;

  private constructor(dir: string, warn: (message: string) => void) {
    this.dir = dir;
    this.warn = warn;
  }

  /** Open (creating) the cache of repository `repositoryId` under `base`. Undefined when it cannot be created. */
  static async open(base: string, repositoryId: string, warn: (message: string) => void = () => undefined): Promise<RepositoryCache | undefined> {
    if (!/^[0-9a-f]{16,128}$/.test(repositoryId)) return undefined;
    const dir = join(base, repositoryId);
    try {
      for (const d of [dir, join(dir, DIRS.index), join(dir, DIRS.snapshot), join(dir, DIRS.data)]) await realDir(d);
      await writeFile(join(base, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    } catch (err) {
      warn(`the cache at ${dir} cannot be used (${(err as Error).message}); reading everything from the repository`);
      return undefined;
    }
    return new RepositoryCache(dir, warn);
  }

  /**
   * The cache file of `name`; undefined when `name` is no SHA-256. Names come from storage listings
   * (a custom adapter's may hold anything) and from callers: `../…` must not reach out of the cache.
   */
  private path(type: MetaType | 'data', name: string): string | undefined {
    if (!NAME.test(name)) return undefined;
    return type === 'data' ? join(this.dir, DIRS.data, name.slice(0, 2), name) : join(this.dir, DIRS[type], name);
  }

  /**
   * The cache file at `path` opened for reading, with its size, when it is a regular file of at most
   * `max` bytes; else undefined. Anything else in its place (a symlink, FIFO, socket, device,
   * directory, or a file larger than a valid one) is removed unread: the cache's files are checked
   * before a byte is read, as storage reads are.
   */
  private async openFile(path: string, max: number): Promise<{ fh: FileHandle; size: number } | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(path, READ_FLAGS);
    } catch (err) {
      // A symlink (ELOOP; EMLINK on FreeBSD) or a socket (ENXIO) goes; any other failure (a miss,
      // too many open files) is only a miss.
      if (NOT_A_FILE.has((err as NodeJS.ErrnoException).code ?? '')) await removeEntry(path);
      return undefined;
    }
    try {
      const st = await fh.stat();
      if (st.isFile() && st.size <= max) return { fh, size: st.size };
    } catch {
      // unusable: as damaged
    }
    await fh.close().catch(() => undefined);
    await removeEntry(path);
    return undefined;
  }

  /** False once a failure turned the cache off for this process (its reads all miss). */
  get usable(): boolean {
    return !this.disabled;
  }

  private fail(err: unknown): void {
    if (!this.warned) {
      this.warned = true;
      this.warn(`the cache at ${this.dir} failed (${(err as Error).message}); reading from the repository instead`);
    }
    this.disabled = true;
  }

  /**
   * A cached index or snapshot file, verified by its name; undefined on a miss (a damaged file is
   * removed). `size`: the file's size in the storage listing, when the caller has it: a cached copy
   * of another size is not the file, and is not read.
   */
  async getMetadata(type: MetaType, name: string, size?: number): Promise<Buffer | undefined> {
    const path = this.path(type, name);
    if (this.disabled || !path) return undefined;
    const file = await this.openFile(path, Math.min(size ?? Infinity, MAX_SIZE[type]));
    if (!file) return undefined;
    let bytes: Buffer | undefined;
    try {
      if (size === undefined || file.size === size) bytes = await readAll(file.fh, file.size);
    } catch {
      bytes = undefined;
    } finally {
      await file.fh.close().catch(() => undefined);
    }
    if (!bytes || createHash('sha256').update(bytes).digest('hex') !== name) {
      await removeEntry(path);
      return undefined;
    }
    return bytes;
  }

  /** Cache an index or snapshot file (its bytes as stored; the caller verified them). */
  async putMetadata(type: MetaType, name: string, bytes: Uint8Array): Promise<void> {
    const path = this.path(type, name);
    if (this.disabled || !path) return;
    await this.write(path, bytes);
  }

  /** Remove cached files of `type` the repository no longer lists. */
  async clean(type: MetaType, listed: ReadonlySet<string>): Promise<void> {
    if (this.disabled) return;
    const dir = join(this.dir, DIRS[type]);
    let names: string[];
    try {
      // Not through a symlink in the directory's place: the files where it points would go.
      if (!(await lstat(dir)).isDirectory()) return;
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const n of names) if (!listed.has(n)) await discard(dir, n);
  }

  /** Read `length` bytes at `offset` of a cached pack; undefined on a miss. */
  async readPack(name: string, offset: number, length: number): Promise<Buffer | undefined> {
    const path = this.path('data', name);
    if (this.disabled || !path) return undefined;
    const file = await this.openFile(path, MAX_SIZE.data);
    if (!file) return undefined;
    try {
      // A pack cut short is a miss (before allocating for the read): the pack is fetched and cached anew.
      if (offset + length > file.size) return undefined;
      const out = Buffer.allocUnsafe(length);
      const { bytesRead } = await file.fh.read(out, 0, length, offset);
      return bytesRead === length ? out : undefined;
    } catch {
      return undefined;
    } finally {
      await file.fh.close().catch(() => undefined);
    }
  }

  /** Cache a whole pack, after checking that its bytes have the pack's name. */
  async putPack(name: string, bytes: Uint8Array): Promise<boolean> {
    if (this.disabled || bytes.byteLength > MAX_CACHED_PACK) return false;
    const path = this.path('data', name);
    if (!path || createHash('sha256').update(bytes).digest('hex') !== name) return false;
    await this.write(path, bytes);
    return !this.disabled;
  }

  async dropPack(name: string): Promise<void> {
    const path = this.path('data', name);
    if (path) await removeEntry(path);
  }

  /** Remove cached packs for which `keep(name)` is false. */
  async cleanPacks(keep: (name: string) => boolean): Promise<void> {
    if (this.disabled) return;
    const data = join(this.dir, DIRS.data);
    let subs: Dirent[];
    try {
      if (!(await lstat(data)).isDirectory()) return;
      subs = await readdir(data, { withFileTypes: true });
    } catch {
      return;
    }
    for (const sub of subs) {
      const dir = join(data, sub.name);
      // Only real subdirectories are listed: through a symlink in place of one, the files where it
      // points would go. Such a link (or a file) is removed instead; only directories belong here.
      if (!sub.isDirectory()) {
        await removeEntry(dir);
        continue;
      }
      let names: string[] = [];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      // Each entry is removed where it was listed, not at the path its name implies: that may be
      // another subdirectory (a symlink, even).
      for (const n of names) if (n.startsWith('.') || !keep(n)) await discard(dir, n);
    }
  }

  private async write(path: string, bytes: Uint8Array): Promise<void> {
    const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
    try {
      // (A real directory: a `data/xx` symlink, put there since the cache was opened, is not written through.)
      await realDir(dirname(path));
      await writeFile(tmp, bytes, { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      this.fail(err);
    }
  }
}

/**
 * Make `path` a real directory (creating it and its parents): a symlink or file in its place is
 * removed first, so that writes and cleaning never follow a link out of the cache directory (a
 * cache copied from elsewhere, or another process, may have put one there).
 */
async function realDir(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isDirectory()) return;
  if (st) await rm(path, { force: true }); // the link itself, never what it points to
  await mkdir(path, { recursive: true, mode: 0o700 });
  // (mkdir accepts a symlink to a directory that appeared meanwhile.)
  if (!(await lstat(path)).isDirectory()) throw new Error(`${path} is not a directory`);
}

/**
 * Remove a cache entry: a file, a symlink (never what it points to), or a directory in a file's
 * place (otherwise a file could never be cached there again: renaming onto a directory fails).
 */
async function removeEntry(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => undefined);
}

/**
 * Remove the unwanted entry `name` of the cache directory `dir`. A temporary file (`.…`) belongs to
 * a write in progress, maybe another process's: it goes only once it is stale.
 */
async function discard(dir: string, name: string): Promise<void> {
  const path = join(dir, name);
  if (name.startsWith('.')) {
    const st = await lstat(path).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < STALE_TMP_MS) return;
  }
  await removeEntry(path);
}

/** `size` bytes from the start of `fh`, or fewer when the file is shorter by now. */
async function readAll(fh: FileHandle, size: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(size);
  let filled = 0;
  while (filled < size) {
    const { bytesRead } = await fh.read(out, filled, size - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return out.subarray(0, filled);
}
