/**
 * `@kiwi-backup/storage-memory`: Kiwi's in-memory reference adapter.
 *
 * It keeps every rule of the storage contract (see `Storage` in
 * `@kiwi-backup/core`) in the simplest possible way, so the conformance kit is
 * tested against it and tests of the engine can use it as a fast, isolated
 * repository. Nothing is persisted: the data lives as long as the object.
 */
import {
  StorageError,
  assertValidHandle,
  allocLoadBuffer,
  defineStorageAdapter,
  handlePath,
  loadTarget,
  readSource,
  resolveLoadRange,
  FILE_TYPES,
  type FileInfo,
  type SaveSource,
  type FileType,
  type Handle,
  type LoadOptions,
  type Storage,
} from '@kiwi-backup/core';

/** An in-memory {@link Storage}, with a few extras for tests. */
export interface MemoryStorage extends Storage {
  /** The number of files currently stored. */
  readonly size: number;
  /** True once `close()` was called. */
  readonly closed: boolean;
}

/** Named in-memory stores opened through the `memory:` scheme, shared within one process. */
const namedStores = new Map<string, Map<string, Buffer>>();

/**
 * Create an empty in-memory storage. Saved bytes are copied in and copied out,
 * so callers may reuse or mutate their buffers freely.
 */
export function createMemoryStorage(name = 'memory'): MemoryStorage {
  return new MemoryStorageImpl(`memory:${name}`, new Map());
}

class MemoryStorageImpl implements MemoryStorage {
  #closed = false;
  constructor(
    readonly location: string,
    private readonly files: Map<string, Buffer>,
  ) {}

  get size(): number {
    return this.files.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async create(): Promise<void> {
    this.#check();
  }

  async save(handle: Handle, data: Uint8Array): Promise<void> {
    this.#check();
    assertValidHandle(handle);
    if (!(data instanceof Uint8Array)) throw new TypeError(`save ${handlePath(handle)}: data must be a Uint8Array`);
    // Copy: the caller may reuse its buffer right after the promise resolves.
    const copy = Buffer.allocUnsafeSlow(data.byteLength);
    copy.set(data);
    if (copy.byteLength !== data.byteLength) {
      throw new StorageError(`save ${handlePath(handle)}: stored ${copy.byteLength} of ${data.byteLength} bytes`, {
        kind: 'integrity',
        location: this.#where(handle),
      });
    }
    this.files.set(handlePath(handle), copy);
  }

  async saveFrom(handle: Handle, source: SaveSource): Promise<void> {
    this.#check();
    assertValidHandle(handle);
    // Read whole before it is visible: a failed or wrong-sized source stores nothing.
    const copy = await readSource(source, handlePath(handle));
    this.files.set(handlePath(handle), copy);
  }

  async load(handle: Handle, options: LoadOptions = {}): Promise<Buffer> {
    this.#check();
    assertValidHandle(handle);
    const file = this.#get(handle);
    const { offset, length } = resolveLoadRange(options, file.byteLength, this.#where(handle));
    // The caller's buffer when it passed a big enough `into` (LoadOptions.into), else a new one.
    const out = loadTarget(options) ?? allocLoadBuffer(length, this.#where(handle), options);
    const copied = file.copy(out, 0, offset, offset + length);
    if (copied !== length || out.byteLength !== length) {
      throw new StorageError(`load ${handlePath(handle)}: copied ${copied} of ${length} bytes`, {
        kind: 'integrity',
        location: this.#where(handle),
      });
    }
    return out;
  }

  async stat(handle: Handle): Promise<FileInfo> {
    this.#check();
    assertValidHandle(handle);
    const file = this.#get(handle);
    return { name: nameOf(handle), size: file.byteLength };
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    this.#check();
    if (!FILE_TYPES.includes(type)) throw new TypeError(`invalid file type ${JSON.stringify(type)}`);
    // Snapshot the matching names first, so saves and removes during the
    // listing cannot make us yield a name twice.
    const matches: FileInfo[] = [];
    for (const [path, buf] of this.files) {
      const info = matchType(type, path, buf);
      if (info) matches.push(info);
    }
    yield* matches;
  }

  async remove(handle: Handle): Promise<void> {
    this.#check();
    assertValidHandle(handle);
    if (!this.files.delete(handlePath(handle))) throw this.#notFound(handle);
  }

  /** Batch removal (the optional part of the contract); missing files are fine. */
  async removeMany(handles: Iterable<Handle>): Promise<void> {
    this.#check();
    const list = [...handles];
    for (const h of list) assertValidHandle(h);
    for (const h of list) this.files.delete(handlePath(h));
  }

  isNotFound(err: unknown): boolean {
    return err instanceof StorageError && err.kind === 'not-found';
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #get(handle: Handle): Buffer {
    const file = this.files.get(handlePath(handle));
    if (!file) throw this.#notFound(handle);
    return file;
  }

  #notFound(handle: Handle): StorageError {
    return new StorageError(`${handlePath(handle)} does not exist in ${this.location}`, {
      kind: 'not-found',
      location: this.#where(handle),
    });
  }

  #where(handle: Handle): string {
    return `${this.location}/${handlePath(handle)}`;
  }

  #check(): void {
    if (this.#closed) throw new StorageError(`${this.location} is closed`, { kind: 'other', location: this.location });
  }
}

function nameOf(handle: Handle): string {
  return handle.type === 'config' ? 'config' : handle.name;
}

function matchType(type: FileType, path: string, buf: Buffer): FileInfo | undefined {
  if (type === 'config') return path === 'config' ? { name: 'config', size: buf.byteLength } : undefined;
  const prefix = type === 'data' ? 'data/' : `${handlePath({ type, name: 'x' }).slice(0, -1)}`;
  if (!path.startsWith(prefix)) return undefined;
  const name = path.slice(path.lastIndexOf('/') + 1);
  return { name, size: buf.byteLength };
}

/**
 * The `memory:` adapter. `memory:NAME` opens a store shared by every
 * `memory:NAME` URL in this process (handy for tests of the CLI); the store
 * lives until the process ends.
 */
export const memoryAdapter = defineStorageAdapter({
  schemes: ['memory'],
  open(url: string): Storage {
    const name = url.replace(/^memory:/, '') || 'default';
    let files = namedStores.get(name);
    if (!files) {
      files = new Map();
      namedStores.set(name, files);
    }
    return new MemoryStorageImpl(`memory:${name}`, files);
  },
});

export default memoryAdapter;
