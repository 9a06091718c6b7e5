/**
 * copy with a hostile or damaged source, and a destination left behind by an interrupted copy: the
 * destination never gets a snapshot that does not restore (or that it cannot read), and damage in
 * one source snapshot fails that snapshot, not the copy.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copySnapshots } from '../../src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { FLAG_TREE } from '../../src/repository/index-table.js';
import { MAX_SNAPSHOT_SIZE, MAX_TREE_BLOB_SIZE, MAX_TREE_DEPTH } from '../../src/repository/limits.js';
import { readPackHeader } from '../../src/repository/pack-reader.js';
import type { Node, Snapshot } from '../../src/repository/types.js';
import type { Handle, SaveSource } from '../../src/storage/types.js';
import { HostileRepo, dirNode, fileNode, treeJson } from '../../src/testing/hostile.js';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';
import { expectRestores, generations } from './helpers.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-copy-safety-');
});
afterEach(async () => {
  await removeDir(work);
});

const opts = { kdf: { N: 1024, r: 8, p: 1 }, logger: { info() {}, warn() {} } };

/** A tree `height` directories high (0: an empty directory), each level one directory `d`. */
async function chain(repo: Repository, height: number): Promise<string> {
  let id = await repo.saveTree({ nodes: [] });
  for (let i = 0; i < height; i++) id = await repo.saveTree({ nodes: [dirNode('d', id) as unknown as Node] });
  return id;
}

async function snapshotOf(repo: Repository, tree: string, time: string): Promise<{ id: string; snapshot: Snapshot }> {
  await repo.flush();
  const snapshot: Snapshot = { time, hostname: 'h', username: 'u', paths: ['/src'], tags: [], tree, programVersion: 'test' };
  return { id: await repo.saveSnapshot(snapshot), snapshot };
}

