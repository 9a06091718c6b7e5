import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { open, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { runBackup, restoreSnapshot, listTree, diffSnapshots, lookupPath } from '../../src/index.js';
import { memoryRepository, storedBytes } from '../backup/helpers/real-repo.js';
import { describeTree, makeSampleTree, pseudoRandom, removeDir, tempDir, NON_UTF8_NAME } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

async function expectSameTree(a: string, b: string): Promise<void> {
  const before = await describeTree(a);
  const after = await describeTree(b);
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [p, info] of before) expect(after.get(p), p).toEqual(info);
}

describe('backup → restore through a real repository (memory storage)', () => {
  it('round-trips contents, modes, mtimes (ns), symlinks, empty files and dirs, non-UTF-8 names', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo, reopen } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.status).toBe('success');
    expect(res.errors).toEqual([]);
    expect(res.stats.filesNew).toBeGreaterThanOrEqual(10);
    expect(res.stats.bytesRead).toBeGreaterThan(80_000);
    await repo.close();

    // A fresh process view of the repository: nothing cached.
    const repo2 = await reopen();
    const found = await repo2.findSnapshot('latest');
    expect(found.id).toBe(res.snapshotId);
    expect(found.snapshot.paths).toEqual([src]);

    // The root tree mirrors the absolute path.
    const top = await lookupPath(repo2, found.snapshot, '/');
    await repo2.loadIndex();
    const rootTree = await repo2.loadTree(top!.subtree!);
    expect(rootTree.nodes.map((n) => n.name)).toEqual([src.split('/')[1]]);
    const big = await lookupPath(repo2, found.snapshot, join(src, 'dir/big.bin'));
    expect(big?.content?.length).toBeGreaterThan(3);
    const weird = await lookupPath(repo2, found.snapshot, src);
    expect(weird?.type).toBe('dir');

    const target = join(work, 'restore');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: found.id, target });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBeGreaterThanOrEqual(10);
    await expectSameTree(src, join(target, src));
    // Ancestors of the source are real directories with their metadata.
    expect((await stat(join(target, work))).isDirectory()).toBe(true);
    const names = await readdir(join(target, src), { encoding: 'buffer' });
    expect(names.some((n) => n.equals(NON_UTF8_NAME))).toBe(true);
    await repo2.close();
  });

  it('a no-change backup reads no content and adds only the snapshot', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo, storage } = await memoryRepository();
    const first = await runBackup({ repository: repo, sources: [src] });
    const dataBefore = await storedBytes(storage, 'data');
    const indexBefore = await storedBytes(storage, 'index');
    const second = await runBackup({ repository: repo, sources: [src] });
    expect(second.status).toBe('success');
    expect(second.parentId).toBe(first.snapshotId);
    expect(second.stats.bytesRead).toBe(0);
    expect(second.stats.filesUnmodified).toBe(first.stats.filesNew);
    expect(second.stats.dirsUnmodified).toBeGreaterThanOrEqual(5);
    // The source's own tree is the parent's. Above it, the snapshot records its ancestors (the temp
    // directory's parents), whose metadata other tests running at the same time may change: only
    // when they did not, the whole snapshot adds nothing but its file.
    const subtree = async (root: string) => {
      let id = root;
      for (const name of src.split('/').filter(Boolean)) id = (await repo.loadTree(id)).nodes.find((n) => n.name === name)!.subtree!;
      return id;
    };
    expect(await subtree(second.snapshot!.tree)).toBe(await subtree(first.snapshot!.tree));
    if (second.snapshot!.tree === first.snapshot!.tree) {
      expect(second.stats.blobsNew).toBe(0);
      expect(await storedBytes(storage, 'data')).toEqual(dataBefore);
      expect(await storedBytes(storage, 'index')).toEqual(indexBefore);
    } else {
      expect(second.stats.blobsNew).toBeLessThanOrEqual(src.split('/').filter(Boolean).length);
    }
    expect((await storedBytes(storage, 'snapshot')).files).toBe(2);
    await repo.close();
  });

  it('a change in the middle of a large file adds only a few chunks', async () => {
    const src = join(work, 'src');
    const size = 2 * 1024 * 1024;
    await writeFile(join(src + '-mk'), '');
    await (await import('node:fs/promises')).mkdir(src);
    const file = join(src, 'large.bin');
    await writeFile(file, pseudoRandom(size, 5));
    const { repo } = await memoryRepository({ packSize: 1024 * 1024 });
    const first = await runBackup({ repository: repo, sources: [src] });
    const chunks = first.stats.blobsNew;
    expect(chunks).toBeGreaterThan(200); // avg 4 KiB chunks in tests
    // Overwrite 8 KiB in the middle (≈ 2 average chunks in test parameters; 1 MiB with real ones).
    const fh = await open(file, 'r+');
    await fh.write(pseudoRandom(8192, 77), 0, 8192, size / 2);
    await fh.close();
    const second = await runBackup({ repository: repo, sources: [src] });
    expect(second.stats.filesChanged).toBe(1);
    expect(second.stats.bytesRead).toBe(size);
    expect(second.stats.blobsNew).toBeGreaterThanOrEqual(1);
    // The chunker seed is random per repository, so the exact count varies; ~500 chunks in all.
    expect(second.stats.blobsNew).toBeLessThanOrEqual(12);
    expect(second.stats.dataAdded).toBeLessThan(8192 + 6 * 16 * 1024);

    const target = join(work, 'restore');
    const rr = await restoreSnapshot({ repository: repo, snapshot: second.snapshot!, target });
    expect(rr.errors).toEqual([]);
    expect((await readFile(join(target, file))).equals(await readFile(file))).toBe(true);
    await repo.close();
  });

  it('restoring a file with a damaged blob fails clearly for that file; the others restore', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo, storage, reopen } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    const big = await lookupPath(repo, res.snapshot!, join(src, 'dir/big.bin'));
    const victim = big!.content![2]!;
    const loc = repo.lookupBlob('data', victim)!;
    await repo.close();
    // Flip one byte inside that blob in its pack.
    const pack = await storage.load({ type: 'data', name: loc.pack });
    pack[loc.offset + Math.floor(loc.length / 2)]! ^= 0x40;
    await storage.save({ type: 'data', name: loc.pack }, pack);

    const repo2 = await reopen();
    const target = join(work, 'restore');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target });
    expect(rr.errors).toHaveLength(1);
    expect(rr.errors[0]!.path).toBe(join(src, 'dir/big.bin'));
    expect(rr.errors[0]!.message).toContain(victim);
    expect(rr.errors[0]!.message).toContain(loc.pack);
    // The damaged file is not there (not even partially), no temp file is left.
    const dirNames = await readdir(join(target, src, 'dir'));
    expect(dirNames.sort()).toEqual(['sub']);
    // Everything else restored.
    expect(await readFile(join(target, src, 'hello.txt'), 'utf8')).toBe('hello, kiwi\n');
    expect((await readFile(join(target, src, 'dir/sub/small.bin'))).equals(pseudoRandom(777, 3))).toBe(true);
    await repo2.close();
  });

  it('lists and diffs snapshots', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo } = await memoryRepository();
    const a = await runBackup({ repository: repo, sources: [src] });
    await writeFile(join(src, 'hello.txt'), 'changed!\n');
    await writeFile(join(src, 'dir/new.txt'), 'new');
    await (await import('node:fs/promises')).rm(join(src, 'dir/sub'), { recursive: true });
    const b = await runBackup({ repository: repo, sources: [src] });

    const listed: string[] = [];
    for await (const e of listTree(repo, b.snapshot!, join(src, 'dir'))) listed.push(e.path);
    expect(listed).toEqual([join(src, 'dir'), join(src, 'dir/big.bin'), join(src, 'dir/new.txt')]);

    const changes: Array<[string, string]> = [];
    for await (const c of diffSnapshots(repo, a.snapshot!, b.snapshot!)) changes.push([c.path, c.change]);
    const m = new Map(changes);
    expect(m.get(join(src, 'hello.txt'))).toBe('modified');
    expect(m.get(join(src, 'dir/new.txt'))).toBe('added');
    expect(m.get(join(src, 'dir/sub'))).toBe('removed');
    expect(m.get(join(src, 'dir/sub/deeper/dup1.bin'))).toBe('removed');
    expect(m.has(join(src, 'exec.sh'))).toBe(false);
    expect(m.has(join(src, 'empty-dir'))).toBe(false);
    await repo.close();
  });
});
