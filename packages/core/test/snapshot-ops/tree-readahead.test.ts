import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { diffSnapshots, listTree, restoreSnapshot, runBackup } from '../../src/index.js';
import type { Repository } from '../../src/repository/repository.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

/** 4 × 4 × 3 nested directories (68 trees below the source), each with two small files. */
async function makeDeepTree(src: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  let seed = 1;
  for (let a = 0; a < 4; a++) {
    for (let b = 0; b < 4; b++) {
      for (let c = 0; c < 3; c++) {
        for (const dir of [`a${a}`, `a${a}/b${b}`, `a${a}/b${b}/c${c}`]) {
          for (let f = 0; f < 2; f++) {
            const rel = `${dir}/f${f}.txt`;
            if (!files.has(rel)) files.set(rel, pseudoRandom(100 + ((seed * 37) % 700), seed++));
          }
        }
      }
    }
  }
  for (const [rel, data] of files) {
    await mkdir(join(src, rel, '..'), { recursive: true });
    await writeFile(join(src, rel), data);
  }
  return files;
}

/** Counts tree loads: single ones (`loadTree`) and batched calls (`loadBlobs('tree', …)`). */
function countTrees(repo: Repository): { repo: Repository; single: number; batches: number; batched: number } {
  const c = { repo: Object.create(repo) as Repository, single: 0, batches: 0, batched: 0 };
  c.repo.loadTree = (id) => {
    c.single++;
    return repo.loadTree(id);
  };
  c.repo.loadBlobs = (type, ids, onBlob, opts) => {
    if (type === 'tree') {
      c.batches++;
      c.batched += ids.length;
    }
    return repo.loadBlobs(type, ids, onBlob, opts);
  };
  return c;
}

/** The deep tree backed up once into a fresh memory repository, reopened (nothing cached) for the test. */
async function backedUpDeepTree() {
  const src = join(work, 'src');
  const files = await makeDeepTree(src);
  const { repo, storage, reopen } = await memoryRepository({ packSize: 1024 * 1024 });
  const res = await runBackup({ repository: repo, sources: [src] });
  expect(res.errors).toEqual([]);
  await repo.close();
  return { src, files, storage, reopen, res, repo2: await reopen() };
}

describe('restore reads trees ahead in batches', () => {
  it('restores a deep hierarchy exactly with far fewer tree reads than directories', async () => {
    const { src, files, res, repo2 } = await backedUpDeepTree();
    const counted = countTrees(repo2);
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: counted.repo, snapshotId: res.snapshotId!, target });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(files.size);
    for (const [rel, data] of files) expect((await readFile(join(target, src, rel))).equals(data), rel).toBe(true);
    // 68 directories below the source (plus its ancestors): every tree read, in a handful of calls, not one per
    // directory. (A tree needed before its batch starts is read on its own, so the split varies with timing.)
    expect(counted.batched + counted.single).toBeGreaterThanOrEqual(68);
    expect(counted.single + counted.batches).toBeLessThan(30);
    await repo2.close();
  });

  it('reports a damaged tree for its directory only; the rest is restored', async () => {
    const { src, files, storage, reopen, res, repo2 } = await backedUpDeepTree();
    await repo2.loadIndex();
    // Find the tree of a1/b2 through its parent a1.
    const root = await repo2.loadTree((await repo2.loadSnapshot(res.snapshotId!)).tree);
    let tree = root;
    for (const part of [...src.split('/').filter(Boolean), 'a1']) tree = await repo2.loadTree(tree.nodes.find((n) => n.name === part)!.subtree!);
    const victimId = tree.nodes.find((n) => n.name === 'b2')!.subtree!;
    const loc = repo2.lookupBlob('tree', victimId)!;
    const packBytes = await storage.load({ type: 'data', name: loc.pack });
    packBytes[loc.offset + 20]! ^= 0x08;
    await storage.save({ type: 'data', name: loc.pack }, packBytes);
    const repo3 = await reopen();
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo3, snapshotId: res.snapshotId!, target });
    expect(rr.errors.length).toBe(1);
    expect(rr.errors[0]!.path).toBe(join(src, 'a1/b2'));
    expect(rr.errors[0]!.message).toContain(victimId);
    for (const [rel, data] of files) {
      if (rel.startsWith('a1/b2/')) expect(existsSync(join(target, src, rel)), rel).toBe(false);
      else expect((await readFile(join(target, src, rel))).equals(data), rel).toBe(true);
    }
    await repo2.close();
    await repo3.close();
  });
});

describe("backup reads the parent snapshot's trees ahead in batches", () => {
  it('a no-change backup compares against every parent tree with far fewer reads than directories', async () => {
    const { src, files, res: first, repo2 } = await backedUpDeepTree();
    const counted = countTrees(repo2);
    const second = await runBackup({ repository: counted.repo, sources: [src] });
    expect(second.errors).toEqual([]);
    expect(second.parentId).toBe(first.snapshotId);
    // Every file was matched against its parent node (so every parent tree was read) and none was read again.
    expect(second.stats.filesUnmodified).toBe(files.size);
    expect(second.stats.bytesRead).toBe(0);
    expect(counted.batched + counted.single).toBeGreaterThanOrEqual(68);
    expect(counted.single + counted.batches).toBeLessThan(30);
    await repo2.close();
  });
});


describe('listing and diff read trees ahead in batches', () => {
  it('listTree (and diff of an added hierarchy) yields every entry with far fewer tree reads than directories', async () => {
    const { src, files, res, repo2 } = await backedUpDeepTree();
    const snapshot = await repo2.loadSnapshot(res.snapshotId!);
    const counted = countTrees(repo2);
    const paths: string[] = [];
    for await (const item of listTree(counted.repo, snapshot, src)) paths.push(item.path);
    // The source itself, its 68 directories and every file, in depth-first order.
    expect(paths.filter((p) => p.endsWith('.txt')).length).toBe(files.size);
    expect(paths).toContain(`${src}/a3/b3/c2/f1.txt`);
    expect(paths.indexOf(`${src}/a0/b0`)).toBeLessThan(paths.indexOf(`${src}/a0/b0/c0/f0.txt`));
    expect(counted.batched + counted.single).toBeGreaterThanOrEqual(68);
    expect(counted.single + counted.batches).toBeLessThan(30);

    // A snapshot of an empty directory against this one: everything under the source is "added".
    const empty = join(work, 'empty');
    await mkdir(join(empty), { recursive: true });
    const none = await runBackup({ repository: repo2, sources: [empty] });
    const counted2 = countTrees(repo2);
    let added = 0;
    for await (const c of diffSnapshots(counted2.repo, await repo2.loadSnapshot(none.snapshotId!), snapshot)) if (c.change === 'added') added++;
    expect(added).toBeGreaterThan(files.size);
    expect(counted2.single + counted2.batches).toBeLessThan(40);
    await repo2.close();
  });
});
