/**
 * The metadata cache read as hostile input: whatever is under the cache directory (another
 * process, a crash half-way through a write, a cache copied between machines, a local user) and
 * whatever names reach it (a storage listing, an id from a caller) may be wrong. The cache must
 * stay an optimization: it never reads past a bound, never blocks, never follows a symlink out of
 * its directory, never writes or deletes outside it, and a damaged entry is dropped, not trusted.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runBackup, RepositoryCache, type Storage } from '../../src/index.js';
import { counting, listing } from './helpers.js';
import { Repository } from '../../src/repository/repository.js';
import { MAX_SNAPSHOT_FILE_SIZE } from '../../src/repository/limits.js';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-cache-hostile-');
});
afterEach(async () => {
  await removeDir(work);
});

const ID = 'ab'.repeat(32);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const exists = (p: string): Promise<boolean> => lstat(p).then(
  () => true,
  () => false,
);

async function openCache(): Promise<{ cache: RepositoryCache; warnings: string[] }> {
  const warnings: string[] = [];
  const cache = await RepositoryCache.open(join(work, 'cache'), ID, (m) => warnings.push(m));
  expect(cache).toBeDefined();
  return { cache: cache!, warnings };
}

/** Bytes whose SHA-256 starts with `prefix` (a pack name in a chosen `data/` subdirectory). */
function bytesNamed(prefix: string, size = 4096): { name: string; bytes: Buffer } {
  for (;;) {
    const bytes = randomBytes(size);
    const name = sha(bytes);
    if (name.startsWith(prefix)) return { name, bytes };
  }
}

/**
 * `p`, or a rejection after `ms`: a read that blocks forever (a FIFO) fails the test instead of
 * hanging it. The bound only matters when the code is wrong; a right answer takes milliseconds.
 */
function within<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still blocked after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Let a reader blocked opening the FIFO at `path` go (a writer opens and closes it); nothing when none waits. */
async function releaseFifo(path: string): Promise<void> {
  try {
    const fh = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
    await fh.close();
  } catch {
    // ENXIO: no reader waits; ENOENT: the FIFO was dropped.
  }
}

const base = { kdf: { N: 1024, r: 8, p: 1 }, logger: { info() {}, warn() {} } };

/** Storage that counts loads by type. */
async function populate(storage: Storage): Promise<void> {
  const src = join(work, 'src');
  for (let d = 0; d < 4; d++) {
    await mkdir(join(src, `d${d}`, 'sub'), { recursive: true });
    for (let f = 0; f < 4; f++) await writeFile(join(src, `d${d}`, 'sub', `f${f}.bin`), pseudoRandom(3000, d * 10 + f + 1));
  }
  const repo = await Repository.init(storage, 'pw', { ...base, chunker: { minSize: 1024, avgSize: 4096, maxSize: 16 * 1024 }, packSize: 64 * 1024 });
  await runBackup({ repository: repo, sources: [src] });
  await repo.close();
}


