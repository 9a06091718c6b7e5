/**
 * The storage adapter contract.
 *
 * A repository is a set of immutable files addressed by a typed {@link Handle}.
 * Every adapter (local disk, S3, SFTP, memory, or your own) implements
 * {@link Storage}; the conformance kit `@kiwi-backup/storage-testkit` checks
 * each rule written here.
 *
 * Rules every adapter keeps:
 * - `save` is atomic: a concurrent or later reader sees either no file or the
 *   whole file, never a partial one. Saving a name that exists overwrites it
 *   (Kiwi never does this for content-addressed files, but `lock` refreshes rely on it).
 *   The adapter verifies the stored byte count equals `data.byteLength`.
 *   `save` must not keep a reference to `data` after its promise settles: the engine
 *   reuses pack buffers (copy the bytes if the adapter needs them later).
 * - `load` returns exactly the bytes saved, or the requested range of them. A
 *   range past the end of the file is an error (never a short read). With
 *   {@link LoadOptions.into} it may read into the caller's buffer (see there).
 * - `list(type)` yields every file of that type exactly once, paging as needed.
 * - A missing file makes `load`, `stat` and `remove` reject with an error for
 *   which `isNotFound(err)` is true.
 * - Errors that may go away on retry (timeouts, connection resets, 5xx,
 *   throttling) are thrown as is or as a {@link StorageError} with
 *   `transient: true`; the shared retry layer ({@link withRetry}) retries them.
 *   Adapters do not retry on their own.
 * - Credentials never appear in `location`, error messages or logs.
 */

import { constants as bufferConstants } from 'node:buffer';
import { StorageError } from './errors.js';

/** The kinds of file a repository holds. */
export type FileType = 'config' | 'key' | 'lock' | 'snapshot' | 'index' | 'data';

export const FILE_TYPES: readonly FileType[] = ['config', 'key', 'lock', 'snapshot', 'index', 'data'];

/** A typed name of one file in the repository. For `config`, `name` is ignored ('config'). */
export interface Handle {
  readonly type: FileType;
  readonly name: string;
}

export interface FileInfo {
  readonly name: string;
  readonly size: number;
}

export interface LoadOptions {
  /** First byte to read (default 0). */
  offset?: number;
  /** Number of bytes to read (default: to the end). */
  length?: number;
  /**
   * Without `length`: the most bytes the caller accepts (core passes the largest valid file of the
   * type when it loads a whole file). An adapter that learns the length before reading (a stat, a
   * server's answer) and finds more fails with a {@link StorageError} of kind `integrity` naming the
   * file, without allocating for it: a server that claims a 3 GiB index file must not make Kiwi
   * allocate 3 GiB. Adapters may ignore it; core checks what a load returns anyway.
   */
  maxLength?: number;
  /**
   * A buffer the adapter may read into (at offset 0) instead of allocating one, to spare fresh
   * memory on hot paths. Adapters may ignore it; the rules when they use it:
   *
   * - Only used together with `length`: without `length`, and when `into.byteLength < length`,
   *   the adapter ignores `into` entirely (allocates as before and never writes to it).
   * - The adapter writes only `into[0, length)`; bytes past `length` are left as they were.
   * - The result is still exactly the requested `length` bytes: either the view
   *   `into.subarray(0, length)` or a buffer of its own. Callers must accept both, and must not
   *   assume anything about `into`'s content after the call (use the result instead).
   * - Once `load` settles, resolved or rejected, the adapter no longer writes into `into`: the
   *   caller owns it again and may reuse it, e.g. for the next load (the result, if a view of it,
   *   is then overwritten). A rejected load may have left partial bytes in it; a retry
   *   ({@link withRetry} passes `into` to every attempt) simply overwrites them.
   * - The caller does not pass one `into` to two loads that run at the same time.
   *
   * {@link loadTarget} picks the usable part of `into` for an adapter.
   */
  into?: Buffer;
}

/**
 * The content of a file to save that is not held in memory (a pack Kiwi wrote to a temporary
 * file): its size, and a way to read it from the start, as often as needed (a retry reads it again).
 */
