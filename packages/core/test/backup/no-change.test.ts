/**
 * The no-change path: a directory whose entries are its parent's reuses the parent's tree blob
 * (no encoding, hashing or saving); unchanged files, symlinks and empty directories are done
 * without reading; a change deep down changes only the trees on its path; a damaged parent tree
 * mid-walk only makes its directory's files be read again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { runBackup } from '../../src/index.js';
import type { Repository } from '../../src/repository/repository.js';
import type { BlobId, Tree } from '../../src/repository/types.js';
import { memoryRepository } from './helpers/real-repo.js';
import { removeDir, tempDir } from './helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

/** 3 × 4 × 5 directories, each with files, a symlink and an empty directory. */
async function makeTree(src: string): Promise<number> {
  let files = 0;
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 4; b++) {
      for (let c = 0; c < 5; c++) {
        const d = join(src, `a${a}`, `b${b}`, `c${c}`);
        await mkdir(join(d, 'empty'), { recursive: true });
        for (let f = 0; f < 3; f++) {
          await writeFile(join(d, `f${f}.txt`), `file ${a}/${b}/${c}/${f}\n`.repeat(f + 1));
          files++;
        }
        await symlink(`f0.txt`, join(d, 'link'));
      }
    }
  }
  return files;
}

/** Counts the tree blobs a backup hands to saveBlob. */
function countTreeSaves(repo: Repository): { repo: Repository; trees: number } {
  const c = { repo: Object.create(repo) as Repository, trees: 0 };
  c.repo.saveBlob = (type, data, id) => {
    if (type === 'tree') c.trees++;
    return repo.saveBlob(type, data, id);
  };
  return c;
}

/** The tree id of directory `path` in the snapshot whose root tree is `root`. */
async function sourceTree(repo: Repository, root: BlobId, path: string): Promise<BlobId> {
  const parts = path.split('/').filter(Boolean);
  const parent = await treeAt(repo, root, parts.slice(0, -1).join('/'));
  return parent.nodes.find((n) => n.name === parts[parts.length - 1])!.subtree!;
}

async function treeAt(repo: Repository, root: BlobId, path: string): Promise<Tree> {
  let tree = await repo.loadTree(root);
  for (const part of path.split('/').filter(Boolean)) tree = await repo.loadTree(tree.nodes.find((n) => n.name === part)!.subtree!);
  return tree;
}

describe('no-change backup', () => {
  it('reuses every unchanged tree blob as it is, reads nothing, and gives the same root tree', async () => {
    const src = join(work, 'src');
    const files = await makeTree(src);
    const { repo } = await memoryRepository();
    const first = await runBackup({ repository: repo, sources: [src], workers: 0 });
    expect(first.errors).toEqual([]);
    const counted = countTreeSaves(repo);
    const second = await runBackup({ repository: counted.repo, sources: [src], workers: 0 });
    expect(second.errors).toEqual([]);
    expect(second.parentId).toBe(first.snapshotId);
    // The source's tree is the parent's (the root's may differ: other tests touch /tmp meanwhile).
    expect(await sourceTree(repo, second.snapshot!.tree, src)).toBe(await sourceTree(repo, first.snapshot!.tree, src));
    expect(second.stats.filesUnmodified).toBe(files);
    expect(second.stats.bytesRead).toBe(0);
    expect(second.stats.totalFiles).toBe(first.stats.totalFiles);
    // 3 + 12 + 60 directories and 60 empty ones below the source: all unmodified, none saved
    // (only the root tree may be: other tests may have touched /tmp meanwhile).
    expect(second.stats.dirsUnmodified).toBe(first.stats.dirsNew);
    expect(counted.trees).toBeLessThanOrEqual(1);
    await repo.close();
  });

  it('a change deep down saves only the trees on its path; the rest are the parent snapshot\'s', async () => {
    const src = join(work, 'src');
    await makeTree(src);
    const { repo } = await memoryRepository();
    const first = await runBackup({ repository: repo, sources: [src], workers: 0 });
    await writeFile(join(src, 'a1/b2/c3/f1.txt'), 'changed\n');
    const t = new Date('2020-01-01T00:00:00Z');
    await utimes(join(src, 'a1/b2/c3/f1.txt'), t, t);
    const counted = countTreeSaves(repo);
    const second = await runBackup({ repository: counted.repo, sources: [src], workers: 0 });
    expect(second.errors).toEqual([]);
    expect(second.stats.filesChanged).toBe(1);
    // The source's ancestors, the source, a1, a1/b2 and a1/b2/c3.
    expect(counted.trees).toBe(src.split('/').filter(Boolean).length + 4);
    const a = first.snapshot!.tree;
    const b = second.snapshot!.tree;
    for (const same of ['a0', 'a2', 'a1/b1', 'a1/b2/c2', 'a1/b2/c3/empty']) {
      const pa = await treeAt(repo, a, `${src}/${same}`);
      const pb = await treeAt(repo, b, `${src}/${same}`);
      expect(pb).toEqual(pa);
    }
    const changed = await treeAt(repo, b, `${src}/a1/b2/c3`);
    expect(changed.nodes.find((n) => n.name === 'f1.txt')!.size).toBe('changed\n'.length);
    expect(changed.nodes.find((n) => n.name === 'link')!.linkTarget).toBe('f0.txt');
    await repo.close();
  });

  it("a parent tree that cannot be read mid-walk: its directory's files are read again, the snapshot is complete", async () => {
    const src = join(work, 'src');
    const files = await makeTree(src);
    const { repo, storage, reopen } = await memoryRepository({ packSize: 1024 * 1024 });
    const first = await runBackup({ repository: repo, sources: [src], workers: 0 });
    await repo.close();
    const repo2 = await reopen();
    await repo2.loadIndex();
    const victim = (await treeAt(repo2, first.snapshot!.tree, `${src}/a2/b1`)).nodes.find((n) => n.name === 'c4')!.subtree!;
    const loc = repo2.lookupBlob('tree', victim)!;
    const pack = await storage.load({ type: 'data', name: loc.pack });
    pack[loc.offset + 20]! ^= 0x08;
    await storage.save({ type: 'data', name: loc.pack }, pack);
    await repo2.close();
    const repo3 = await reopen();
    const warnings: string[] = [];
    const second = await runBackup({ repository: repo3, sources: [src], workers: 0, logger: { debug: () => {}, info: () => {}, error: () => {}, warn: (m: string) => void warnings.push(m) } });
    expect(second.errors).toEqual([]);
    expect(warnings.join('\n')).toMatch(new RegExp(`parent tree ${victim} could not be loaded, its files are read again`));
    expect(second.stats.filesUnmodified).toBe(files - 3);
    expect(second.stats.filesChanged).toBe(0);
    expect(second.stats.filesNew).toBe(3);
    // The same content: the same source tree (the damaged blob was stored again).
    expect(await sourceTree(repo3, second.snapshot!.tree, src)).toBe(await sourceTree(repo3, first.snapshot!.tree, src));
    const c4 = await treeAt(repo3, second.snapshot!.tree, `${src}/a2/b1/c4`);
    expect(c4.nodes.map((n) => n.name)).toEqual(['empty', 'f0.txt', 'f1.txt', 'f2.txt', 'link']);
    await repo3.close();
  });
});
