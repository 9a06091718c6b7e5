import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { restoreSnapshot, runBackup, safeName, type Node, type Snapshot } from '../../src/index.js';
import { FakeRepository } from '../backup/helpers/fake-repo.js';
import { makeSampleTree, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

function fileNode(name: string, content: string[], size: number, extra: Partial<Node> = {}): Node {
  return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: '1600000000000000000', ctimeNs: '0', inode: '1', dev: '1', size, content, ...extra };
}

async function snapshotOf(repo: FakeRepository, nodes: Node[]): Promise<Snapshot> {
  const tree = await repo.saveTree({ nodes });
  return { time: new Date().toISOString(), hostname: 'h', username: 'u', paths: ['/x'], tags: [], tree, programVersion: 'test' };
}

describe('restore safety', () => {
  it('validates names', () => {
    for (const bad of ['', '.', '..', 'a/b', '/etc', 'nul\0x']) expect(() => safeName({ name: bad })).toThrow();
    expect(() => safeName({ name: 'x', nameRaw: Buffer.from('../x').toString('base64') })).toThrow(/\//);
    expect(safeName({ name: 'ok name' }).toString()).toBe('ok name');
  });

  it('refuses tampered trees with "..", "/" and duplicate names, restores the rest, writes nothing outside', async () => {
    const repo = new FakeRepository();
    const { id } = await repo.saveBlob('data', Buffer.from('evil'));
    const { id: good } = await repo.saveBlob('data', Buffer.from('good'));
    const sub = await repo.saveTree({ nodes: [fileNode('..', [id], 4), fileNode('../../escape', [id], 4), fileNode('fine.txt', [good], 4)] });
    const snap = await snapshotOf(repo, [
      fileNode('..', [id], 4),
      fileNode('a/../../b', [id], 4),
      fileNode('dup', [id], 4),
      fileNode('dup', [good], 4),
      fileNode('x', [], 0, { nameRaw: Buffer.from('../raw').toString('base64') }),
      { ...fileNode('d', [], 0), type: 'dir', content: undefined, subtree: sub },
    ]);
    const target = join(work, 'target');
    const rr = await restoreSnapshot({ repository: repo, snapshot: snap, target });
    const paths = rr.errors.map((e) => e.path).sort();
    expect(paths).toEqual(['/..', '/a/../../b', '/d/..', '/d/../../escape', '/dup', '/dup', '/x'].sort());
    expect(rr.filesRestored).toBe(1);
    expect(await readFile(join(target, 'd/fine.txt'), 'utf8')).toBe('good');
    // Nothing written next to the target.
    expect((await readdir(work)).sort()).toEqual(['target']);
    expect((await readdir(target)).sort()).toEqual(['d']);
  });

  it('never writes through a symlink planted in the target', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src] });

    const outside = join(work, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'precious.txt'), 'do not touch');
    const target = join(work, 'target');
    const restoredSrc = join(target, src);
    await mkdir(restoredSrc, { recursive: true });
    // A directory of the snapshot planted as a symlink to outside, and a file planted as a symlink to an outside file.
    await symlink(outside, join(restoredSrc, 'dir'));
    await symlink(join(outside, 'precious.txt'), join(restoredSrc, 'hello.txt'));

    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target });
    expect(rr.errors).toEqual([]);
    expect((await readdir(outside)).sort()).toEqual(['precious.txt']);
    expect(await readFile(join(outside, 'precious.txt'), 'utf8')).toBe('do not touch');
    expect((await lstat(join(restoredSrc, 'dir'))).isDirectory()).toBe(true);
    expect((await lstat(join(restoredSrc, 'hello.txt'))).isFile()).toBe(true);
    expect(await readFile(join(restoredSrc, 'hello.txt'), 'utf8')).toBe('hello, kiwi\n');
  });

  it('a corrupt blob fails only its file, with a clear error; no partial file appears', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    const tree = await repo.loadTree(res.snapshot!.tree);
    void tree;
    // Corrupt the second chunk of big.bin.
    const { lookupPath } = await import('../../src/index.js');
    const big = (await lookupPath(repo, res.snapshot!, join(src, 'dir/big.bin')))!;
    repo.corrupt.add(big.content![1]!);
    const target = join(work, 'target');
    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target });
    expect(rr.errors).toHaveLength(1);
    expect(rr.errors[0]!.path).toBe(join(src, 'dir/big.bin'));
    expect(rr.errors[0]!.message).toContain(big.content![1]!);
    expect(rr.errors[0]!.message).toContain('integrity');
    expect(await readdir(join(target, src, 'dir'))).toEqual(['sub']);
    expect(rr.filesRestored).toBeGreaterThan(8);
  });

  it('include patterns: path prefixes and globs', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    const t1 = join(work, 't1');
    const r1 = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target: t1, include: [join(src, 'dir/sub')] });
    expect(r1.errors).toEqual([]);
    expect((await readdir(join(t1, src))).sort()).toEqual(['dir']);
    expect((await readdir(join(t1, src, 'dir'))).sort()).toEqual(['sub']);
    expect((await readdir(join(t1, src, 'dir/sub/deeper'))).sort()).toEqual(['dup1.bin', 'dup2.bin']);
    const t2 = join(work, 't2');
    const r2 = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target: t2, include: ['*.txt'] });
    expect(r2.errors).toEqual([]);
    // The non-UTF-8 'caf\xe9.txt' matches too.
    expect((await readdir(join(t2, src))).filter((n) => !n.startsWith('caf')).sort()).toEqual(['empty.txt', 'hello.txt', 'private.txt']);
    expect((await readdir(join(t2, src))).length).toBe(4);
  });
});
