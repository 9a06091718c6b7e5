/**
 * `@kiwi-backup/storage-local`: a Kiwi repository in a directory on a local (or
 * mounted) file system.
 *
 * Layout: the repository keys of `handlePath()` below the directory —
 * `config`, `keys/<id>`, `locks/<id>`, `snapshots/<id>`, `index/<id>`,
 * `data/<2 hex>/<id>`. `create()` makes every directory, the 256 `data/00`..`data/ff`
 * included; a save into a missing directory creates it.
 *
 * Saves are atomic: the bytes go to `.tmp-<random hex>` in the target's
 * directory, are counted, fsynced, renamed over the target, and the directory is
 * fsynced. A crash leaves at most a `.tmp-*` file, which `list` ignores.
 *
 * `list` yields only what `load` finds under the same name: a pack only in its own
 * `data/<first 2 hex>/` directory, and only names that are valid for the type. Anything
 * else in the repository's directories (a pack copied or moved into the wrong `data/xx`, a
 * file named `a b`, a symlink loop) is skipped with a warning (`onWarning`), never listed
 * and never a reason for the listing to fail.
 *
 * Modes: directories 0700, files 0600 (only the owner may read a repository;
 * files stay writable by the owner so that removal and rename work on every OS).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, type Dirent } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve, dirname, sep } from 'node:path';
import {
  FILE_TYPES,
  StorageError,
  allocLoadBuffer,
  assertValidHandle,
  checkLoadOptions,
  defineStorageAdapter,
  handlePath,
  listedNameProblem,
  loadTarget,
  makeDirectory,
  sourceSizeError,
  parseRepositoryUrl,
  typeDir,
  type FileInfo,
  type FileType,
  type Handle,
  type LoadOptions,
  type SaveSource,
  type Storage,
} from '@kiwi-backup/core';
import { mapError, notRegular } from './errors.js';

export { mapError } from './errors.js';
export { listedNameProblem } from '@kiwi-backup/core';

/** The name of a `data/` subdirectory: two lowercase hex digits. */
const DATA_SUBDIR = /^[0-9a-f]{2}$/;

/** Mode of repository directories. */
export const DIR_MODE = 0o700;
/** Mode of repository files. */
export const FILE_MODE = 0o600;
/** Prefix of temporary files; `list` skips names that start with it. */
export const TEMP_PREFIX = '.tmp-';

export interface LocalStorageOptions {
  /**
   * fsync files and directories on save (default true). Turning it off is only
   * for throwaway repositories: a power loss may then lose or empty saved files.
   */
  fsync?: boolean;
  /**
   * Told about entries of the repository's directories that `list` skips because they are not
   * repository files (see {@link listedNameProblem}), once per entry and storage. Default:
   * `process.emitWarning`, as the SFTP adapter's option of the same name.
   */
  onWarning?: (message: string) => void;
  /** @internal Test hook: runs after the temp file is written and synced, before the rename. */
  beforeRename?: (tempPath: string, finalPath: string) => Promise<void> | void;
  /** @internal Test hook: the most bytes one read asks for (default {@link MAX_READ}). */
  maxRead?: number;
}

/** Open a repository directory. Nothing is touched until an operation runs. */
export function createLocalStorage(dir: string, options: LocalStorageOptions = {}): Storage {
  return new LocalStorage(resolve(dir), options);
}

const SUBDIRS = ['keys', 'locks', 'snapshots', 'index', 'data'];
const HEX = '0123456789abcdef';

/**
 * The most bytes one `read` asks for. Node's fs.read takes a length below 2^31 only: a larger one
 * does not throw, it aborts the whole process (`Assertion failed: args[3]->IsInt32()`).
 */
export const MAX_READ = 1024 * 1024 * 1024;

class LocalStorage implements Storage {
  readonly location: string;
  readonly #fsync: boolean;
  readonly #beforeRename: LocalStorageOptions['beforeRename'];
  readonly #onWarning: (message: string) => void;
  readonly #maxRead: number;
  /** Entries `list` already warned about (each once, however often it lists). */
  readonly #warned = new Set<string>();