export interface SaveSource {
  /** The exact number of bytes `open()` yields. */
  readonly size: number;
  /** A fresh read of the content from its first byte. Each chunk is the storage's to send or keep. */
  open(): AsyncIterable<Uint8Array>;
  /**
   * When the content is a file on this machine (Kiwi's temporary packs), its path: a storage on
   * the same machine may copy the file instead of reading it through `open()`. It holds exactly
   * `size` bytes and does not change while the save runs.
   */
  readonly path?: string;
}

export interface Storage {
  /** A printable location, with any credential removed (e.g. `s3:https://host/bucket/prefix`). */
  readonly location: string;
  /**
   * Optional hint: the size in bytes one ranged read should have when a reader batches the
   * blobs of a pack (a restore). Stores with a cost per request (HTTP object stores) want
   * larger reads than a disk. Kiwi clamps it to 1–16 MiB; without it, reads are up to 4 MiB.
   */
  readonly preferredReadSize?: number;
  /**
   * Prepare an empty repository location (create directories or check the bucket).
   * Called once by `kiwi init`. Must not fail if the location exists and is empty.
   */
  create(): Promise<void>;
  /** Store `data` under `handle`, atomically. */
  save(handle: Handle, data: Uint8Array): Promise<void>;
  /**
   * Optional: store the bytes `source.open()` yields under `handle`, under the rules of `save`
   * (atomic; the stored byte count verified, here against `source.size`, and a source that yields
   * more or fewer bytes than its size is refused with nothing stored). It reads the source as it
   * sends it, so a pack need not be held in memory. Call `open()` afresh for every attempt. Without
   * it, Kiwi reads the source into memory and calls `save` ({@link saveFromSource}).
   */
  saveFrom?(handle: Handle, source: SaveSource): Promise<void>;
  /** Read the whole file or a byte range of it. */
  load(handle: Handle, options?: LoadOptions): Promise<Buffer>;
  stat(handle: Handle): Promise<FileInfo>;
  /** Every file of a type, each once, in no particular order. */
  list(type: FileType): AsyncIterable<FileInfo>;
  remove(handle: Handle): Promise<void>;
  /**
   * Optional: remove many files at once (an object store's batch delete: S3's DeleteObjects takes
   * 1000 keys per request). Files that do not exist are not an error. Without it, Kiwi removes
   * files one by one ({@link removeFiles}).
   */
  removeMany?(handles: Iterable<Handle>): Promise<void>;
  /**
   * Optional: remove the temporary files that saves interrupted by a crash or `kill -9` left
   * behind (a store whose saves write a temporary file and rename it), when they are older than
   * `olderThanMs` (a save still running keeps its own). `prune` calls it under the repository's
   * exclusive lock. Returns how many files were removed and their bytes.
   */
  removeTemporaries?(olderThanMs: number): Promise<{ files: number; bytes: number }>;
  /** True if `err` means "this file does not exist". */
  isNotFound(err: unknown): boolean;
  /** Release connections. The storage is not used afterwards. */
  close(): Promise<void>;
}

/**
 * A storage adapter factory: how a repository URL becomes a {@link Storage}.
 * A custom adapter package exports one of these (default export or `adapter`).
 */
export interface StorageAdapter<Options = Record<string, unknown>> {
  /** URL schemes this adapter serves, without the colon (e.g. `['s3']`). */
  readonly schemes: readonly string[];
  /**
   * Open a storage for `url` (the full URL, scheme included).
   * `options` come from the config file's `storageOptions` for this scheme, and `env` is
   * the process environment (for credentials).
   */
  open(url: string, options: Options, env: NodeJS.ProcessEnv): Storage | Promise<Storage>;
}

/** Identity helper that gives a custom adapter its types. */
export function defineStorageAdapter<O = Record<string, unknown>>(adapter: StorageAdapter<O>): StorageAdapter<O> {
  return adapter;
}

/** The storage path of a handle: `config`, `keys/<id>`, `data/<2 hex>/<id>`, ... */
export function handlePath(handle: Handle): string {
  switch (handle.type) {
    case 'config':
      return 'config';
    case 'data':
      return `data/${handle.name.slice(0, 2)}/${handle.name}`;
    default:
      return `${typeDir(handle.type)}/${handle.name}`;
  }
}

