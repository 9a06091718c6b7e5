/**
 * The file saver threads (issue #12): the same blobs and trees with 1 and N threads as on the main
 * thread; a thread that crashes fails the backup cleanly (no snapshot, lock released, onBackupStop
 * ran) and the next backup succeeds; a file that changes or vanishes while a thread reads it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile, unlink } from 'node:fs/promises';
import { lookupPath, runBackup, restoreSnapshot, PluginRuntime, type BackupStatus, type PluginDefinition } from '../../src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { describeTree, makeSampleTree, pseudoRandom, removeDir, tempDir } from './helpers/fs-tree.js';

let work: string;
let src: string;
beforeEach(async () => {
  work = await tempDir('kiwi-savers-');
  src = join(work, 'src');
  await makeSampleTree(src);
  // Enough to spread over threads: small files in several batches, and big multi-chunk ones.
  await mkdir(join(src, 'many'));
  for (let i = 0; i < 120; i++) await writeFile(join(src, 'many', `f${i}.txt`), pseudoRandom(500 + i * 37, i + 1));
  await writeFile(join(src, 'many', 'dup-a.bin'), pseudoRandom(40_000, 999));
  await writeFile(join(src, 'many', 'dup-b.bin'), pseudoRandom(40_000, 999));
  await writeFile(join(src, 'big.bin'), pseudoRandom(600_000, 7));
  // A name that is not UTF-8: the threads get the path's exact bytes.
  await writeFile(Buffer.concat([Buffer.from(join(src, 'many') + '/'), Buffer.from([0x6e, 0xe9, 0xff])]), pseudoRandom(3000, 5));
});
afterEach(async () => {
  delete process.env.KIWI_TEST_SAVER_CRASH;
  await removeDir(work);
});

const opts = { kdf: { N: 1024, r: 8, p: 1 }, logger: { info() {}, warn() {} }, chunker: { minSize: 1024, avgSize: 4096, maxSize: 16 * 1024 }, packSize: 64 * 1024 };

/** The data blob ids a repository indexes. */
async function dataIds(repo: Repository): Promise<string[]> {
  await repo.loadIndex();
  const ids = new Set<string>();
  repo.internals().index.forEachUsableId('data', (buf, off) => ids.add(Buffer.from(buf.subarray(off, off + 32)).toString('hex')));
  return [...ids].sort();
}