  constructor(
    readonly dir: string,
    options: LocalStorageOptions,
  ) {
    this.location = dir;
    this.#fsync = options.fsync ?? true;
    this.#beforeRename = options.beforeRename;
    this.#onWarning = options.onWarning ?? ((message: string) => process.emitWarning(message, 'KiwiWarning'));
    this.#maxRead = Math.min(MAX_READ, Math.max(1, Math.floor(options.maxRead ?? MAX_READ)));
  }

  async create(): Promise<void> {
    const configPath = join(this.dir, 'config');
    try {
      await fsp.lstat(configPath);
      throw new StorageError(`cannot create a repository in ${this.dir}: it already holds one (${configPath} exists)`, {
        kind: 'config',
        location: configPath,
      });
    } catch (err) {
      if (err instanceof StorageError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw mapError(err, 'create', configPath);
    }
    await this.#mkdir(this.dir);
    for (const sub of SUBDIRS) await this.#mkdir(join(this.dir, sub));
    const dataDirs: string[] = [];
    for (const a of HEX) for (const b of HEX) dataDirs.push(join(this.dir, 'data', a + b));
    // A few at a time: 256 mkdirs in parallel would only queue on the thread pool.
    for (let i = 0; i < dataDirs.length; i += 32) {
      await Promise.all(dataDirs.slice(i, i + 32).map((d) => this.#mkdir(d)));
    }
    if (this.#fsync) {
      await syncDir(join(this.dir, 'data'));
      await syncDir(this.dir);
      await syncDir(dirname(this.dir)).catch(() => undefined);
    }
  }

  async save(handle: Handle, data: Uint8Array): Promise<void> {
    assertValidHandle(handle);
    if (!(data instanceof Uint8Array)) throw new TypeError(`save ${handlePath(handle)}: data must be a Uint8Array`);
    await this.#saveWith(handle, data.byteLength, async (fh) => {
      let written = 0;
      while (written < data.byteLength) {
        const { bytesWritten } = await fh.write(data, written, data.byteLength - written, written);
        if (bytesWritten <= 0) break;
        written += bytesWritten;
      }
      return written;
    });
  }

  async saveFrom(handle: Handle, source: SaveSource): Promise<void> {
    assertValidHandle(handle);
    const where = handlePath(handle);
    if (!Number.isSafeInteger(source.size) || source.size < 0) throw new RangeError(`save ${where}: the source's size must be a non-negative integer, got ${String(source.size)}`);
    if (source.path !== undefined) {
      // A file on this machine: the kernel copies it (copy_file_range), no bytes pass through here.
      const from = source.path;
      await this.#saveWith(handle, source.size, async (fh, temp) => {
        // Onto the temporary file just made (the same file `fh` has open), then its mode set again: copyFile copies the source's.
        await fsp.copyFile(from, temp);
        await fh.chmod(FILE_MODE);
        const { size } = await fh.stat();
        if (size !== source.size) throw sourceSizeError(where, source.size, String(size));
        return size;
      });
      return;
    }
    await this.#saveWith(handle, source.size, async (fh) => {
      let written = 0;
      for await (const chunk of source.open()) {
        if (written + chunk.byteLength > source.size) throw sourceSizeError(where, source.size, `more than ${source.size}`);
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done, written + done);
          if (bytesWritten <= 0) throw new StorageError(`save ${this.#path(handle)}: a write made no progress`, { kind: 'other', location: this.#path(handle) });
          done += bytesWritten;
        }
        written += done;
      }
      if (written !== source.size) throw sourceSizeError(where, source.size, String(written));
      return written;
    });
  }

  /**
   * Write a temporary file beside the target with `write` (which returns the bytes it wrote), check
   * that `expected` bytes landed, then rename it into place: a reader sees the whole file or none.
   */
  async #saveWith(handle: Handle, expected: number, write: (fh: FileHandle, temp: string) => Promise<number>): Promise<void> {
    const path = this.#path(handle);
    const dir = dirname(path);
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    let fh: FileHandle;
    try {
      fh = await fsp.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, FILE_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !this.#inside(dir)) {
        throw new StorageError(`save ${path}: the repository directory ${this.dir} does not exist`, {
          kind: 'not-found',
          location: path,
          cause: err,
        });
      }
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw mapError(err, 'save', path);
      // The type directory is missing (a repository made by hand, or a deleted data/xx): make it.
      await this.#mkdir(dir, true);
      try {
        fh = await fsp.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, FILE_MODE);
      } catch (err2) {
        throw mapError(err2, 'save', path);
      }
    }
    let renamed = false;
    try {
      try {
        const written = await write(fh, temp);
        if (this.#fsync) await fh.sync();
        const { size } = await fh.stat();
        if (written !== expected || size !== expected) {
          throw new StorageError(
            `save ${path}: wrote ${size} bytes of ${expected} to the temporary file ${temp}`,
            { kind: 'integrity', location: path },
          );
        }
      } finally {
        await fh.close();
      }
      await this.#beforeRename?.(temp, path);
      await fsp.rename(temp, path);
      renamed = true;
      if (this.#fsync) await syncDir(dir);
    } catch (err) {
      if (!renamed) await fsp.unlink(temp).catch(() => undefined);
      throw err instanceof StorageError ? err : mapError(err, 'save', path);
    }
  }

  async load(handle: Handle, options?: LoadOptions): Promise<Buffer> {
    assertValidHandle(handle);
    const path = this.#path(handle);
    const { offset, length: wanted } = checkLoadOptions(options, path);
    let fh: FileHandle;
    try {
      // O_NONBLOCK: a FIFO in a file's place must not block the open forever (it does nothing to a
      // regular file); whatever is not a regular file is not a repository file (as `list` sees it).
      fh = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (err) {
      throw mapError(err, 'load', path);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw notRegular('load', path);
      const { size } = st;
      const length = wanted ?? size - offset;
      if (offset > size || offset + length > size) {
        throw new StorageError(`load ${path}: range ${offset}+${length} is past the end of the file (${size} bytes)`, {
          kind: 'other',
          location: path,
        });
      }
      // Read straight into the caller's buffer when it passed a big enough `into` (LoadOptions.into).
      const out = loadTarget(options) ?? allocLoadBuffer(length, path, options);
      let got = 0;
      while (got < length) {
        // In pieces: one read of 2^31 bytes or more would abort the process (see MAX_READ).
        const { bytesRead } = await fh.read(out, got, Math.min(length - got, this.#maxRead), offset + got);
        if (bytesRead === 0) {
          throw new StorageError(
            `load ${path}: the file ended after ${offset + got} bytes, expected ${offset + length} (did it shrink?)`,
            { kind: 'other', location: path },
          );
        }
        got += bytesRead;
      }
      return out;
    } catch (err) {
      throw err instanceof StorageError ? err : mapError(err, 'load', path);
    } finally {
      await fh.close();
    }
  }

  async stat(handle: Handle): Promise<FileInfo> {
    assertValidHandle(handle);
    const path = this.#path(handle);
    try {
      const st = await fsp.stat(path);
      if (!st.isFile()) throw notRegular('stat', path);
      return { name: handle.type === 'config' ? 'config' : handle.name, size: st.size };
    } catch (err) {
      throw err instanceof StorageError ? err : mapError(err, 'stat', path);
    }
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    if (!FILE_TYPES.includes(type)) throw new TypeError(`invalid file type ${JSON.stringify(type)}`);
    if (type === 'config') {
      const path = join(this.dir, 'config');
      try {
        const st = await fsp.stat(path);
        if (st.isFile()) yield { name: 'config', size: st.size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw mapError(err, 'list', path);
      }
      return;
    }
    const base = join(this.dir, typeDir(type));
    if (type !== 'data') {
      yield* this.#listDir(base, type);
      return;
    }
    let subdirs: string[];
    try {
      const entries = await fsp.readdir(base, { withFileTypes: true });
      subdirs = [];
      for (const d of entries) {
        if (d.name.startsWith('.')) continue;
        const path = join(base, d.name);
        // A symlinked subdirectory (moved to another disk) is followed, as `load` follows it.
        const isDir = d.isDirectory() || (d.isSymbolicLink() && (await fsp.stat(path).then((st) => st.isDirectory(), () => false)));
        // Packs are loaded from data/<2 hex>/ only: whatever else is here holds no pack `load` would read.
        if (isDir && DATA_SUBDIR.test(d.name)) subdirs.push(d.name);
        else this.#warn(`list data: skipped ${path}: not a pack directory (data/00 … data/ff)`);
      }
      subdirs.sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw mapError(err, 'list', base);
    }
    for (const sub of subdirs) yield* this.#listDir(join(base, sub), type, sub);
  }

  /**
   * The files of `type` in one directory (`sub`: which `data/` subdirectory), stat'ed a batch at a
   * time. Skipped: temp files; what is not a regular file; entries that are not `type` files by
   * {@link listedNameProblem}; and entries that cannot be stat'ed (a symlink loop, a link into a
   * directory we may not read). Symlinks are followed, as `load` follows them (a pack moved to
   * another disk and linked back is still there); a dangling one is simply not there.
   *
   * One odd entry never fails the listing: every command lists, so a throw here would block them
   * all until someone removed the entry by hand. Skipped entries are reported through `onWarning`
   * (the Storage interface has no channel for warnings). Only errors that may pass (EMFILE, EAGAIN…)
   * are thrown, so that the retry layer lists again instead of yielding an incomplete listing.
   */
  async *#listDir(dir: string, type: FileType, sub?: string): AsyncIterable<FileInfo> {
    let names: string[];
    try {
      names = [];
      for (const d of await fsp.readdir(dir, { withFileTypes: true })) {
        if (!(d.isFile() || d.isSymbolicLink()) || d.name.startsWith(TEMP_PREFIX)) continue;
        const problem = listedNameProblem(type, d.name, sub);
        if (problem) this.#warn(`list ${type}: skipped ${join(dir, d.name)}: ${problem}`);
        else names.push(d.name);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw mapError(err, 'list', dir);
    }
    for (let i = 0; i < names.length; i += 64) {
      const batch = await Promise.all(
        names.slice(i, i + 64).map(async (name) => {
          const path = join(dir, name);
          try {
            const st = await fsp.stat(path);
            return st.isFile() ? { name, size: st.size } : undefined;
          } catch (err) {
            // Removed between readdir and stat, or a dangling symlink: it is simply not there.
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
            const mapped = mapError(err, 'list', path);
            if (mapped.transient) throw mapped;
            this.#warn(`list ${type}: skipped ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? mapped.message})`);
            return undefined;
          }
        }),
      );
      for (const info of batch) if (info) yield info;
    }
  }

  /** Report an entry `list` skipped, once per storage. A failing callback changes nothing. */
  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    try {
      this.#onWarning(message);
    } catch {
      // A warning is only a warning.
    }
  }

  async remove(handle: Handle): Promise<void> {
    assertValidHandle(handle);
    const path = this.#path(handle);
    try {
      await fsp.unlink(path);
    } catch (err) {
      throw mapError(err, 'remove', path);
    }
  }

  /** Temporary files of interrupted saves (`.tmp-…` beside their targets) older than `olderThanMs`, removed. */
  async removeTemporaries(olderThanMs: number): Promise<{ files: number; bytes: number }> {
    const before = Date.now() - olderThanMs;
    const dirs: string[] = [this.dir];
    for (const type of FILE_TYPES) {
      if (type === 'config') continue;
      const base = join(this.dir, typeDir(type));
      dirs.push(base);
      if (type === 'data') {
        for (const d of await this.#readdirForTemporaries(base)) {
          if (!DATA_SUBDIR.test(d.name)) continue;
          const path = join(base, d.name);
          // A symlinked data/xx (moved to another disk, as `list` and `load` follow it) holds temporaries too.
          if (d.isDirectory() || (d.isSymbolicLink() && (await fsp.stat(path).then((st) => st.isDirectory(), () => false)))) dirs.push(path);
        }
      }
    }
    let files = 0;
    let bytes = 0;
    for (const dir of [...new Set(dirs)]) {
      const names = (await this.#readdirForTemporaries(dir)).map((d) => d.name);
      for (const name of names) {
        if (!name.startsWith(TEMP_PREFIX)) continue;
        const path = join(dir, name);
        try {
          const st = await fsp.lstat(path);
          if (!st.isFile() || st.mtimeMs > before) continue;
          await fsp.unlink(path);
          files++;
          bytes += st.size;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw mapError(err, 'remove', path);
        }
      }
    }
    return { files, bytes };
  }

  /** A directory's entries for {@link removeTemporaries}: none when it is missing; a warning when it cannot be read. */
  async #readdirForTemporaries(dir: string): Promise<Dirent[]> {
    try {
      return await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') this.#warn(`remove temporaries: cannot read ${dir} (${code ?? (err as Error).message}); temporary files there are left`);
      return [];
    }
  }

  isNotFound(err: unknown): boolean {
    return err instanceof StorageError && err.kind === 'not-found';
  }

  async close(): Promise<void> {
    // Nothing held open between operations.
  }

  #path(handle: Handle): string {
    return join(this.dir, ...handlePath(handle).split('/'));
  }

  #inside(dir: string): boolean {
    return dir.startsWith(this.dir + sep);
  }

  async #mkdir(dir: string, recursive = false): Promise<void> {
    try {
      // makeDirectory, not Node's recursive mkdir: that one loops forever where mkdir keeps saying ENOENT (/proc/self/x).
      if (recursive) await makeDirectory(dir, { mode: DIR_MODE });
      else await fsp.mkdir(dir, { mode: DIR_MODE });
    } catch (err) {
      if (recursive && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        // An ancestor exists but the file system would not hold the directory: not a "not found".
        throw new StorageError((err as Error).message, { kind: 'other', location: dir, cause: err });
      }
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !recursive) {
        await this.#mkdir(dir, true);
        return;
      }
      throw mapError(err, 'create directory', dir);
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Windows cannot open or fsync a directory; some file systems refuse it. The rename is done either way.
    if (code === 'EISDIR' || code === 'EPERM' || code === 'EINVAL' || code === 'ENOTSUP' || code === 'EACCES') return;
    throw mapError(err, 'sync directory', dir);
  } finally {
    await fh?.close();
  }
}

/**
 * The `local:` adapter: `local:/path`, or a bare path (turned into `local:` by
 * `openStorage`). Options: `{ fsync?: boolean, onWarning?: (message) => void }`.
 */
export const localAdapter = defineStorageAdapter<Pick<LocalStorageOptions, 'fsync' | 'onWarning'>>({
  schemes: ['local'],
  open(url: string, options: Pick<LocalStorageOptions, 'fsync' | 'onWarning'> = {}): Storage {
    const { scheme, rest } = parseRepositoryUrl(url);
    if (scheme !== 'local') {
      throw new StorageError(`the local adapter cannot open ${url}: not a local path`, { kind: 'config' });
    }
    if (options.fsync !== undefined && typeof options.fsync !== 'boolean') {
      throw new StorageError(`storageOptions.local.fsync must be true or false`, { kind: 'config' });
    }
    if (options.onWarning !== undefined && typeof options.onWarning !== 'function') {
      throw new StorageError(`storageOptions.local.onWarning must be a function`, { kind: 'config' });
    }
    return createLocalStorage(rest, { fsync: options.fsync ?? true, ...(options.onWarning ? { onWarning: options.onWarning } : {}) });
  },
});

export default localAdapter;
