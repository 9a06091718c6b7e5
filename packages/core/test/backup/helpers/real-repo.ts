import { createMemoryStorage, type MemoryStorage } from '../../../../storage-memory/src/index.js';
// (Relative import: a devDependency on storage-memory would make a workspace cycle, which turbo rejects.)
import { Repository } from '../../../src/repository/repository.js';

/** Small chunks so tests exercise multi-chunk files quickly. */
export const TEST_CHUNKER = { minSize: 1024, avgSize: 4096, maxSize: 16 * 1024 };

/** A real repository (packs, index, encryption) over in-memory storage, with cheap KDF and small chunks/packs. */
export async function memoryRepository(opts: { packSize?: number } = {}): Promise<{ repo: Repository; storage: MemoryStorage; reopen(): Promise<Repository> }> {
  const storage = createMemoryStorage(`engine-test-${Math.random().toString(36).slice(2)}`);
  const common = { kdf: { N: 2 ** 10, r: 8, p: 1 }, logger: { info: () => {}, warn: () => {} } };
  const repo = await Repository.init(storage, 'test-password', {
    ...common,
    chunker: TEST_CHUNKER,
    packSize: opts.packSize ?? 256 * 1024,
  });
  return {
    repo,
    storage,
    reopen: () => Repository.open(storage, 'test-password', common),
  };
}

/** Total bytes and count of stored files of one type. */
export async function storedBytes(storage: MemoryStorage, type: 'data' | 'index' | 'snapshot'): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const f of storage.list(type)) {
    files++;
    bytes += f.size;
  }
  return { files, bytes };
}
