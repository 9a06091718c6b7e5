import { randomBytes } from 'node:crypto';
import type { FileInfo, FileType, Handle, LoadOptions, Storage } from '../../src/storage/types.js';
import { handlePath, typeDir } from '../../src/storage/types.js';
import { Repository, type InitOptions } from '../../src/repository/repository.js';
import type { RepositoryLogger } from '../../src/repository/types.js';

class NotFound extends Error {
  code = 'ENOENT';
}

/** A tiny Map-backed Storage for the repository tests; copies on save and load. */
export class MapStorage implements Storage {
  readonly location = 'map:test';
  readonly files = new Map<string, Buffer>();
  saves = 0;
  /** Called before each save; may throw to simulate a failure. */
  beforeSave?: (handle: Handle) => void | Promise<void>;
  async create(): Promise<void> {}
  async save(handle: Handle, data: Uint8Array): Promise<void> {
    await this.beforeSave?.(handle);
    this.saves++;
    await new Promise((r) => setImmediate(r));
    this.files.set(handlePath(handle), Buffer.from(data));
  }
  async load(handle: Handle, options: LoadOptions = {}): Promise<Buffer> {
    const f = this.files.get(handlePath(handle));
    if (!f) throw new NotFound(`${handlePath(handle)} not found`);
    const offset = options.offset ?? 0;
    const length = options.length ?? f.byteLength - offset;
    if (offset + length > f.byteLength) throw new RangeError(`${handlePath(handle)}: range ${offset}+${length} past the end (${f.byteLength})`);
    return Buffer.from(f.subarray(offset, offset + length));
  }
  async stat(handle: Handle): Promise<FileInfo> {
    const f = this.files.get(handlePath(handle));
    if (!f) throw new NotFound(`${handlePath(handle)} not found`);
    return { name: handle.name, size: f.byteLength };
  }
  async *list(type: FileType): AsyncIterable<FileInfo> {
    const prefix = `${typeDir(type)}/`;
    for (const [path, f] of [...this.files]) {
      if (type === 'config' ? path === 'config' : path.startsWith(prefix)) {
        yield { name: path.slice(path.lastIndexOf('/') + 1), size: f.byteLength };
      }
    }
  }
  async remove(handle: Handle): Promise<void> {
    if (!this.files.delete(handlePath(handle))) throw new NotFound(`${handlePath(handle)} not found`);
  }
  isNotFound(err: unknown): boolean {
    return err instanceof NotFound;
  }
  async close(): Promise<void> {}
  /** Paths of one type. */
  paths(prefix: string): string[] {
    return [...this.files.keys()].filter((p) => p.startsWith(prefix)).sort();
  }
}

export const FAST_KDF = { N: 1024, r: 8, p: 1 };

export function quietLogger(): RepositoryLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(`warn: ${m}`) };
}

export async function newRepo(opts: InitOptions = {}, storage = new MapStorage()) {
  const logger = quietLogger();
  const repo = await Repository.init(storage, 'secret', { kdf: FAST_KDF, logger, ...opts });
  return { repo, storage, logger };
}

/** Compressible pseudo-random data. */
export function textish(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = 97 + ((x >>> 16) % 8);
  }
  return b;
}

export function random(size: number): Buffer {
  return randomBytes(size);
}
