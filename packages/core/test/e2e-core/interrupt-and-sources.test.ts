import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { runBackup, restoreSnapshot, diffSnapshots, lookupPath, listTree, BackupInterruptedError } from '../../src/index.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { describeTree, makeSampleTree, pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

describe('interrupted backups and the repository', () => {
  it('an interrupted backup writes no snapshot; the repository checks clean; the next backup and restores work', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo, reopen } = await memoryRepository({ packSize: 64 * 1024 });
    const first = await runBackup({ repository: repo, sources: [src] });
    // Enough new data that packs are uploaded before the interrupt.
    for (let i = 0; i < 30; i++) await writeFile(join(src, `new-${i}.bin`), pseudoRandom(20_000, 100 + i));
    const ac = new AbortController();
    let saves = 0;
    // The signal fires after 40 blob saves (several packs of 64 KiB uploaded by then).
    const counting = new Proxy(repo, {
      get(target, key) {
        // Data blobs go through saveBlob on the main thread's path, storeSealed from the saver threads.
        if (key === 'saveBlob' || key === 'storeSealed') {
          const fn = Reflect.get(target, key) as (...a: unknown[]) => unknown;
          return (...args: unknown[]) => {
            if (++saves === 40) ac.abort(new Error('SIGTERM'));
            return fn.apply(target, args);
          };
        }
        const v = Reflect.get(target, key) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const err = await runBackup({ repository: counting, sources: [src], signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupInterruptedError);
    expect(saves).toBeLessThan(60);
    expect((await repo.storage.list('data')[Symbol.asyncIterator]().next()).done).toBe(false);
    expect((await repo.listSnapshots()).map((s) => s.id)).toEqual([first.snapshotId]);
    await repo.close();

    const repo2 = await reopen();
    const report = await repo2.check({ readData: true });
    expect(report.errors).toEqual([]);
    const next = await runBackup({ repository: repo2, sources: [src] });
    expect(next.status).toBe('success');
    expect(next.parentId).toBe(first.snapshotId);
    // Each snapshot restores exactly.
    const target = join(work, 'restore');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: next.snapshotId!, target });
    expect(rr.errors).toEqual([]);
    const a = await describeTree(src);
    const b = await describeTree(join(target, src));
    expect(b).toEqual(a);
    const old = await restoreSnapshot({ repository: repo2, snapshotId: first.snapshotId!, target: join(work, 'old') });
    expect(old.errors).toEqual([]);
    expect(old.filesRestored).toBe(first.stats.filesNew);
    await repo2.close();
  }, 30_000);
});

describe('several sources', () => {
  it('share their ancestors in the root tree, with real metadata', async () => {
    const a = join(work, 'a/x');
    const b = join(work, 'a/y');
    const c = join(work, 'c');
    for (const d of [a, b, c]) await mkdir(d, { recursive: true });
    await writeFile(join(a, 'f1'), '1');
    await writeFile(join(b, 'f2'), '2');
    await writeFile(join(c, 'f3'), '3');
    await chmod(join(work, 'a'), 0o711);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [c, b, a] });
    expect(res.snapshot!.paths).toEqual([a, b, c]);
    const aNode = (await lookupPath(repo, res.snapshot!, join(work, 'a')))!;
    expect(aNode.type).toBe('dir');
    expect(aNode.mode).toBe(0o711);
    const listed: string[] = [];
    for await (const e of listTree(repo, res.snapshot!, work)) listed.push(e.path.slice(work.length));
    expect(listed).toEqual(['', '/a', '/a/x', '/a/x/f1', '/a/y', '/a/y/f2', '/c', '/c/f3']);
    await repo.close();
  });

  it('excludes, explicit parent and parent: null', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo } = await memoryRepository();
    const first = await runBackup({ repository: repo, sources: [src], exclude: ['*.bin', 'empty-dir/'] });
    expect(await lookupPath(repo, first.snapshot!, join(src, 'dir/big.bin'))).toBeUndefined();
    expect(await lookupPath(repo, first.snapshot!, join(src, 'empty-dir'))).toBeUndefined();
    expect(await lookupPath(repo, first.snapshot!, join(src, 'hello.txt'))).toBeDefined();
    const forced = await runBackup({ repository: repo, sources: [src], exclude: ['*.bin', 'empty-dir/'], parent: null });
    expect(forced.parentId).toBeUndefined();
    expect(forced.stats.filesUnmodified).toBe(0);
    expect(forced.stats.bytesRead).toBe(first.stats.bytesRead);
    expect(forced.stats.blobsNew).toBe(0);
    const explicit = await runBackup({ repository: repo, sources: [src], exclude: ['*.bin', 'empty-dir/'], parent: first.snapshotId!.slice(0, 10) });
    expect(explicit.parentId).toBe(first.snapshotId);
    expect(explicit.stats.bytesRead).toBe(0);
    await repo.close();
  });

  it('diff reports a mode-only change as metadata', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo } = await memoryRepository();
    const a = await runBackup({ repository: repo, sources: [src] });
    await chmod(join(src, 'hello.txt'), 0o640);
    const b = await runBackup({ repository: repo, sources: [src] });
    expect(b.stats.filesUnmodified).toBeGreaterThan(5);
    const changes = [];
    for await (const c of diffSnapshots(repo, a.snapshot!, b.snapshot!)) changes.push(c);
    const hello = changes.find((c) => c.path === join(src, 'hello.txt'))!;
    expect(hello.change).toBe('metadata');
    expect(hello.fields).toContain('mode');
    expect(changes.every((c) => c.change === 'metadata')).toBe(true);
    await repo.close();
  });

  it.skipIf(process.getuid?.() === 0)('an unreadable file (not root) makes the backup partial', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    await chmod(join(src, 'private.txt'), 0o000);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.status).toBe('partial');
    expect(res.errors).toEqual([{ path: join(src, 'private.txt'), message: expect.stringMatching(/EACCES/) }]);
    await repo.close();
  });
});