/** The directory (prefix) a type lives under. */
export function typeDir(type: FileType): string {
  switch (type) {
    case 'config':
      return '';
    case 'key':
      return 'keys';
    case 'lock':
      return 'locks';
    case 'snapshot':
      return 'snapshots';
    case 'index':
      return 'index';
    case 'data':
      return 'data';
  }
}

/** Check a handle's name is safe as a storage path component. */
export function assertValidHandle(handle: Handle): void {
  if (!FILE_TYPES.includes(handle.type)) throw new TypeError(`invalid file type ${JSON.stringify(handle.type)}`);
  if (handle.type === 'config') return;
  if (!/^[A-Za-z0-9_.-]+$/.test(handle.name) || handle.name === '.' || handle.name === '..') {
    throw new TypeError(`invalid file name ${JSON.stringify(handle.name)} for type ${handle.type}`);
  }
  if (handle.type === 'data' && handle.name.length < 2) {
    throw new TypeError(`data file name ${JSON.stringify(handle.name)} is too short`);
  }
}

/** A pack's name: the SHA-256 of its bytes, 64 lowercase hex digits. */
const PACK_NAME = /^[0-9a-f]{64}$/;

/**
 * For adapters' `list`: why the entry `name`, found among `type`'s files (for packs: in the `data/`
 * subdirectory `dataSubdir`), is not one of them, or `undefined` when it is, i.e. when `load` of
 * that handle reads this very entry.
 *
 * - A pack must be named by 64 lowercase hex digits and sit in the `data/` subdirectory named by its
 *   first two. A copy elsewhere is never the pack: `load` reads only `data/<name[0..2]>/<name>`, so
 *   listing the copy would report the wrong size (`check`, `repair index` drop the real pack; `prune`
 *   deletes it) or a pack that cannot be loaded (a backup would dedup against it).
 * - Other files need a name {@link assertValidHandle} accepts: core refuses any other name it is
 *   handed back, so one file named `a b` would make every command fail.
 */
export function listedNameProblem(type: FileType, name: string, dataSubdir?: string): string | undefined {
  if (type === 'data') {
    if (!PACK_NAME.test(name)) return 'not a pack file name (64 lowercase hex digits)';
    if (dataSubdir !== name.slice(0, 2)) return `a pack of that name belongs in data/${name.slice(0, 2)}/, where it is loaded from`;
    return undefined;
  }
  try {
    assertValidHandle({ type, name });
    return undefined;
  } catch {
    return `not a valid ${type} file name`;
  }
}

/**
 * Check a {@link LoadOptions} range against a file of `size` bytes and resolve it:
 * offset and length must be non-negative integers and the range must lie inside
 * the file (a range past the end is an error, never a short read). `where` names
 * the file in error messages. Throws `RangeError` for malformed options and a
 * {@link StorageError} (kind `other`) for a range past the end.
 */
export function resolveLoadRange(
  options: LoadOptions | undefined,
  size: number,
  where: string,
): { offset: number; length: number } {
  const { offset, length } = checkLoadOptions(options, where);
  const len = length ?? size - offset;
  if (offset > size || offset + len > size) {
    throw new StorageError(`load ${where}: range ${offset}+${len} is past the end of the file (${size} bytes)`, {
      kind: 'other',
      location: where,
    });
  }
  return { offset, length: len };
}

/**
 * The buffer an adapter reads a ranged load into: `options.into.subarray(0, options.length)`
 * when the caller passed an `into` of at least `length` bytes, else `undefined` (no `into`,
 * no `length`, or `into` too short: allocate as usual). See {@link LoadOptions.into}.
 */
export function loadTarget(options: LoadOptions | undefined): Buffer | undefined {
  // Typed as a Buffer, but a plain Uint8Array from JavaScript callers works too (as a Buffer view).
  const into = options?.into as Uint8Array | undefined;
  const length = options?.length;
  if (into === undefined || length === undefined || !(into instanceof Uint8Array)) return undefined;
  if (!Number.isSafeInteger(length) || length < 0 || into.byteLength < length) return undefined;
  return Buffer.isBuffer(into) ? into.subarray(0, length) : Buffer.from(into.buffer, into.byteOffset, length);
}

