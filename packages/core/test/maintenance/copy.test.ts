/** copy (issue #10): snapshots into another repository, re-keyed, deduplicated, idempotent. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { copySnapshots, lookupPath, repairPacks, repairSnapshots, runBackup } from '../../src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { describeTree, pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';
import { expectRestores, generations } from './helpers.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-copy-');
});
afterEach(async () => {
  await removeDir(work);
});

const opts = { kdf: { N: 1024, r: 8, p: 1 }, logger: { info() {}, warn() {} } };

describe('copy', () => {
  it('copies three snapshots into a repository with other keys; they restore exactly; a second copy copies nothing', async () => {
    const { src, snaps, open } = await generations(work);
    const source = await open();
    const destStorage = createMemoryStorage('dest');
    let packsStreamed = 0;
    const saveFrom = destStorage.saveFrom!.bind(destStorage);
    destStorage.saveFrom = (handle, src) => {
      if (handle.type === 'data') packsStreamed++;
      return saveFrom(handle, src);
    };
    const dest = await Repository.init(destStorage, 'other-password', opts);
    const first = await copySnapshots(source, dest);
    expect(first.sameIds).toBe(false);
    expect(first.copied).toHaveLength(3);
    expect(first.blobsStored).toBeGreaterThan(0);
    for (const s of snaps) {
      const copy = first.copied.find((c) => c.source === s.id)!;
      const snap = await dest.loadSnapshot(copy.id);
      expect(snap.original).toBe(s.id);
      // Only the last generation is still on disk: compare the last one's restore with it.
    }
    const last = first.copied.find((c) => c.source === snaps[2]!.id)!;
    await expectRestores(work, dest, last.id, snaps[2]!.tree, src, 'last');
    const check = await dest.check({ readData: true });
    expect(check.errors).toEqual([]);

    // The new packs were built in temporary files and streamed to the storage (as prune builds them).
    expect(packsStreamed).toBeGreaterThan(0);

    const second = await copySnapshots(source, dest);
    expect(second.copied).toEqual([]);
    expect(second.skipped).toHaveLength(3);
    expect(second.blobsStored).toBe(0);
    await source.close();
    await dest.close();
  });

  it('with --copy-chunker-params the ids are shared: blobs the destination has are not even read', async () => {
    const { src, snaps, open } = await generations(work);
    const source = await open();
    const dest = await Repository.init(createMemoryStorage('dest2'), 'other-password', { ...opts, sameChunkerAs: source });
    expect(dest.config.chunker).toEqual(source.config.chunker);
    const first = await copySnapshots(source, dest, { snapshots: (await source.listSnapshots()).slice(0, 2) });
    expect(first.sameIds).toBe(true);
    expect(first.copied).toHaveLength(2);
    // The third generation shares keep/stable.bin with the others: only its new files are read.
    await writeFile(join(src, 'extra.bin'), pseudoRandom(10_000, 99));
    const fourth = await runBackup({ repository: source, sources: [src] });
    const rest = await copySnapshots(source, dest);
    expect(rest.copied.map((c) => c.source).sort()).toEqual([snaps[2]!.id, fourth.snapshotId!].sort());
    const fresh = await copySnapshots(await Repository.open(source.storage, 'test-password', opts), await Repository.init(createMemoryStorage('dest3'), 'x', opts));
    expect(rest.blobsRead).toBeLessThan(fresh.blobsRead);
    const copy = rest.copied.find((c) => c.source === fourth.snapshotId)!;
    await expectRestores(work, dest, copy.id, await describeTree(src), src, 'fourth');
    expect((await dest.check({ readData: true })).errors).toEqual([]);
    await source.close();
    await dest.close();
    // A closed repository's keys are zeroed: it cannot lend its id key to a new one, nor list its keys.
    await expect(Repository.init(createMemoryStorage('dest4'), 'x', { ...opts, sameChunkerAs: source })).rejects.toThrow(/chunker parameters .* is closed/);
    await expect(source.listKeys()).rejects.toThrow(/closed/);
  });

  it('damage in the source fails the snapshots it touches, and the others are copied', async () => {
    const { src: srcDir, storage, snaps, open } = await generations(work);
    const source = await open();
    await source.loadIndex();
    // The newest generation's own file (stored by the third backup only): its pack goes missing.
    const { snapshot } = await source.findSnapshot(snaps[2]!.id);
    const node = await lookupPath(source, snapshot, join(srcDir, 'gen', 'f0.bin'));
    const lost = source.lookupBlob('data', node!.content![0]!)!;
    expect(lost).toBeDefined();
    await storage.remove({ type: 'data', name: lost.pack });
    await source.close();
    const src = await open();
    const dest = await Repository.init(createMemoryStorage(), 'other', opts);
    const failed: string[] = [];
    const r = await copySnapshots(src, dest, { onSnapshotFailed: (id) => failed.push(id) });
    expect(failed).toEqual([snaps[2]!.id]);
    expect(r.failed.map((f) => f.source)).toEqual([snaps[2]!.id]);
    expect(r.failed[0]!.message).toMatch(/missing|cannot be read|not in the repository index/);
    expect(r.copied.map((c) => c.source)).toEqual([snaps[0]!.id, snaps[1]!.id]);
    await expectRestores(work, dest, r.copied[1]!.id, snaps[1]!.tree, srcDir, 'copied-despite-damage');
    await src.close();
    await dest.close();
  });

  it.each([
    ['with their own ids', false, true],
    ['with shared ids (--copy-chunker-params)', true, true],
    // Without --forget the damaged copies stay beside the repaired ones: they are no copies either.
    ['with their own ids, the damaged copies kept', false, false],
    ['with shared ids, the damaged copies kept', true, false],
  ] as const)('a destination repaired after damage is refilled by the next copy, %s', async (_how, sharedIds, forget) => {
    const { src, snaps, open } = await generations(work);
    const source = await open();
    const destStorage = createMemoryStorage();
    const dest = await Repository.init(destStorage, 'other-password', { ...opts, ...(sharedIds ? { sameChunkerAs: source } : {}) });
    const first = await copySnapshots(source, dest);
    expect(first.copied).toHaveLength(3);

    // A pack of the destination is damaged: the one with keep/stable.bin's first blob, which every snapshot has.
    const newest = first.copied.find((c) => c.source === snaps[2]!.id)!.id;
    const node = await lookupPath(dest, await dest.loadSnapshot(newest), join(src, 'keep', 'stable.bin'));
    const { pack, offset } = dest.lookupBlob('data', node!.content![0]!)!;
    const bytes = Buffer.from(await destStorage.load({ type: 'data', name: pack }));
    bytes[offset + 40]! ^= 0x40;
    await destStorage.remove({ type: 'data', name: pack });
    await destStorage.save({ type: 'data', name: pack }, bytes);
    await dest.close();

    // The destination is repaired as docs/maintenance.md says: repair packs, then repair snapshots --forget.
    const damaged = await Repository.open(destStorage, 'other-password', opts);
    expect((await damaged.check({ readData: true })).errors.some((e) => e.file.endsWith(pack))).toBe(true);
    const salvage = await repairPacks(damaged, [pack]);
    expect(salvage.packs[0]!.lost.length).toBeGreaterThan(0);
    const repaired = await repairSnapshots(damaged, { forget });
    expect(repaired.snapshots.filter((r) => r.newId && Boolean(r.forgotten) === forget)).toHaveLength(3);
    await damaged.close();

    // The next copy does not take the repaired snapshots for copies: it copies all three again,
    // storing what the destination lost, and they restore exactly.
    const healing = await Repository.open(destStorage, 'other-password', opts);
    const refill = await copySnapshots(await open(), healing);
    expect(refill.skipped).toEqual([]);
    expect(refill.copied.map((c) => c.source).sort()).toEqual(snaps.map((s) => s.id).sort());
    expect(refill.blobsStored).toBeGreaterThan(0);
    expect((await healing.check({ readData: true })).errors).toEqual([]);
    const copy = refill.copied.find((c) => c.source === snaps[2]!.id)!;
    expect((await healing.loadSnapshot(copy.id)).repaired).toBeUndefined();
    await expectRestores(work, healing, copy.id, snaps[2]!.tree, src, `refilled-${sharedIds}-${forget}`);

    // And then they are copies again: a further copy copies nothing.
    const again = await copySnapshots(await open(), healing);
    expect(again.copied).toEqual([]);
    expect(again.skipped.map((s) => s.existing).sort()).toEqual(refill.copied.map((c) => c.id).sort());
    expect(again.blobsStored).toBe(0);
    await healing.close();
    await source.close();
  });

  it('a snapshot repaired in the source and copied keeps counting as copied', async () => {
    const { snaps, storage, open } = await generations(work);
    const source = await open();
    // A repaired snapshot in the source (what repair snapshots writes), then copied as it is.
    const { snapshot } = await source.findSnapshot(snaps[0]!.id);
    const repairedId = await source.saveSnapshot({ ...snapshot, original: snaps[0]!.id, repaired: { time: new Date().toISOString(), from: snaps[0]!.id, removed: [], removedCount: 0 } });
    await storage.remove({ type: 'snapshot', name: snaps[0]!.id });
    const dest = await Repository.init(createMemoryStorage(), 'other-password', opts);
    const first = await copySnapshots(source, dest);
    expect(first.copied.map((c) => c.source).sort()).toEqual([repairedId, snaps[1]!.id, snaps[2]!.id].sort());
    const second = await copySnapshots(source, dest);
    expect(second.copied).toEqual([]);
    expect(second.skipped).toHaveLength(3);
    await source.close();
    await dest.close();
  });

  it('refuses to copy a repository into itself', async () => {
    const { open } = await generations(work);
    const a = await open();
    const b = await open();
    await expect(copySnapshots(a, b)).rejects.toThrow(/same repository/);
    await a.close();
    await b.close();
  });
});
