import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { link, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { restoreSnapshot, runBackup, listTree } from '../../src/index.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { FakeRepository } from '../backup/helpers/fake-repo.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

/** `a/one` with two more names (`a/two`, `b/three`), a single-name file, and a hard-linked empty file. */
async function makeLinkedTree(src: string): Promise<{ big: Buffer }> {
  await mkdir(join(src, 'a'), { recursive: true });
  await mkdir(join(src, 'b'), { recursive: true });
  const big = pseudoRandom(3 * 1024 * 1024, 9); // several blobs: goes through the pack reader's multi-blob path
  await writeFile(join(src, 'a/one'), big);
  await link(join(src, 'a/one'), join(src, 'a/two'));
  await link(join(src, 'a/one'), join(src, 'b/three'));
  await writeFile(join(src, 'b/single'), 'just one name');
  await writeFile(join(src, 'b/empty'), '');
  await link(join(src, 'b/empty'), join(src, 'a/empty-too'));
  return { big };
}

describe('hard links', () => {
  it('are recorded (links) and restored as links of one file', async () => {
    const src = join(work, 'src');
    const { big } = await makeLinkedTree(src);
    const { repo } = await memoryRepository({ packSize: 1024 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    const nodes = new Map<string, { links?: number }>();
    for await (const { path, node } of listTree(repo, res.snapshot!)) nodes.set(path, node);
    expect(nodes.get(join(src, 'a/two'))?.links).toBe(3);
    expect(nodes.get(join(src, 'b/single'))?.links).toBeUndefined();

    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(6);
    const out = (p: string) => join(target, src, p);
    const [one, two, three, single] = await Promise.all(['a/one', 'a/two', 'b/three', 'b/single'].map((p) => stat(out(p))));
    expect(two!.ino).toBe(one!.ino);
    expect(three!.ino).toBe(one!.ino);
    expect(one!.nlink).toBe(3);
    expect(single!.nlink).toBe(1);
    expect((await readFile(out('b/three'))).equals(big)).toBe(true);
    const [empty, emptyToo] = await Promise.all(['b/empty', 'a/empty-too'].map((p) => stat(out(p))));
    expect(emptyToo!.ino).toBe(empty!.ino);
    await repo.close();
  });

  it('a name restored without the others is a plain file with the content', async () => {
    const src = join(work, 'src');
    const { big } = await makeLinkedTree(src);
    const { repo } = await memoryRepository({ packSize: 1024 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target, include: [join(src, 'b')] });
    expect(rr.errors).toEqual([]);
    const three = await stat(join(target, src, 'b/three'));
    expect(three.nlink).toBe(1);
    expect((await readFile(join(target, src, 'b/three'))).equals(big)).toBe(true);
    await repo.close();
  });

  it('names that share an inode but not the content (changed during the backup) are restored apart', async () => {
    const repo = new FakeRepository();
    const a = await repo.saveBlob('data', Buffer.from('first version'));
    const b = await repo.saveBlob('data', Buffer.from('other version'));
    const common = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtimeNs: '1600000000000000000', ctimeNs: '0', inode: '77', dev: '5', links: 2 };
    const tree = await repo.saveTree({
      nodes: [
        { ...common, name: 'x', size: 13, content: [a.id] },
        { ...common, name: 'y', size: 13, content: [b.id] },
      ],
    });
    const snapshot = { time: new Date().toISOString(), hostname: 'h', username: 'u', paths: ['/x'], tags: [], tree, programVersion: 'test' };
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo, snapshot, target });
    expect(rr.errors).toEqual([]);
    expect(await readFile(join(target, 'x'), 'utf8')).toBe('first version');
    expect(await readFile(join(target, 'y'), 'utf8')).toBe('other version');
    expect((await stat(join(target, 'x'))).nlink).toBe(1);
  });
});

describe('hard links between directories restored one after another', () => {
  // The first name's directory is often done (its descriptor closed) by the time a later name is
  // linked to it; the way there is then opened again from an open directory above. That directory
  // must stay open until the link is made: closed under it, its /proc/self/fd path named nothing
  // (ENOENT) or another directory that got the descriptor's number.
  it('every name of every file is restored, linked, over repeated restores', { timeout: 120_000 }, async () => {
    const src = join(work, 'src');
    const pairs = 24;
    for (const d of ['a', 'b', 'c']) await mkdir(join(src, d, 'deep'), { recursive: true });
    for (let i = 0; i < pairs; i++) {
      await writeFile(join(src, 'a', `h${i}`), `content ${i}\n`);
      await link(join(src, 'a', `h${i}`), join(src, 'c', `h${i}`));
      await writeFile(join(src, 'b', 'deep', `g${i}`), `deep ${i}\n`);
      await link(join(src, 'b', 'deep', `g${i}`), join(src, 'c', 'deep', `g${i}`));
    }
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    for (let round = 0; round < 25; round++) {
      const target = join(work, `out${round}`);
      const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target });
      expect(rr.errors, `round ${round}`).toEqual([]);
      for (let i = 0; i < pairs; i++) {
        const [first, second] = await Promise.all([stat(join(target, src, 'a', `h${i}`)), stat(join(target, src, 'c', `h${i}`))]);
        expect(second.ino).toBe(first.ino);
        const [g1, g2] = await Promise.all([stat(join(target, src, 'b', 'deep', `g${i}`)), stat(join(target, src, 'c', 'deep', `g${i}`))]);
        expect(g2.ino).toBe(g1.ino);
      }
      expect(await readFile(join(target, src, 'c', 'deep', 'g3'), 'utf8')).toBe('deep 3\n');
      await removeDir(target);
    }
  });
});
