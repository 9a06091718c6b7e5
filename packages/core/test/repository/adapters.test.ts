/**
 * The repository over the real adapters (relative imports: a devDependency would make a
 * workspace cycle). Checks the pack-buffer reuse contract: `save` must not keep a reference
 * to `data` after it resolves.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { createLocalStorage } from '../../../storage-local/src/index.js';
import type { Storage } from '../../src/storage/types.js';
import { Repository } from '../../src/repository/repository.js';
import { FAST_KDF, quietLogger, random, textish } from './helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const adapters: Array<[string, () => Promise<Storage>]> = [
  ['memory', async () => createMemoryStorage(`repo-${Math.random()}`)],
  [
    'local',
    async () => {
      const d = await mkdtemp(join(tmpdir(), 'kiwi-repo-'));
      dirs.push(d);
      return createLocalStorage(join(d, 'repo'));
    },
  ],
];

describe.each(adapters)('repository on the %s adapter', (_name, make) => {
  it('round-trips blobs over many reused pack buffers and passes check --read-data', async () => {
    const storage = await make();
    const opts = { kdf: FAST_KDF, logger: quietLogger(), packSize: 16 * 1024, uploadConcurrency: 2 };
    const repo = await Repository.init(storage, 'pw', opts);
    const blobs = Array.from({ length: 60 }, (_, i) => (i % 2 ? random(5000 + i) : textish(9000 + i, i)));
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      [0, 1].map(async () => {
        while (next < blobs.length) {
          const i = next++;
          ids[i] = (await repo.saveBlob('data', blobs[i]!)).id;
        }
      }),
    );
    const tree = await repo.saveTree({ nodes: [] });
    await repo.flush();
    await repo.saveSnapshot({ time: new Date().toISOString(), hostname: 'h', username: 'u', paths: ['/'], tags: [], tree, programVersion: 't' });
    await repo.close();

    const again = await Repository.open(storage, 'pw', { logger: quietLogger() });
    await again.loadIndex();
    for (const [i, b] of blobs.entries()) expect((await again.loadBlob('data', ids[i]!)).equals(b)).toBe(true);
    const report = await again.check({ readData: true });
    expect(report.errors).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(report.stats.packs).toBeGreaterThan(10);
    await again.close();
    await storage.close();
  });
});
