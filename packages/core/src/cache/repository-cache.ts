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
 *   a file that another process removed is simply a miss.
 *
 * Cache failures (disk full, permissions) never fail a command: they are logged once, and the
 * cache is bypassed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Packs above this size are not cached (a tree pack is about the pack size, 16 MiB by default). */
export const MAX_CACHED_PACK = 128 * 1024 * 1024;

const CACHEDIR_TAG =
  'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by Kiwi (a backup tool).\n# For information about cache directory tags, see https://bford.info/cachedir/\n';

type MetaType = 'index' | 'snapshot';
const DIRS: Record<MetaType | 'data', string> = { index: 'index', snapshot: 'snapshots', data: 'data' };

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
      await mkdir(join(dir, DIRS.index), { recursive: true, mode: 0o700 });
      await mkdir(join(dir, DIRS.snapshot), { recursive: true, mode: 0o700 });
      await mkdir(join(dir, DIRS.data), { recursive: true, mode: 0o700 });
      await writeFile(join(base, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    } catch (err) {
      warn(`the cache at ${dir} cannot be used (${(err as Error).message}); reading everything from the repository`);
      return undefined;
    }
    return new RepositoryCache(dir, warn);
  }

  private path(type: MetaType | 'data', name: string): string {
    return type === 'data' ? join(this.dir, DIRS.data, name.slice(0, 2), name) : join(this.dir, DIRS[type], name);
  }

  private fail(err: unknown): void {
    if (!this.warned) {
      this.warned = true;
      this.warn(`the cache at ${this.dir} failed (${(err as Error).message}); reading from the repository instead`);
    }
    this.disabled = true;
  }

  /** A cached index or snapshot file, verified by its name; undefined on a miss (a damaged file is removed). */
  async getMetadata(type: MetaType, name: string): Promise<Buffer | undefined> {
    if (this.disabled) return undefined;
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path(type, name));
    } catch {
      return undefined;
    }
    if (createHash('sha256').update(bytes).digest('hex') !== name) {
      await this.remove(type, name);
      return undefined;
    }
    return bytes;
  }

  /** Cache an index or snapshot file (its bytes as stored; the caller verified them). */
  async putMetadata(type: MetaType, name: string, bytes: Uint8Array): Promise<void> {
    if (this.disabled) return;
    await this.write(this.path(type, name), bytes);
  }

  /** Remove cached files of `type` the repository no longer lists. */
  async clean(type: MetaType, listed: ReadonlySet<string>): Promise<void> {
    if (this.disabled) return;
    let names: string[];
    try {
      names = await readdir(join(this.dir, DIRS[type]));
    } catch {
      return;
    }
    for (const n of names) if (!listed.has(n) && !n.startsWith('.')) await this.remove(type, n);
  }

  /** Read `length` bytes at `offset` of a cached pack; undefined on a miss. */
  async readPack(name: string, offset: number, length: number): Promise<Buffer | undefined> {
    if (this.disabled) return undefined;
    let fh;
    try {
      fh = await open(this.path('data', name), 'r');
    } catch {
      return undefined;
    }
    try {
      const out = Buffer.allocUnsafe(length);
      const { bytesRead } = await fh.read(out, 0, length, offset);
      return bytesRead === length ? out : undefined;
    } catch {
      return undefined;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** Cache a whole pack, after checking that its bytes have the pack's name. */
  async putPack(name: string, bytes: Uint8Array): Promise<boolean> {
    if (this.disabled || bytes.byteLength > MAX_CACHED_PACK) return false;
    if (createHash('sha256').update(bytes).digest('hex') !== name) return false;
    await this.write(this.path('data', name), bytes);
    return !this.disabled;
  }

  async dropPack(name: string): Promise<void> {
    await this.remove('data', name);
  }

  /** Remove cached packs for which `keep(name)` is false. */
  async cleanPacks(keep: (name: string) => boolean): Promise<void> {
    if (this.disabled) return;
    let subs: string[];
    try {
      subs = await readdir(join(this.dir, DIRS.data));
    } catch {
      return;
    }
    for (const sub of subs) {
      let names: string[] = [];
      try {
        names = await readdir(join(this.dir, DIRS.data, sub));
      } catch {
        continue;
      }
      for (const n of names) if (!n.startsWith('.') && !keep(n)) await this.remove('data', n);
    }
  }

  private async write(path: string, bytes: Uint8Array): Promise<void> {
    const tmp = join(path, '..', `.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
      await writeFile(tmp, bytes, { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      this.fail(err);
    }
  }

  private async remove(type: MetaType | 'data', name: string): Promise<void> {
    await rm(this.path(type, name), { force: true }).catch(() => undefined);
  }
}
