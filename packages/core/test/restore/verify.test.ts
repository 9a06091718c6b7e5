import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { restoreSnapshot, runBackup, type RestoreOptions } from '../../src/index.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { FakeRepository } from '../backup/helpers/fake-repo.js';
import { makeSampleTree, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

describe('restore --verify', () => {
  it('reads every restored file back and finds it equal (by blob id, without reading the repository again)', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    let loads = 0;
    const counting: RestoreOptions['repository'] = Object.create(repo, {
      loadBlob: { value: (...a: Parameters<typeof repo.loadBlob>) => (a[0] === 'data' && loads++, repo.loadBlob(...a)) },
    });
    const rr = await restoreSnapshot({ repository: counting, snapshot: res.snapshot!, target: join(work, 't'), verify: true });
    expect(rr.errors).toEqual([]);
    expect(rr.verified).toBe(rr.filesRestored);
    expect(rr.verified).toBeGreaterThan(8);
    expect(loads).toBe(0);
    await repo.close();
  });

  it('a file that does not match the snapshot after writing is an error naming the bytes and the blob', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    // A repository stand-in that hands out one altered blob (a disk or a bug between verified load and write).
    const tampering: RestoreOptions['repository'] = Object.create(repo, {
      loadBlobs: {
        value: (type: 'data' | 'tree', ids: readonly string[], onBlob: (id: string, d: Buffer | undefined, e?: Error) => void | Promise<void>, o?: object) =>
          repo.loadBlobs(type, ids, (id, d, e) => {
            if (d && type === 'data' && d.toString().startsWith('hello, kiwi')) d[0] = 0x48;
            return onBlob(id, d, e);
          }, o),
      },
    });
    const rr = await restoreSnapshot({ repository: tampering, snapshot: res.snapshot!, target: join(work, 't'), verify: true });
    expect(rr.errors.map((e) => e.path)).toEqual([join(src, 'hello.txt')]);
    expect(rr.errors[0]!.message).toMatch(/^verify: the content differs from the snapshot at bytes 0–12 \(blob [0-9a-f]{64}\)$/);
    expect(rr.verified).toBe(rr.filesRestored - 1);
    await repo.close();
  });

  it('without an index lookup the blobs are compared byte for byte', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target: join(work, 't'), verify: true });
    expect(rr.errors).toEqual([]);
    expect(rr.verified).toBe(rr.filesRestored);
  });
});
