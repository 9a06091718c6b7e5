/**
 * The SFTP {@link Storage} ({@link createSftpStorage}), delegating to the modules beside it:
 * `options.ts` (options and ssh config), `auth.ts` (credentials, host keys), `connection.ts` and
 * `pool.ts` (connections), `requests.ts` (single SFTP requests), `read.ts`, `write.ts` and `list.ts`
 * (the Storage operations), `errors.ts` (error mapping).
 */
import type { FileInfo, FileType, Handle, LoadOptions, SaveSource, Storage } from '@kiwi-backup/core';
import { isNotFound } from './errors.js';
import { list, remove, removeTemporaries, stat } from './list.js';
import { formatLocation, resolveSftpOptions, type Resolved, type SftpStorageOptions } from './options.js';
import { SftpPool } from './pool.js';
import { load } from './read.js';
import { mkdirs } from './requests.js';
import { save, saveFrom } from './write.js';

/**
 * A Kiwi {@link Storage} on an SFTP server. Files live at `<path>/<handlePath(handle)>`.
 * Opening is lazy: the first call connects. See {@link SftpStorageOptions}.
 */
export function createSftpStorage(options: SftpStorageOptions): Storage {
  return new SftpStorage(resolveSftpOptions(options));
}

class SftpStorage implements Storage {
  readonly location: string;
  private readonly r: Resolved;
  private readonly pool: SftpPool;

  constructor(r: Resolved) {
    this.r = r;
    this.location = formatLocation(r);
    this.pool = new SftpPool(r, this.location);
  }

  async create(): Promise<void> {
    await this.pool.run('create', '', async (c) => {
      await mkdirs(c, this.r.path);
      const dirs = ['keys', 'locks', 'snapshots', 'index', 'data'];
      await Promise.all(dirs.map((d) => mkdirs(c, this.pool.full(d))));
      const subs: string[] = [];
      for (let i = 0; i < 256; i++) subs.push(this.pool.full(`data/${i.toString(16).padStart(2, '0')}`));
      await Promise.all(subs.map((d) => mkdirs(c, d)));
    });
  }

  save(handle: Handle, data: Uint8Array): Promise<void> {
    return save(this.pool, handle, data);
  }

  saveFrom(handle: Handle, source: SaveSource): Promise<void> {
    return saveFrom(this.pool, handle, source);
  }

  load(handle: Handle, options?: LoadOptions): Promise<Buffer> {
    return load(this.pool, handle, options);
  }

  stat(handle: Handle): Promise<FileInfo> {
    return stat(this.pool, handle);
  }

  list(type: FileType): AsyncIterable<FileInfo> {
    return list(this.pool, type);
  }

  remove(handle: Handle): Promise<void> {
    return remove(this.pool, handle);
  }

  removeTemporaries(olderThanMs: number): Promise<{ files: number; bytes: number }> {
    return removeTemporaries(this.pool, olderThanMs);
  }

  isNotFound(err: unknown): boolean {
    return isNotFound(err);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
