/**
 * Issue #13, repair: `repair index`, `repair packs`, `repair snapshots`. After each repair,
 * `check --read-data` is clean and every intact snapshot restores exactly.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { runBackup, restoreSnapshot, repairIndex, repairPacks, repairSnapshots, type Storage, type Handle } from '../../src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { describeTree, pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-repair-');
});
afterEach(async () => {
  await removeDir(work);
});

const KDF = { N: 1024, r: 8, p: 1 };
const quiet = { info() {}, warn() {} };

async function makeSource(name: string, seed: number): Promise<string> {
  const src = join(work, name);
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, `big-${seed}.bin`), pseudoRandom(90_000, seed));
  await writeFile(join(src, 'sub/mid.bin'), pseudoRandom(40_000, seed + 1));
  await writeFile(join(src, 'sub/small.txt'), `small file ${seed}\n`);
  return src;
}

async function rewrite(storage: Storage, handle: Handle, change: (bytes: Buffer) => Buffer): Promise<void> {
  const bytes = Buffer.from(await storage.load(handle));
  await storage.remove(handle);
  await storage.save(handle, change(bytes));
}

async function list(storage: Storage, type: 'data' | 'index'): Promise<string[]> {
  const out: string[] = [];
  for await (const f of storage.list(type)) out.push(f.name);
  return out.sort();
}

async function expectRestores(repo: Repository, snapshotId: string, src: string, label: string, missing: string[] = []): Promise<void> {
  const target = join(work, `restore-${label}`);
  const r = await restoreSnapshot({ repository: repo, snapshotId, target });
  expect(r.errors, label).toEqual([]);
  const before = await describeTree(src);
  const after = await describeTree(join(target, src));
  for (const m of missing) before.delete(m);
  expect([...after.keys()].sort(), label).toEqual([...before.keys()].sort());
  for (const [p, info] of before) if (!p.endsWith('/') && info) expect(after.get(p), `${label}: ${p}`).toEqual(info);
}

async function expectCleanCheck(repo: Repository, label: string): Promise<void> {
  const report = await repo.check({ readData: true });
  expect(report.errors, label).toEqual([]);
  expect(report.warnings, label).toEqual([]);
}

/** Two snapshots of two separate sources, so that damage to one leaves the other intact. */
async function twoSnapshots() {
  const a = await makeSource('a', 10);
  const b = await makeSource('b', 20);
  const { repo, storage, reopen } = await memoryRepository({ packSize: 48 * 1024 });
  const sa = await runBackup({ repository: repo, sources: [a] });
  const sb = await runBackup({ repository: repo, sources: [b] });
  await repo.close();
  const open = () => Repository.open(storage, 'test-password', { kdf: KDF, logger: quiet });
  return { a, b, storage, reopen, open, snapA: sa.snapshotId!, snapB: sb.snapshotId! };
}

/** The pack holding the first data blob of `path` in snapshot `snap`. */
async function packOf(repo: Repository, snap: string, path: string): Promise<{ pack: string; offset: number; id: string }> {
  const { lookupPath } = await import('../../src/index.js');
  const s = await repo.loadSnapshot(snap);
  await repo.loadIndex();
  const node = await lookupPath(repo, s, path);
  const id = node!.content![0]!;
  const loc = repo.lookupBlob('data', id)!;
  return { pack: loc.pack, offset: loc.offset, id };
}

describe('repair index', () => {
  it('replaces damaged index files from the pack headers: check --read-data is clean and both snapshots restore', async () => {
    const { a, b, storage, open, snapA, snapB } = await twoSnapshots();
    for (const name of await list(storage, 'index')) await rewrite(storage, { type: 'index', name }, (x) => ((x[30] = x[30]! ^ 1), x));
    const repo = await open();
    const r = await repairIndex(repo);
    expect(r.damagedIndexFiles.length).toBeGreaterThan(0);
    expect(r.rewritten).toBe(true);
    expect(r.addedPacks.length).toBe((await list(storage, 'data')).length);
    await repo.close();

    const fresh = await open();
    const loaded = await fresh.loadIndex();
    expect(loaded.damagedFiles).toEqual([]);
    await expectCleanCheck(fresh, 'after repair index');
    await expectRestores(fresh, snapA, a, 'a');
    await expectRestores(fresh, snapB, b, 'b');
    // Nothing left to repair the second time.
    expect((await repairIndex(fresh)).rewritten).toBe(false);
    await fresh.close();
  });

  it('indexes packs no index file lists (an index file was deleted)', async () => {
    const { a, storage, open, snapA } = await twoSnapshots();
    const [first] = await list(storage, 'index');
    await storage.remove({ type: 'index', name: first! });
    const repo = await open();
    const r = await repairIndex(repo, { readAllPacks: true });
    expect(r.addedPacks.length).toBeGreaterThan(0);
    await repo.close();
    const fresh = await open();
    await expectCleanCheck(fresh, 'after repair index');
    await expectRestores(fresh, snapA, a, 'a');
    await fresh.close();
  });
});

