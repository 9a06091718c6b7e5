/**
 * The metadata cache of remote repositories (issue #12): later runs read index files, snapshots
 * and trees from it; a damaged cache file is detected and read again from storage; a cache of
 * another repository is never used; two users of one cache at once are fine; pruned packs leave it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { listTree, prune, runBackup, type Storage } from '../../src/index.js';
import { counting, listing } from './helpers.js';
import { Repository } from '../../src/repository/repository.js';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-cache-');
});
afterEach(async () => {
  await removeDir(work);
});

const base = { kdf: { N: 1024, r: 8, p: 1 }, logger: { info() {}, warn() {} } };
const TEST_CHUNKER = { minSize: 1024, avgSize: 4096, maxSize: 16 * 1024 };

async function populate(storage: Storage): Promise<{ src: string; ids: string[] }> {
  const src = join(work, 'src');
  for (let d = 0; d < 6; d++) {
    await mkdir(join(src, `d${d}`, 'sub'), { recursive: true });
    for (let f = 0; f < 5; f++) await writeFile(join(src, `d${d}`, 'sub', `f${f}.bin`), pseudoRandom(3000, d * 10 + f + 1));
  }
  const repo = await Repository.init(storage, 'pw', { ...base, chunker: TEST_CHUNKER, packSize: 64 * 1024 });
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    await writeFile(join(src, `top-${i}.txt`), `generation ${i}\n`);
    ids.push((await runBackup({ repository: repo, sources: [src] })).snapshotId!);
  }
  await repo.close();
  return { src, ids };
}


describe('the metadata cache', () => {
  it('a second run reads index files, snapshots and trees from the cache, not from storage', async () => {
    const storage = counting(createMemoryStorage('remote'));
    await populate(storage);
    const cacheDir = join(work, 'cache');
    storage.reset();
    const first = await Repository.open(storage, 'pw', { ...base, cacheDir });
    const expected = await listing(first);
    await first.close();
    expect(storage.loads.index).toBeGreaterThan(0);
    expect(storage.loads.snapshot).toBeGreaterThan(0);
    expect(storage.loads.data).toBeGreaterThan(0);

    storage.reset();
    const second = await Repository.open(storage, 'pw', { ...base, cacheDir });
    expect(await listing(second)).toEqual(expected);
    await second.close();
    expect(storage.loads.index ?? 0).toBe(0);
    expect(storage.loads.snapshot ?? 0).toBe(0);
    expect(storage.loads.data ?? 0).toBe(0);
  });

  it('a flipped byte in a cached index file, snapshot or tree pack is detected; the object is read from storage again', async () => {
    const storage = counting(createMemoryStorage('remote2'));
    await populate(storage);
    const cacheDir = join(work, 'cache');
    const first = await Repository.open(storage, 'pw', { ...base, cacheDir });
    const expected = await listing(first);
    const dir = first.cacheLocation!;
    await first.close();
    const flipFirst = async (sub: string) => {
      const files = (await readdir(join(dir, sub), { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.'));
      expect(files.length, sub).toBeGreaterThan(0);
      for (const f of files) {
        const p = join(f.parentPath, f.name);
        const b = await readFile(p);
        const at = Math.floor(b.byteLength / 2);
        b[at] = b[at]! ^ 0x01;
        await writeFile(p, b);
      }
    };
    await flipFirst('index');
    await flipFirst('snapshots');
    await flipFirst('data');

    storage.reset();
    const second = await Repository.open(storage, 'pw', { ...base, cacheDir });
    expect(await listing(second)).toEqual(expected);
    await second.close();
    expect(storage.loads.index).toBeGreaterThan(0);
    expect(storage.loads.snapshot).toBeGreaterThan(0);
    expect(storage.loads.data).toBeGreaterThan(0);

    // …and the cache holds good copies again.
    storage.reset();
    const third = await Repository.open(storage, 'pw', { ...base, cacheDir });
    expect(await listing(third)).toEqual(expected);
    await third.close();
    expect(storage.loads.index ?? 0).toBe(0);
    expect(storage.loads.data ?? 0).toBe(0);
  });

  it('a new repository at the same location never uses the old one’s cache', async () => {
    const cacheDir = join(work, 'cache');
    const s1 = createMemoryStorage('same-path');
    await populate(s1);
    const r1 = await Repository.open(s1, 'pw', { ...base, cacheDir });
    await listing(r1);
    const dir1 = r1.cacheLocation!;
    await r1.close();

    // The repository is destroyed and another one created at the same place.
    await removeDir(join(work, 'src'));
    const s2 = counting(createMemoryStorage('same-path'));
    await populate(s2);
    s2.reset();
    const r2 = await Repository.open(s2, 'pw', { ...base, cacheDir });
    expect(r2.cacheLocation).not.toBe(dir1);
    await listing(r2);
    await r2.close();
    expect(s2.loads.index).toBeGreaterThan(0);
  });

  it('two users of one cache at once both see the right data', async () => {
    const storage = createMemoryStorage('shared');
    await populate(storage);
    const cacheDir = join(work, 'cache');
    const a = await Repository.open(storage, 'pw', { ...base, cacheDir });
    const b = await Repository.open(storage, 'pw', { ...base, cacheDir });
    const [la, lb] = await Promise.all([listing(a), listing(b)]);
    expect(la).toEqual(lb);
    expect(la.length).toBeGreaterThan(40);
    await Promise.all([a.close(), b.close()]);
  });

  it('packs that prune removed leave the cache', async () => {
    const storage = createMemoryStorage('pruned');
    const { ids } = await populate(storage);
    const cacheDir = join(work, 'cache');
    const r = await Repository.open(storage, 'pw', { ...base, cacheDir });
    for (const id of ids) {
      const { snapshot } = await r.findSnapshot(id.slice(0, 12));
      for await (const _ of listTree(r, snapshot)) void _;
    }
    const dir = r.cacheLocation!;
    await r.close();
    const cachedPacks = async () => (await readdir(join(dir, 'data'), { recursive: true })).filter((n) => n.length > 60);
    const before = await cachedPacks();
    expect(before.length).toBeGreaterThan(0);
    await storage.remove({ type: 'snapshot', name: ids[0]! });
    const p = await Repository.open(storage, 'pw', base);
    await prune(p, { maxUnused: { kind: 'percent', value: 0 } });
    await p.close();
    const again = await Repository.open(storage, 'pw', { ...base, cacheDir });
    await again.loadIndex();
    await again.close();
    const after = await cachedPacks();
    const live = new Set<string>();
    for await (const f of storage.list('data')) live.add(f.name);
    expect(after.every((n) => live.has(n.split('/').pop()!))).toBe(true);
  });
});
