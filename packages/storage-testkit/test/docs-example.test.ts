/**
 * The complete adapter in docs/storage-adapters.md must work as written: this
 * extracts it from the page, loads it the way Kiwi does (openStorage with a
 * module path) and runs the conformance suite on it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { StorageError, openStorage, unwrapRetry, type Storage, type StorageAdapter } from '@kiwi-backup/core';
import { describeStorageConformance } from '../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const doc = readFileSync(join(here, '../../../docs/storage-adapters.md'), 'utf8');
const block = /```js\n(\/\/ kiwi-storage-dirstore\/index\.mjs[\s\S]*?)```/.exec(doc);
if (!block) throw new Error('docs/storage-adapters.md has no ```js block starting with // kiwi-storage-dirstore/index.mjs');
const genDir = join(here, '.generated');
mkdirSync(genDir, { recursive: true });
const modulePath = join(genDir, 'dirstore.mjs');
writeFileSync(modulePath, block[1]!);

const mod = (await import(modulePath)) as {
  createDirStore(root: string, options?: { fsync?: boolean }): Storage;
  adapter: StorageAdapter<{ fsync?: boolean }>;
  default: StorageAdapter<{ fsync?: boolean }>;
};

const rootOf = (s: Storage) => unwrapRetry(s).location.slice('dirstore:'.length);

describeStorageConformance('docs example: dirstore', {
  open: async () => mod.createDirStore(await mkdtemp(join(tmpdir(), 'kiwi-dirstore-')), { fsync: false }),
  cleanup: async (s) => rm(rootOf(s), { recursive: true, force: true }),
  options: { bigFileSize: 4 * 1024 * 1024, manyFiles: 300 },
});

describe('docs example: selecting the adapter', () => {
  it('openStorage loads it from a module path with its storageOptions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiwi-dirstore-'));
    try {
      const s = await openStorage(`dirstore:${dir}`, {
        adapters: { dirstore: modulePath },
        options: { dirstore: { fsync: true } },
      });
      expect(s.location).toBe(`dirstore:${dir}`);
      await s.create();
      await s.save({ type: 'snapshot', name: 'abc' }, Buffer.from('snap'));
      expect((await s.load({ type: 'snapshot', name: 'abc' })).toString()).toBe('snap');
      await expect(
        openStorage('dirstore:relative/path', { adapters: { dirstore: modulePath } }),
      ).rejects.toThrow(/dirstore needs an absolute path/);
      await expect(
        openStorage(`dirstore:${dir}`, { adapters: { dirstore: modulePath }, options: { dirstore: { fsync: 'no' } } }),
      ).rejects.toBeInstanceOf(StorageError);
      expect(mod.default).toBe(mod.adapter);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