describe('a pack is lost: repair index, then repair snapshots', () => {
  it('the intact snapshot restores exactly; the damaged one gets a repaired copy without the lost files', async () => {
    const { a, b, storage, open, snapA, snapB } = await twoSnapshots();
    let repo = await open();
    const lost = await packOf(repo, snapA, join(a, 'big-10.bin'));
    await repo.close();
    await storage.remove({ type: 'data', name: lost.pack });

    repo = await open();
    const before = await repo.check();
    expect(before.errors.some((e) => e.hint?.includes('repair index'))).toBe(true);
    expect(before.affected.flatMap((x) => x.snapshots.map((s) => s.id))).toContain(snapA);
    expect(before.affected.flatMap((x) => x.snapshots.map((s) => s.id))).not.toContain(snapB);
    const ri = await repairIndex(repo);
    expect(ri.droppedPacks).toEqual([lost.pack]);
    await repo.close();

    repo = await open();
    const removed: string[] = [];
    const rs = await repairSnapshots(repo, { onRemoved: (_id, path) => removed.push(path) });
    await repo.close();
    const fixed = rs.snapshots.find((s) => s.id === snapA)!;
    expect(fixed.newId).toBeDefined();
    expect(removed.some((p) => p.endsWith('big-10.bin'))).toBe(true);
    expect(rs.snapshots.find((s) => s.id === snapB)!.newId).toBeUndefined();

    // The original is kept (no --forget): check still names it until it is forgotten.
    expect((await list(storage, 'index')).length).toBeGreaterThan(0);
    await storage.remove({ type: 'snapshot', name: snapA });
    repo = await open();
    await expectCleanCheck(repo, 'after repair snapshots and forgetting the original');
    await expectRestores(repo, snapB, b, 'b');
    // The repaired copy restores everything but the lost files, which it names.
    const repaired = await repo.loadSnapshot(fixed.newId!);
    expect(repaired.original).toBe(snapA);
    expect(repaired.repaired?.removed).toEqual(fixed.removed);
    const lostFiles = removed.map((p) => p.slice(a.length)).filter((p) => !p.endsWith('/'));
    await expectRestores(repo, fixed.newId!, a, 'a-repaired', lostFiles);
    await repo.close();
  });
});

describe('a byte flipped inside a data pack: check --read-data, repair packs, backup, repair snapshots', () => {
  it('salvages the pack, stores the lost data again from the source, and leaves a clean repository', async () => {
    const { a, b, storage, open, snapA, snapB } = await twoSnapshots();
    let repo = await open();
    const target = await packOf(repo, snapA, join(a, 'sub/mid.bin'));
    await repo.close();
    await rewrite(storage, { type: 'data', name: target.pack }, (x) => ((x[target.offset + 40] = x[target.offset + 40]! ^ 0x10), x));

    repo = await open();
    const report = await repo.check({ readData: true });
    const packFile = `data/${target.pack.slice(0, 2)}/${target.pack}`;
    expect(report.errors.map((e) => e.file)).toContain(packFile);
    expect(report.errors.find((e) => e.file === packFile)!.hint).toMatch(/kiwi repair packs/);
    expect(report.affected.find((x) => x.file === packFile)!.snapshots.map((s) => s.id)).toEqual([snapA]);

    const rp = await repairPacks(repo, [target.pack]);
    expect(rp.packs[0]!.lost.map((l) => l.id)).toEqual([target.id]);
    await repo.close();

    // The next backup of the (unchanged) source reads the file whose blob was lost and stores it again:
    // blob ids are content addresses, so the older snapshot is whole again too.
    repo = await open();
    const again = await runBackup({ repository: repo, sources: [a] });
    expect(again.status).toBe('success');
    expect(again.stats.filesChanged + again.stats.filesNew).toBe(1);
    await repo.close();

    repo = await open();
    const rs = await repairSnapshots(repo, { forget: true });
    expect(rs.snapshots.every((s) => s.newId === undefined && s.removedCount === 0)).toBe(true);
    await repo.close();

    repo = await open();
    await expectCleanCheck(repo, 'after the repairs');
    await expectRestores(repo, again.snapshotId!, a, 'a-again');
    await expectRestores(repo, snapA, a, 'a-healed');
    await expectRestores(repo, snapB, b, 'b');
    await repo.close();
  });
});
