import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile, unlink, utimes, open } from 'node:fs/promises';
import { runBackup, restoreSnapshot, listTree, lookupPath } from '../../src/index.js';
import { FakeRepository } from './helpers/fake-repo.js';
import { describeTree, makeSampleTree, pseudoRandom, removeDir, tempDir, NON_UTF8_NAME } from './helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

describe('runBackup with a stand-in repository', () => {
  it('backs up and restores a sample tree byte for byte', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src], parent: null });
    expect(res.status).toBe('success');
    expect(res.errors).toEqual([]);
    expect(res.snapshotId).toBeDefined();
    expect(repo.locks).toBe(0);

    const paths: string[] = [];
    for await (const { path } of listTree(repo, res.snapshot!)) paths.push(path);
    expect(paths).toContain(`${src}/hello.txt`);
    expect(paths).toContain(join(src, 'dir/sub/deeper/dup2.bin'));

    const target = join(work, 'restore');
    const rr = await restoreSnapshot({ repository: repo, snapshotId: res.snapshotId!, target });
    expect(rr.errors).toEqual([]);
    const before = await describeTree(src);
    const after = await describeTree(join(target, src));
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [p, info] of before) expect(after.get(p), p).toEqual(info);
    expect(after.get('/' + NON_UTF8_NAME.toString('latin1'))?.type).toBe('file');
  });

  it('a second backup without changes reads nothing and adds no data blobs', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const repo = new FakeRepository();
    const first = await runBackup({ repository: repo, sources: [src] });
    const blobs = repo.dataBlobCount();
    const second = await runBackup({ repository: repo, sources: [src] });
    expect(second.parentId).toBe(first.snapshotId);
    expect(second.stats.bytesRead).toBe(0);
    expect(second.stats.filesUnmodified).toBeGreaterThan(5);
    expect(second.stats.filesNew + second.stats.filesChanged).toBe(0);
    expect(repo.dataBlobCount()).toBe(blobs);
    // (The root tree is not compared: it carries the metadata of /tmp, which other tests change meanwhile.)
    expect((await lookupPath(repo, second.snapshot!, src))!.subtree).toBe((await lookupPath(repo, first.snapshot!, src))!.subtree);
  });
});
