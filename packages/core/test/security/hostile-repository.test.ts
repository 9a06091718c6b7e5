/**
 * Reproductions of issue 13's decoder defects, on repositories built with HostileRepo:
 * zstd bombs as index file, snapshot, tree blob and data blob; malformed trees that `check`
 * called clean. Each failed (crash, gigabytes, or "no errors were found") before the fix.
 */
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/repository/errors.js';
import { Repository } from '../../src/repository/repository.js';
import { HostileRepo, dirNode, fileNode, treeJson, zstdBomb } from '../../src/testing/hostile.js';
import { FAST_KDF, newRepo, quietLogger } from '../repository/helpers.js';

/** 1 GiB from 32 KiB: enough to show the old code allocating it, harmless for the new one. */
const BOMB = 2 ** 30;

async function hostile() {
  const { repo, storage } = await newRepo();
  await repo.close();
  const h = await HostileRepo.open(storage, 'secret');
  const reopen = () => Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
  return { storage, h, reopen };
}

describe('zstd bombs are refused with a clear IntegrityError, without allocating their size', () => {
  it('as an index file', async () => {
    const { h, reopen } = await hostile();
    const name = await h.writeRawIndexFile(zstdBomb(BOMB), { payload: true });
    const repo = await reopen();
    const err = await repo.loadIndex().then(() => undefined, (e: unknown) => e);
    // The index loader may report a damaged index file and go on (issue 13 item 2) or fail; either way it names it.
    if (err !== undefined) {
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(new RegExp(`index/${name}: zstd frame decompresses to more than the limit of 4194304 bytes`));
    }
    const report = await repo.check();
    expect(report.errors).toContainEqual(expect.objectContaining({ file: `index/${name}`, message: expect.stringContaining('zstd frame decompresses to more than the limit of 4194304 bytes') }));
    await repo.close();
  });

  it('as a snapshot', async () => {
    const { h, reopen } = await hostile();
    const id = await h.writeRawSnapshot(zstdBomb(BOMB), { payload: true });
    const repo = await reopen();
    await expect(repo.loadSnapshot(id)).rejects.toThrow(IntegrityError);
    await expect(repo.loadSnapshot(id)).rejects.toThrow(`snapshots/${id}: zstd frame decompresses to more than the limit of 16777216 bytes`);
    const report = await repo.check();
    expect(report.errors).toContainEqual(expect.objectContaining({ file: `snapshots/${id}`, message: expect.stringContaining('zstd frame decompresses to more than the limit of 16777216 bytes') }));
    await repo.close();
  });

  it('as a tree blob', async () => {
    const { h, reopen } = await hostile();
    const tree = await h.writeRawTreeBlob(treeJson([fileNode('a')]), { payload: zstdBomb(BOMB), rawLength: 1 << 20 });
    const snap = await h.writeRawSnapshot(h.snapshotJson(tree));
    const repo = await reopen();
    const err = await repo.loadTree(tree).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/zstd frame decompresses to more than the expected 1048576 bytes/);
    const report = await repo.check();
    expect(report.errors.map((e) => e.message)).toContainEqual(expect.stringMatching(new RegExp(`tree ${tree} \\(/, snapshot ${snap.slice(0, 8)}\\) cannot be loaded: .*decompresses to more than the expected`)));
    await repo.close();
  });

  it('as a data blob (whose index entry claims 1 MiB)', async () => {
    const { h, reopen } = await hostile();
    const plain = Buffer.alloc(1 << 20, 7);
    const id = await h.writeRawDataBlob(plain, { payload: zstdBomb(BOMB) });
    const repo = await reopen();
    const got: Array<string | undefined> = [];
    await repo.loadBlobs('data', [id], (_id, _data, e) => void got.push(e?.message));
    expect(got[0]).toMatch(/more than the expected 1048576 bytes/);
    const again = await reopen();
    const err = await again.loadBlob('data', id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/zstd frame decompresses to more than the expected 1048576 bytes/);
    await again.close();
    const report = await repo.check({ readData: true });
    expect(report.errors.some((e) => /decompresses to more than the expected 1048576/.test(e.message))).toBe(true);
    await repo.close();
  });

  it('a frame that declares its huge size is refused from its header', async () => {
    const { h, reopen } = await hostile();
    const id = await h.writeRawSnapshot(zstdBomb(8 * BOMB, { declareSize: true }), { payload: true });
    const repo = await reopen();
    await expect(repo.loadSnapshot(id)).rejects.toThrow(/declares 8589934592 bytes of content, more than the limit of 16777216/);
    await repo.close();
  });
});

describe('malformed trees: check reports each invalid entry with its snapshot and path', () => {
  it('names every bad entry and never says the repository is clean', async () => {
    const { h, reopen } = await hostile();
    const inner = await h.writeTree([fileNode('fine'), fileNode('neg', { uid: -7 }), { ...fileNode('ln'), type: 'symlink', content: undefined, linkTarget: 'a\0b' }]);
    const root = await h.writeTree([
      dirNode('home', inner),
      null,
      fileNode('mtime', { mtimeNs: 12 }),
      fileNode('big', { uid: 2 ** 32 }),
      fileNode('../escape'),
      fileNode('dup'),
      fileNode('dup'),
    ]);
    const snap = await h.writeRawSnapshot(h.snapshotJson(root));
    const repo = await reopen();
    const report = await repo.check();
    const mine = report.errors.filter((e) => e.file === `snapshots/${snap}`).map((e) => e.message);
    expect(mine).toEqual([
      `/#1: invalid entry 1 of tree ${root}: entry is null, not an object`,
      `/mtime: invalid entry 2 of tree ${root}: mtimeNs is not a time in nanoseconds (a decimal string, its seconds within 64 bits)`,
      `/big: invalid entry 3 of tree ${root}: uid 4294967296 is not an integer in 0…4294967294`,
      `/../escape: invalid entry 4 of tree ${root}: name contains '/'`,
      `/dup: invalid entry 5 of tree ${root}: duplicate name in this tree`,
      `/dup: invalid entry 6 of tree ${root}: duplicate name in this tree`,
      `/home/neg: invalid entry 1 of tree ${inner}: uid -7 is not an integer in 0…4294967294`,
      `/home/ln: invalid entry 2 of tree ${inner}: link target contains a NUL byte`,
    ]);
    expect(report.counts.errors).toBe(report.errors.length);
    await repo.close();
  });

  it('lists at most 1000 invalid entries of one tree, then one line with how many more', async () => {
    const { h, reopen } = await hostile();
    const root = await h.writeTree(Array.from({ length: 1500 }, (_, i) => ({ name: `x${i}`, type: 'file' })));
    const snap = await h.writeRawSnapshot(h.snapshotJson(root));
    const repo = await reopen();
    const report = await repo.check();
    const mine = report.errors.filter((e) => e.file === `snapshots/${snap}`);
    expect(mine).toHaveLength(1001);
    expect(mine[1000]!.message).toBe(`/: and 500 more invalid entries of tree ${root}`);
    await repo.close();
  });

  it('an invalid snapshot file is reported by check (no longer "clean")', async () => {
    const { h, reopen } = await hostile();
    const root = await h.writeTree([fileNode('a')]);
    const snap = await h.writeRawSnapshot(h.snapshotJson(root, { paths: ['relative'], time: 'yesterday' }));
    const repo = await reopen();
    const report = await repo.check();
    expect(report.errors).toContainEqual(expect.objectContaining({ file: `snapshots/${snap}`, message: 'not a valid snapshot: time is not a date' }));
    await repo.close();
  });
});