describe('file saver threads', () => {
  it('give the same blobs and trees with 0, 1 and 3 threads, each blob stored once', async () => {
    const first = await Repository.init(createMemoryStorage('s0'), 'pw', opts);
    const runs: Array<{ tree: string; ids: string[]; blobsNew: number }> = [];
    for (const [i, workers] of [0, 1, 3].entries()) {
      // Same chunker and blob id key as the first repository (so the ids can be compared).
      const repo = i === 0 ? first : await Repository.init(createMemoryStorage(`s${i}`), 'pw', { ...opts, sameChunkerAs: first });
      const r = await runBackup({ repository: repo, sources: [src], workers, parent: null });
      expect(r.status).toBe('success');
      const snap = await repo.loadSnapshot(r.snapshotId!);
      // The source's own tree (the ancestors' metadata, /tmp's mtime among it, moves with other tests).
      const top = await lookupPath(repo, snap, src);
      runs.push({ tree: top!.subtree!, ids: await dataIds(repo), blobsNew: r.stats.blobsNew });
      // Each blob exactly once: the new-blob count is the number of distinct ids.
      expect(r.stats.blobsNew).toBe(runs[i]!.ids.length);
      const target = join(work, '..', `${work.split('/').pop()}-restore-${workers}`);
      const rr = await restoreSnapshot({ repository: repo, snapshotId: r.snapshotId!, target });
      expect(rr.errors).toEqual([]);
      const want = await describeTree(src);
      const got = await describeTree(join(target, src));
      for (const [p, info] of want) expect(got.get(p), `${workers} threads: ${p}`).toEqual(info);
      await removeDir(target);
      if (i > 0) await repo.close();
    }
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).toEqual(runs[0]);
    await first.close();
  });

  it('compress a chunk whose middle is random and whose ends are text, as the main thread does', async () => {
    // One chunk of 1 MiB: 256 KiB of text, 512 KiB of random bytes, 256 KiB of text. A probe of the
    // middle alone took it for incompressible and stored all of it raw.
    const words = (seed: number): Buffer => {
      let x = seed;
      let s = '';
      while (s.length < 256 * 1024) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        s += `w${x % 3000} `;
      }
      return Buffer.from(s.slice(0, 256 * 1024));
    };
    const mixed = join(work, 'mixed');
    await mkdir(mixed);
    await writeFile(join(mixed, 'mixed.bin'), Buffer.concat([words(1), pseudoRandom(512 * 1024, 3), words(2)]));
    const big = { ...opts, chunker: { minSize: 1024 * 1024, avgSize: 2 * 1024 * 1024, maxSize: 4 * 1024 * 1024 }, packSize: 4 * 1024 * 1024 };
    for (const workers of [0, 2]) {
      const repo = await Repository.init(createMemoryStorage(`mixed-${workers}`), 'pw', big);
      const r = await runBackup({ repository: repo, sources: [mixed], workers, parent: null });
      expect(r.status).toBe('success');
      expect(r.stats.dataAdded, `${workers} threads`).toBe(1024 * 1024);
      // The text halves compress to well under half their size: stored well below the 1 MiB input.
      expect(r.stats.dataAddedPacked, `${workers} threads`).toBeLessThan(800 * 1024);
      await repo.close();
    }
  });

  it('a file larger than the whole arena streams through it while other files keep both threads busy', async () => {
    // 20 MiB of incompressible data: more than both arena halves (8 MiB each) of a thread, so its
    // halves are filled, handed over and reused several times within one file.
    await writeFile(join(src, 'huge.bin'), pseudoRandom(20 * 1024 * 1024, 11));
    for (let i = 0; i < 200; i++) await writeFile(join(src, 'many', `g${i}.txt`), pseudoRandom(3000 + i, 500 + i));
    const repo = await Repository.init(createMemoryStorage('huge'), 'pw', { ...opts, packSize: 256 * 1024 });
    const r = await runBackup({ repository: repo, sources: [src], workers: 2 });
    expect(r.status).toBe('success');
    const target = join(work, '..', `${work.split('/').pop()}-restore-huge`);
    expect((await restoreSnapshot({ repository: repo, snapshotId: r.snapshotId!, target })).errors).toEqual([]);
    const want = await describeTree(src);
    const got = await describeTree(join(target, src));
    for (const [p, info] of want) expect(got.get(p), p).toEqual(info);
    await removeDir(target);
    await repo.close();
  }, 120_000);

  it('a thread that crashes fails the backup cleanly; the next backup succeeds', async () => {
    const storage = createMemoryStorage('crash');
    const repo = await Repository.init(storage, 'pw', opts);
    const seen: BackupStatus[] = [];
    const stop: PluginDefinition = {
      onBackupStop: async (ctx, next) => {
        seen.push(ctx.backup.status);
        await next();
      },
    };
    const plugins = await PluginRuntime.fromModules([{ name: 'stop', module: stop }], { logger: { debug() {}, info() {}, warn() {}, error() {} } });
    process.env.KIWI_TEST_SAVER_CRASH = '40';
    const err = await runBackup({ repository: repo, sources: [src], workers: 2, plugins }).catch((e: unknown) => e as Error);
    delete process.env.KIWI_TEST_SAVER_CRASH;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/file saver thread/);
    expect(seen).toEqual(['failure']);
    expect(await repo.listSnapshots()).toEqual([]);
    const locks: string[] = [];
    for await (const f of storage.list('lock')) locks.push(f.name);
    expect(locks).toEqual([]);

    const again = await runBackup({ repository: repo, sources: [src], workers: 2, plugins });
    expect(again.status).toBe('success');
    expect(seen).toEqual(['failure', 'success']);
    expect((await repo.check({ readData: true })).errors).toEqual([]);
    await repo.close();
  });

  it('a file that vanishes before its thread opens it is an entry error; the rest is saved', async () => {
    const repo = await Repository.init(createMemoryStorage('vanish'), 'pw', opts);
    // Remove a file after the walk saw it: the walk's lstat stands, the thread's open fails.
    const victim = join(src, 'many', 'f5.txt');
    const r = await runBackup({
      repository: repo,
      sources: [src],
      workers: 2,
      onProgress: () => {
        void unlink(victim).catch(() => undefined);
      },
    });
    if (r.status === 'partial') {
      // Gone before its thread opened it ("vanished"), or already before the walk's lstat (a busy
      // machine can delay the walk past the first progress call): either way one error, for it alone.
      expect(r.errors.map((e) => e.path), JSON.stringify(r.errors)).toEqual([victim]);
      expect(r.errors[0]!.message).toMatch(/vanished|^lstat: .*ENOENT/);
    } else {
      // The file was read before the unlink landed: then it is simply in the snapshot.
      expect(r.status).toBe('success');
    }
    await repo.close();
  });
});