describe('copy: the destination never gets a snapshot that does not restore', () => {
  it('trees an interrupted copy left in the destination without their data are not taken as complete (shared ids)', async () => {
    const { src, snaps, open } = await generations(work);
    const source = await open();
    const destStorage = createMemoryStorage('dest-interrupted');
    const dest = await Repository.init(destStorage, 'other-password', { ...opts, sameChunkerAs: source });

    // The first copy is cut off after its tree pack was stored but before the pack of the data
    // those trees reference was (packs upload side by side; a killed process leaves the same).
    const save = destStorage.save.bind(destStorage);
    const saveFrom = destStorage.saveFrom!.bind(destStorage);
    let treePackStored!: () => void;
    const treePack = new Promise<void>((resolve) => (treePackStored = resolve));
    const afterSave = async (handle: Handle): Promise<void> => {
      if (handle.type !== 'data') return;
      const entries = await readPackHeader(destStorage, dest.internals().keys, handle.name, (await destStorage.stat(handle)).size);
      if (entries.every((e) => e.flags & FLAG_TREE)) return treePackStored();
      await destStorage.remove(handle);
      await treePack;
      throw new Error(`upload of ${handle.name} interrupted`);
    };
    destStorage.save = async (handle: Handle, data: Uint8Array) => {
      await save(handle, data);
      await afterSave(handle);
    };
    destStorage.saveFrom = async (handle: Handle, from: SaveSource) => {
      await saveFrom(handle, from);
      await afterSave(handle);
    };
    await expect(copySnapshots(source, dest)).rejects.toThrow(/interrupted/);
    await dest.close().catch(() => undefined);
    destStorage.save = save;
    destStorage.saveFrom = saveFrom;
    const packs: string[] = [];
    for await (const f of destStorage.list('data')) packs.push(f.name);
    expect(packs.length).toBeGreaterThan(0); // the tree pack
    for await (const _ of destStorage.list('snapshot')) expect.unreachable('no snapshot was saved');

    // The next copy finds those trees (their pack is adopted from its header) but not their data:
    // it must copy the data again, and every snapshot it saves restores.
    const resumed = await Repository.open(destStorage, 'other-password', opts);
    const r = await copySnapshots(await open(), resumed);
    expect(r.copied.map((c) => c.source).sort()).toEqual(snaps.map((s) => s.id).sort());
    expect((await resumed.check({ readData: true })).errors).toEqual([]);
    const last = r.copied.find((c) => c.source === snaps[2]!.id)!;
    await expectRestores(work, resumed, last.id, snaps[2]!.tree, src, 'resumed');
    await resumed.close();
    await source.close();
  });

  it('refuses directories nested deeper than the readers allow, also below a tree copied before', async () => {
    const { storage, open } = await generations(work);
    const source = await open();
    // `deepest` reaches exactly MAX_TREE_DEPTH below its root (what check accepts); `tooDeep` has
    // the same tree one level further down, so its last level is past the limit.
    const x = await chain(source, MAX_TREE_DEPTH);
    const deepest = await snapshotOf(source, x, '2030-01-01T00:00:00.000Z');
    const tooDeep = await snapshotOf(source, await source.saveTree({ nodes: [dirNode('y', x) as unknown as Node] }), '2030-01-02T00:00:00.000Z');

    const dest = await Repository.init(createMemoryStorage('dest-deep'), 'other-password', opts);
    const r = await copySnapshots(source, dest, { snapshots: [deepest, tooDeep] });
    expect(r.copied.map((c) => c.source)).toEqual([deepest.id]);
    expect(r.failed.map((f) => f.source)).toEqual([tooDeep.id]);
    expect(r.failed[0]!.message).toMatch(new RegExp(`deeper than ${MAX_TREE_DEPTH}`));
    expect((await dest.check()).errors).toEqual([]);
    expect((await dest.listSnapshots()).map((s) => s.snapshot.original)).toEqual([deepest.id]);

    // The same without the first one: the limit is found by the walk itself.
    const fresh = await Repository.init(createMemoryStorage('dest-deep-2'), 'other-password', opts);
    const alone = await copySnapshots(await Repository.open(storage, 'test-password', opts), fresh, { snapshots: [tooDeep] });
    expect(alone.copied).toEqual([]);
    expect(alone.failed.map((f) => f.source)).toEqual([tooDeep.id]);
    expect(await fresh.listSnapshots()).toEqual([]);
    await source.close();
    await dest.close();
    await fresh.close();
  });

  it('a snapshot that would be over the size limit once copied fails; the destination can still list its snapshots', async () => {
    const { storage, snaps, open } = await generations(work);
    const source = await open();
    const { snapshot } = await source.findSnapshot(snaps[0]!.id);
    // A source snapshot a few bytes under the limit: its copy, which also names the original, is over it.
    const big: Record<string, unknown> = { ...snapshot, time: '2030-01-01T00:00:00.000Z', plugins: { pad: '' } };
    const pad = MAX_SNAPSHOT_SIZE - 20 - Buffer.byteLength(JSON.stringify(big));
    big.plugins = { pad: 'a'.repeat(pad) };
    expect(Buffer.byteLength(JSON.stringify(big))).toBe(MAX_SNAPSHOT_SIZE - 20);
    const bigId = await (await HostileRepo.open(storage, 'test-password')).writeRawSnapshot(big);

    const dest = await Repository.init(createMemoryStorage('dest-big'), 'other-password', opts);
    const r = await copySnapshots(await open(), dest);
    expect(r.failed.map((f) => f.source)).toEqual([bigId]);
    expect(r.failed[0]!.message).toMatch(/limit/);
    expect(r.copied).toHaveLength(3);
    expect(await dest.listSnapshots()).toHaveLength(3);
    const again = await copySnapshots(await open(), dest);
    expect(again.copied).toEqual([]);
    expect(again.skipped).toHaveLength(3);
    await source.close();
    await dest.close();
  });

  it('a source tree that would be over the tree size limit once re-encoded fails its snapshot, not the copy', async () => {
    const { storage, snaps, open } = await generations(work);
    const h = await HostileRepo.open(storage, 'test-password');
    // A file entry with a field Kiwi does not know (kept by a copy), holding bytes that are not
    // UTF-8: each becomes U+FFFD (3 bytes) when the tree is encoded again.
    const marker = 'X'.repeat(16);
    const json = treeJson([fileNode('a', { zz: marker })]).toString('latin1');
    const invalid = Math.ceil(MAX_TREE_BLOB_SIZE / 3) + 1024;
    const bytes = Buffer.concat([Buffer.from(json.slice(0, json.indexOf(marker)), 'latin1'), Buffer.alloc(invalid, 0x80), Buffer.from(json.slice(json.indexOf(marker) + marker.length), 'latin1')]);
    expect(bytes.byteLength).toBeLessThan(MAX_TREE_BLOB_SIZE);
    const tree = await h.writeRawTreeBlob(bytes);
    const bad = await h.writeRawSnapshot(h.snapshotJson(tree, { time: '2030-01-01T00:00:00.000Z' }));

    const dest = await Repository.init(createMemoryStorage('dest-reencoded'), 'other-password', opts);
    const r = await copySnapshots(await open(), dest);
    expect(r.failed.map((f) => f.source)).toEqual([bad]);
    expect(r.copied.map((c) => c.source).sort()).toEqual(snaps.map((s) => s.id).sort());
    await dest.close();
  });

  it("a source snapshot's malformed copy markers (original, repaired) fail that snapshot; the others are copied, once", async () => {
    const { storage, snaps, open } = await generations(work);
    const source = await open();
    const { snapshot } = await source.findSnapshot(snaps[0]!.id);
    await source.close();
    const h = await HostileRepo.open(storage, 'test-password');
    // (JSON gives an object whose toString is not a function: it cannot be made a string.)
    const badRepair = await h.writeRawSnapshot({ ...snapshot, time: '2030-01-01T00:00:00.000Z', repaired: { from: { toString: 1 }, time: 'x', removed: [], removedCount: 0 } });
    const badOriginal = await h.writeRawSnapshot({ ...snapshot, time: '2030-01-02T00:00:00.000Z', original: ['not', 'an', 'id'] });

    const destStorage = createMemoryStorage('dest-markers');
    const dest = await Repository.init(destStorage, 'other-password', opts);
    // The destination has such a snapshot too (written there by someone with its key): it is no copy of anything.
    const d = await HostileRepo.open(destStorage, 'other-password');
    const destTree = await d.writeTree([]);
    await d.writeRawSnapshot(d.snapshotJson(destTree, { repaired: { from: { toString: 1 }, time: 'x', removed: [], removedCount: 0 } }));

    const r = await copySnapshots(await open(), dest);
    expect(r.failed.map((f) => f.source).sort()).toEqual([badRepair, badOriginal].sort());
    expect(r.failed.every((f) => /original|repaired/.test(f.message))).toBe(true);
    expect(r.copied.map((c) => c.source).sort()).toEqual(snaps.map((s) => s.id).sort());
    const again = await copySnapshots(await open(), dest);
    expect(again.copied).toEqual([]);
    expect(again.skipped).toHaveLength(3);
    await dest.close();
  });
});
