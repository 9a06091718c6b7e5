import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { link, mkdir, readdir, lstat, symlink, writeFile } from 'node:fs/promises';
import { runBackup, snapshotStats, type Repository } from '../../src/index.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';
import { HostileRepo, dirNode, fileNode } from '../../src/testing/hostile.js';
import { Repository as RepositoryClass } from '../../src/repository/repository.js';
import { FAST_KDF, newRepo, quietLogger } from '../repository/helpers.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

/** Files, dirs (with the ancestors of `root` up to /), others and bytes (hard links once), counted on disk. */
async function onDisk(root: string): Promise<{ files: number; dirs: number; others: number; bytes: number }> {
  const c = { files: 0, dirs: root.split('/').filter(Boolean).length, others: 0, bytes: 0 };
  const inodes = new Set<string>();
  const visit = async (dir: string) => {
    for (const name of await readdir(dir)) {
      const p = join(dir, name);
      const st = await lstat(p);
      if (st.isDirectory()) {
        c.dirs++;
        await visit(p);
      } else if (st.isFile()) {
        c.files++;
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1 && inodes.has(key)) continue;
        inodes.add(key);
        c.bytes += st.size;
      } else c.others++;
    }
  };
  await visit(root);
  return c;
}

async function sample(root: string): Promise<void> {
  await mkdir(join(root, 'a/b/c'), { recursive: true });
  await mkdir(join(root, 'same1'));
  await mkdir(join(root, 'same2'));
  await writeFile(join(root, 'a/one.bin'), pseudoRandom(20_000, 1));
  await writeFile(join(root, 'a/b/two.bin'), pseudoRandom(70_000, 2));
  await writeFile(join(root, 'a/b/c/three.txt'), 'three');
  await writeFile(join(root, 'same1/x.bin'), pseudoRandom(9_000, 3));
  await writeFile(join(root, 'same2/x.bin'), pseudoRandom(9_000, 3)); // an identical directory: one tree blob, counted twice
  await writeFile(join(root, 'empty'), '');
  await link(join(root, 'a/one.bin'), join(root, 'hardlink.bin'));
  await symlink('a/one.bin', join(root, 'sym'));
}

describe('snapshot stats', () => {
  let repo: Repository;

  it('restore-size equals what is on disk (hard links once, identical dirs twice); raw-data counts each blob once', async () => {
    const src = join(work, 'src');
    await sample(src);
    ({ repo } = await memoryRepository());
    const first = await runBackup({ repository: repo, sources: [src] });
    await writeFile(join(src, 'a/new.bin'), pseudoRandom(30_000, 4));
    const second = await runBackup({ repository: repo, sources: [src] });
    const disk2 = await onDisk(src);
    const snaps = await repo.listSnapshots();
    expect(snaps.map((s) => s.id).sort()).toEqual([first.snapshotId, second.snapshotId].sort());

    const one = await snapshotStats(repo, snaps.filter((s) => s.id === second.snapshotId));
    expect(one.total).toEqual(disk2);
    expect(one.total.bytes).toBe(20_000 + 70_000 + 5 + 9_000 * 2 + 30_000);
    expect(one.total.others).toBe(1);

    const both = await snapshotStats(repo, snaps, { mode: 'raw-data' });
    expect(both.total.bytes).toBe(one.total.bytes * 2 - 30_000);
    expect(both.snapshots.map((s) => s.size.files).sort()).toEqual([7, 8]);
    const raw = both.raw!;
    // Every indexed blob is referenced (nothing was forgotten); the index says how many there are.
    expect(raw.missingBlobs).toBe(0);
    expect(raw.blobs).toBe(repo.indexStats().blobs);
    expect(raw.dataBlobs + raw.treeBlobs).toBe(raw.blobs);
    // Unique data: each distinct content once (the same 9_000 bytes in two dirs once, the hard link once).
    expect(raw.dataRawBytes).toBe(20_000 + 70_000 + 5 + 9_000 + 30_000);
    expect(raw.dedupRatio).toBeCloseTo(both.total.bytes / raw.dataRawBytes, 10);
    expect(raw.dedupRatio!).toBeGreaterThan(1.5);
    expect(raw.packs).toBeGreaterThanOrEqual(2);
    expect(raw.storedBytes).toBeGreaterThan(0);
    await repo.close();
  });

  it('entries the tree validator refuses are left out and counted', async () => {
    const { repo: r0, storage } = await newRepo();
    await r0.close();
    const h = await HostileRepo.open(storage, 'secret');
    const x = await h.writeRawDataBlob(Buffer.from('xxx'));
    const inner = await h.writeTree([fileNode('x', { size: 3, content: [x] }), fileNode('y', { mtimeNs: 'soon' })]);
    const root = await h.writeTree([dirNode('a', inner), fileNode('bad', { uid: -7 }), null]);
    const snapId = await h.writeRawSnapshot(h.snapshotJson(root));
    const opened = await RepositoryClass.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
    const r = await snapshotStats(opened, [{ id: snapId, snapshot: await opened.loadSnapshot(snapId) }]);
    expect(r.total).toEqual({ files: 1, dirs: 1, others: 0, bytes: 3 });
    expect(r.invalidEntries).toBe(3);
    await opened.close();
  });

  it('a missing tree fails with the blob named', async () => {
    const src = join(work, 'src');
    await sample(src);
    ({ repo } = await memoryRepository());
    const b = await runBackup({ repository: repo, sources: [src] });
    await expect(snapshotStats(repo, [{ id: 'x', snapshot: { tree: 'ab'.repeat(32) } }])).rejects.toThrow(/tree blob abab.* is not in the repository index/);
    expect((await snapshotStats(repo, [{ id: b.snapshotId!, snapshot: b.snapshot! }])).trees).toBeGreaterThan(5);
    await repo.close();
  });
});