describe('the metadata cache, its files hostile or damaged', () => {
  it('a cached file larger than any valid file of its kind is refused before it is read, even when its name matches', async () => {
    const { cache } = await openCache();
    const big = Buffer.alloc(MAX_SNAPSHOT_FILE_SIZE + 1, 7);
    const name = sha(big);
    const path = join(cache.dir, 'snapshots', name);
    await writeFile(path, big);
    // (The length only: a failure message must not print 16 MiB.)
    expect((await cache.getMetadata('snapshot', name))?.byteLength).toBeUndefined();
    expect(await exists(path)).toBe(false); // dropped
  });

  it('a cached file of another size than the storage lists is not that file', async () => {
    const { cache } = await openCache();
    const bytes = randomBytes(4096);
    const name = sha(bytes);
    await cache.putMetadata('index', name, bytes);
    expect(await cache.getMetadata('index', name, 100)).toBeUndefined();
    await cache.putMetadata('index', name, bytes);
    expect(await cache.getMetadata('index', name, 4096)).toEqual(bytes);
    expect(await cache.getMetadata('index', name)).toEqual(bytes);
  });

  it('a FIFO in place of a cached file or pack is a miss, not a hang; it is dropped and the cache keeps working', async () => {
    const { cache, warnings } = await openCache();
    const meta = randomBytes(300);
    const metaName = sha(meta);
    const pack = bytesNamed('');
    const metaPath = join(cache.dir, 'index', metaName);
    const packPath = join(cache.dir, 'data', pack.name.slice(0, 2), pack.name);
    await mkdir(join(packPath, '..'), { recursive: true });
    execFileSync('mkfifo', [metaPath, packPath]);
    try {
      expect(await within(cache.getMetadata('index', metaName), 'getMetadata of a FIFO')).toBeUndefined();
      expect(await within(cache.readPack(pack.name, 0, 100), 'readPack of a FIFO')).toBeUndefined();
    } finally {
      await releaseFifo(metaPath);
      await releaseFifo(packPath);
    }
    await cache.putMetadata('index', metaName, meta);
    expect(await cache.getMetadata('index', metaName)).toEqual(meta);
    expect(await cache.putPack(pack.name, pack.bytes)).toBe(true);
    expect(await cache.readPack(pack.name, 10, 100)).toEqual(pack.bytes.subarray(10, 110));
    expect(warnings).toEqual([]);
  }, 60_000);

  it('a symlink in place of a cached file or pack is never followed, even to a file with the right content', async () => {
    const { cache } = await openCache();
    const outside = join(work, 'outside');
    await mkdir(outside);
    const meta = randomBytes(300);
    const metaName = sha(meta);
    await writeFile(join(outside, 'meta'), meta);
    await symlink(join(outside, 'meta'), join(cache.dir, 'snapshots', metaName));
    const pack = bytesNamed('');
    await writeFile(join(outside, 'pack'), pack.bytes);
    await mkdir(join(cache.dir, 'data', pack.name.slice(0, 2)), { recursive: true });
    await symlink(join(outside, 'pack'), join(cache.dir, 'data', pack.name.slice(0, 2), pack.name));

    expect(await cache.getMetadata('snapshot', metaName)).toBeUndefined();
    expect(await cache.readPack(pack.name, 0, 100)).toBeUndefined();
    // The links are dropped; what they pointed to is untouched.
    expect(await readFile(join(outside, 'meta'))).toEqual(meta);
    expect(await readFile(join(outside, 'pack'))).toEqual(pack.bytes);
    expect(await exists(join(cache.dir, 'snapshots', metaName))).toBe(false);
  });

  it('a directory in place of a cached file or pack is dropped, and the cache keeps working', async () => {
    const { cache, warnings } = await openCache();
    const meta = randomBytes(300);
    const metaName = sha(meta);
    await mkdir(join(cache.dir, 'index', metaName, 'inner'), { recursive: true });
    await writeFile(join(cache.dir, 'index', metaName, 'inner', 'f'), 'x');
    const pack = bytesNamed('');
    await mkdir(join(cache.dir, 'data', pack.name.slice(0, 2), pack.name), { recursive: true });

    expect(await cache.getMetadata('index', metaName)).toBeUndefined();
    await cache.putMetadata('index', metaName, meta);
    expect(await cache.getMetadata('index', metaName)).toEqual(meta);

    expect(await cache.readPack(pack.name, 0, 100)).toBeUndefined();
    expect(await cache.putPack(pack.name, pack.bytes)).toBe(true);
    expect(await cache.readPack(pack.name, 0, 100)).toEqual(pack.bytes.subarray(0, 100));
    expect(warnings).toEqual([]);
  });

  it('cleaning never follows a symlinked directory of the cache out of it', async () => {
    const { cache } = await openCache();
    const hex = (c: string) => c.repeat(64);
    const outIndex = join(work, 'documents');
    const outData = join(work, 'photos');
    await mkdir(outIndex);
    await mkdir(outData);
    for (const n of ['precious.txt', hex('1')]) await writeFile(join(outIndex, n), 'mine');
    for (const n of ['ab-holiday.jpg', `ab${'2'.repeat(62)}`]) await writeFile(join(outData, n), 'mine');
    // Another process (or a copy of the cache) turned index/ and data/ab/ into symlinks; a real
    // data/cd/ holds a stray file whose name says it belongs in data/ab/.
    await rm(join(cache.dir, 'index'), { recursive: true });
    await symlink(outIndex, join(cache.dir, 'index'));
    await symlink(outData, join(cache.dir, 'data', 'ab'));
    await mkdir(join(cache.dir, 'data', 'cd'));
    await writeFile(join(cache.dir, 'data', 'cd', 'ab-holiday.jpg'), 'stray');

    await cache.clean('index', new Set());
    await cache.clean('snapshot', new Set());
    await cache.cleanPacks(() => false);

    expect((await readdir(outIndex)).sort()).toEqual([hex('1'), 'precious.txt']);
    expect((await readdir(outData)).sort()).toEqual(['ab-holiday.jpg', `ab${'2'.repeat(62)}`]);
    // The stray file itself goes (not the file of its name in another directory).
    expect(await exists(join(cache.dir, 'data', 'cd', 'ab-holiday.jpg'))).toBe(false);
  });

  it('writes never follow a symlinked directory of the cache out of it; opening the cache replaces such links', async () => {
    const outside = join(work, 'elsewhere');
    await mkdir(outside);
    const dir = join(work, 'cache', ID);
    await mkdir(dir, { recursive: true });
    await symlink(outside, join(dir, 'snapshots')); // before the cache is opened
    const { cache, warnings } = await openCache();
    await symlink(outside, join(cache.dir, 'data', 'ab')); // after

    const meta = randomBytes(300);
    await cache.putMetadata('snapshot', sha(meta), meta);
    const pack = bytesNamed('ab');
    expect(await cache.putPack(pack.name, pack.bytes)).toBe(true);

    expect(await readdir(outside)).toEqual([]);
    expect(await cache.getMetadata('snapshot', sha(meta))).toEqual(meta);
    expect(await cache.readPack(pack.name, 0, 64)).toEqual(pack.bytes.subarray(0, 64));
    expect((await lstat(join(cache.dir, 'snapshots'))).isDirectory()).toBe(true);
    expect((await lstat(join(cache.dir, 'data', 'ab'))).isDirectory()).toBe(true);
    expect(warnings).toEqual([]);
  });

  it('names that are not SHA-256 ids never become paths: nothing outside the cache is read, written or removed', async () => {
    const { cache } = await openCache();
    // cache.dir is <work>/cache/<id>: from its index/ or snapshots/, ../../../victim is <work>/victim.
    const victim = join(work, 'victim');
    await writeFile(victim, 'precious');
    expect(await cache.getMetadata('index', '../../../victim')).toBeUndefined();
    expect(await cache.readPack('../../victim', 0, 4)).toBeUndefined();
    await cache.dropPack('../../victim'); // data/../../../victim
    await cache.putMetadata('snapshot', '../../../written', Buffer.from('x'));
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect(await exists(join(work, 'written'))).toBe(false);
  });

  it('a snapshot id from a caller (or a custom adapter’s listing) that is not a SHA-256 id removes nothing outside the cache', async () => {
    const victim = join(work, 'victim');
    await writeFile(victim, 'precious');
    const storage = createMemoryStorage('names');
    await populate(storage);
    const repo = await Repository.open(storage, 'pw', { ...base, cacheDir: join(work, 'cache2') });
    // <work>/cache2/<repository id>/snapshots/../../../victim
    await expect(repo.loadSnapshot('../../../victim')).rejects.toThrow();
    await repo.close();
    expect(await readFile(victim, 'utf8')).toBe('precious');
  });

  it('temporary files a killed process left behind are removed once a day old; newer ones (a write in progress) are kept', async () => {
    const { cache } = await openCache();
    const dirs = [join(cache.dir, 'index'), join(cache.dir, 'snapshots'), join(cache.dir, 'data', 'ab')];
    await mkdir(dirs[2]!, { recursive: true });
    const twoDaysAgo = Date.now() / 1000 - 2 * 86400;
    for (const d of dirs) {
      await writeFile(join(d, '.0123456789ab.tmp'), 'left by a killed process');
      await utimes(join(d, '.0123456789ab.tmp'), twoDaysAgo, twoDaysAgo);
      await writeFile(join(d, '.ba9876543210.tmp'), 'being written');
    }
    await cache.clean('index', new Set());
    await cache.clean('snapshot', new Set());
    await cache.cleanPacks(() => true);
    for (const d of dirs) expect(await readdir(d), d).toEqual(['.ba9876543210.tmp']);
  });

  it('an unusable cache directory does not fail the command: one warning, and everything is read from storage', async () => {
    const storage = createMemoryStorage('unusable');
    await populate(storage);
    const file = join(work, 'not-a-directory');
    await writeFile(file, 'x');
    const warnings: string[] = [];
    const repo = await Repository.open(storage, 'pw', { ...base, logger: { info() {}, warn: (m: string) => warnings.push(m) }, cacheDir: file });
    expect(repo.cacheLocation).toBeUndefined();
    expect((await listing(repo)).length).toBeGreaterThan(10);
    await repo.close();
    expect(warnings).toHaveLength(1);
  });

  it('a cache turned off by a failed write reads trees by their ranges, as without a cache, not by whole packs', async () => {
    const storage = counting(createMemoryStorage('turned-off'));
    await populate(storage);
    const plain = await Repository.open(storage, 'pw', base);
    storage.reset();
    const expected = await listing(plain);
    const rangesOnly = storage.bytes.data!;
    const treePacks = new Set<string>();
    plain.internals().index.forEachUsableId('tree', (ids, off) => treePacks.add(plain.lookupBlob('tree', Buffer.from(ids.subarray(off, off + 32)).toString('hex'))!.pack));
    await plain.close();

    const cacheDir = join(work, 'cache-off');
    const repo = await Repository.open(storage, 'pw', { ...base, cacheDir });
    // Its pack directory replaced by a file: the first pack it caches fails to be written, which turns it off.
    await rm(join(repo.cacheLocation!, 'data'), { recursive: true });
    await writeFile(join(repo.cacheLocation!, 'data'), 'x');
    storage.reset();
    expect(await listing(repo)).toEqual(expected);
    await repo.close();
    // Each tree pack fetched whole at most once (to cache it, which turns the cache off), then ranges
    // only: about rangesOnly + wholeTreePacks (the reads' grouping may differ by a few bytes; a quarter
    // of slack). Before, every batch of trees fetched their packs whole again: 3 times that here.
    let wholeTreePacks = 0;
    for await (const f of storage.list('data')) if (treePacks.has(f.name)) wholeTreePacks += f.size;
    expect(treePacks.size).toBeGreaterThan(0);
    expect(storage.bytes.data!).toBeLessThanOrEqual(1.25 * (rangesOnly + wholeTreePacks));
  });

  it('a truncated cached file, one of the right size with other content, and a cut cached pack are each dropped and read from storage again', async () => {
    const storage = counting(createMemoryStorage('damaged'));
    await populate(storage);
    const cacheDir = join(work, 'cache');
    const first = await Repository.open(storage, 'pw', { ...base, cacheDir });
    const expected = await listing(first);
    const dir = first.cacheLocation!;
    await first.close();
    const files = async (sub: string) => {
      const out = (await readdir(join(dir, sub), { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => join(e.parentPath, e.name));
      expect(out.length, sub).toBeGreaterThan(0);
      return out;
    };
    for (const p of await files('index')) await truncate(p, Math.floor((await stat(p)).size / 2));
    for (const p of await files('snapshots')) await writeFile(p, randomBytes((await stat(p)).size));
    for (const p of await files('data')) await truncate(p, Math.floor((await stat(p)).size / 2));

    storage.reset();
    const second = await Repository.open(storage, 'pw', { ...base, cacheDir });
    expect(await listing(second)).toEqual(expected);
    await second.close();
    expect(storage.loads.index).toBeGreaterThan(0);
    expect(storage.loads.snapshot).toBeGreaterThan(0);
    expect(storage.loads.data).toBeGreaterThan(0);

    storage.reset();
    const third = await Repository.open(storage, 'pw', { ...base, cacheDir });
    expect(await listing(third)).toEqual(expected);
    await third.close();
    expect(storage.loads.index ?? 0).toBe(0);
    expect(storage.loads.snapshot ?? 0).toBe(0);
    expect(storage.loads.data ?? 0).toBe(0);
  });
});