/**
 * A new buffer of `length` bytes for a load of `location` (an adapter's, where the caller passed no
 * big enough `into`). More than a Buffer can hold (4 GiB under Node 20) is refused with a
 * {@link StorageError} naming the file, never left to `Buffer.allocUnsafe`'s RangeError: no
 * repository file is that large (packs stay far below it, readers take ranges of them), so such a
 * length is a damaged or foreign file, or a server that says so. With the load's `options`, a whole
 * load longer than its `maxLength` is refused too (see {@link LoadOptions.maxLength}).
 */
export function allocLoadBuffer(length: number, location: string, options?: Pick<LoadOptions, 'length' | 'maxLength'>): Buffer {
  if (!Number.isSafeInteger(length) || length < 0 || length > bufferConstants.MAX_LENGTH) {
    throw new StorageError(
      `load ${location}: ${String(length)} bytes are more than can be loaded at once (at most ${bufferConstants.MAX_LENGTH}); no repository file is that large`,
      { kind: 'other', location },
    );
  }
  // The caller's limit on a whole load (with `length`, it asked for that many bytes: no limit).
  const maxLength = options?.length === undefined ? options?.maxLength : undefined;
  if (maxLength !== undefined && length > maxLength) throw tooLongError(location, length, maxLength);
  return Buffer.allocUnsafe(length);
}

/** The error for a load longer than its `maxLength` ({@link LoadOptions.maxLength}): kind `integrity`. */
export function tooLongError(location: string, length: number, maxLength: number): StorageError {
  return new StorageError(`load ${location}: ${length} bytes, more than the ${maxLength} expected at most`, { kind: 'integrity', location });
}

/**
 * Validate {@link LoadOptions} without knowing the file size (for adapters that
 * send the range to a server): returns the offset (default 0) and the length
 * (undefined = to the end). Throws `RangeError` naming `where` when malformed.
 */
export function checkLoadOptions(options: LoadOptions | undefined, where: string): { offset: number; length: number | undefined } {
  const offset = options?.offset ?? 0;
  const length = options?.length;
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`load ${where}: offset must be a non-negative integer, got ${String(options?.offset)}`);
  }
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
    throw new RangeError(`load ${where}: length must be a non-negative integer, got ${String(length)}`);
  }
  return { offset, length };
}

/**
 * Remove files, already-missing ones being fine: in batches through `removeMany` when the
 * storage has it, else one by one, `concurrency` at a time.
 */
export async function removeFiles(storage: Storage, handles: readonly Handle[], concurrency = 8): Promise<void> {
  if (handles.length === 0) return;
  if (storage.removeMany) {
    await storage.removeMany(handles);
    return;
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, handles.length) }, async () => {
      while (next < handles.length) {
        const h = handles[next++]!;
        try {
          await storage.remove(h);
        } catch (err) {
          if (!storage.isNotFound(err)) throw err;
        }
      }
    }),
  );
}

/**
 * The whole content of `source` in one buffer (`into` when it is large enough), checked against
 * `source.size`: a source that yields more or fewer bytes is refused with a {@link StorageError}
 * of kind `integrity`. For adapters that need the bytes in memory, and for {@link saveFromSource}.
 */
export async function readSource(source: SaveSource, where: string, into?: Buffer): Promise<Buffer> {
  const size = source.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`save ${where}: the source's size must be a non-negative integer, got ${String(size)}`);
  const buf = into && into.byteLength >= size ? into.subarray(0, size) : Buffer.allocUnsafeSlow(size);
  let pos = 0;
  for await (const chunk of source.open()) {
    if (pos + chunk.byteLength > size) throw sourceSizeError(where, size, `more than ${size}`);
    buf.set(chunk, pos);
    pos += chunk.byteLength;
  }
  if (pos !== size) throw sourceSizeError(where, size, String(pos));
  return buf;
}

/** The error for a {@link SaveSource} that yielded `got` bytes instead of its `size`. */
export function sourceSizeError(where: string, size: number, got: string): StorageError {
  return new StorageError(`save ${where}: the source yielded ${got} bytes, its size is ${size}`, { kind: 'integrity', location: where });
}

/** Save `source` under `handle`: through the storage's `saveFrom` when it has one, else read into memory and `save`d. */
export async function saveFromSource(storage: Storage, handle: Handle, source: SaveSource): Promise<void> {
  if (storage.saveFrom) return storage.saveFrom(handle, source);
  await storage.save(handle, await readSource(source, handlePath(handle)));
}
