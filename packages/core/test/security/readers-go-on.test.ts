/**
 * ls, diff and restore report each bad tree entry as one error and go on with the rest
 * (issue 13 item 4): before, a tree with a null entry, uid -7 or an mtime that is not a
 * decimal string made them crash or abort the whole run.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/repository/errors.js';
import { Repository } from '../../src/repository/repository.js';
import { restoreSnapshot } from '../../src/restore/restore.js';
import { diffSnapshots, listTree, type TreeWalkError } from '../../src/snapshot-ops/snapshot-ops.js';
import { HostileRepo, dirNode, fileNode } from '../../src/testing/hostile.js';
import { FAST_KDF, newRepo, quietLogger } from '../repository/helpers.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function build() {
  const { repo, storage } = await newRepo();
  await repo.close();
  const h = await HostileRepo.open(storage, 'secret');
  const good = Buffer.from('good!');
  const x = Buffer.from('xxx');
  const goodId = await h.writeRawDataBlob(good);
  const xId = await h.writeRawDataBlob(x);
  const inner = await h.writeTree([fileNode('x', { size: 3, content: [xId] }), fileNode('y', { mtimeNs: 'soon' })]);
  const rootNodes = [dirNode('a', inner), fileNode('bad', { uid: -7 }), fileNode('good', { size: 5, content: [goodId] }), null];
  const root = await h.writeTree(rootNodes);
  const snapId = await h.writeRawSnapshot(h.snapshotJson(root));
  const cleanRoot = await h.writeTree([fileNode('good', { size: 5, content: [goodId] })]);
  const cleanId = await h.writeRawSnapshot(h.snapshotJson(cleanRoot));
  const opened = await Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
  return { repo: opened, snap: await opened.loadSnapshot(snapId), clean: await opened.loadSnapshot(cleanId), root, inner };
}

describe('readers go on past invalid tree entries', () => {
  it('ls lists every valid entry and reports each invalid one once', async () => {
    const { repo, snap, root, inner } = await build();
    const errors: TreeWalkError[] = [];
    const paths: string[] = [];
    for await (const e of listTree(repo, snap, '/', { onError: (err) => errors.push(err) })) paths.push(e.path);
    expect(paths).toEqual(['/a', '/a/x', '/good']);
    expect(errors).toEqual([
      { path: '/bad', message: `invalid entry 1 of tree ${root}: uid -7 is not an integer in 0…4294967294` },
      { path: '/#3', message: `invalid entry 3 of tree ${root}: entry is null, not an object` },
      { path: '/a/y', message: `invalid entry 1 of tree ${inner}: mtimeNs is not a time in nanoseconds (a decimal string, its seconds within 64 bits)` },
    ]);
    // Without a handler the first problem throws a clear error.
    const it = listTree(repo, snap);
    await expect((async () => {
      for await (const _ of it) void _;
    })()).rejects.toThrow(IntegrityError);
    await repo.close();
  });

  it('ls reports an unreadable directory and goes on', async () => {
    const { repo, snap } = await build();
    const { storage } = repo;
    const h = await HostileRepo.open(storage, 'secret');
    const missing = h.blobId(Buffer.from('never stored'));
    const root = await h.writeTree([dirNode('gone', missing), fileNode('after')]);
    const broken = await repo.loadSnapshot(await h.writeRawSnapshot(h.snapshotJson(root)));
    await repo.loadIndex();
    const errors: TreeWalkError[] = [];
    const paths: string[] = [];
    for await (const e of listTree(repo, broken, '/', { onError: (err) => errors.push(err) })) paths.push(e.path);
    expect(paths).toEqual(['/gone', '/after']);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.path).toBe('/gone');
    expect(errors[0]!.message).toMatch(new RegExp(`directory cannot be read \\(tree ${missing}\\)`));
    void snap;
    await repo.close();
  });

  it('diff reports invalid entries of either side and compares the rest', async () => {
    const { repo, snap, clean } = await build();
    const errors: TreeWalkError[] = [];
    const changes: string[] = [];
    for await (const c of diffSnapshots(repo, clean, snap, { onError: (e) => errors.push(e) })) changes.push(`${c.change} ${c.path}`);
    expect(changes).toEqual(['added /a', 'added /a/x']);
    expect(errors.map((e) => e.path)).toEqual(['/bad', '/#3', '/a/y']);
    expect(errors[0]!.message).toMatch(/\(second snapshot\): uid -7/);
    await repo.close();
  });

  it('restore reports each invalid entry and restores everything else', async () => {
    const { repo, snap } = await build();
    const target = await mkdtemp(join(tmpdir(), 'kiwi-hostile-'));
    dirs.push(target);
    const r = await restoreSnapshot({ repository: repo, snapshot: snap, target, owners: false, onError: () => undefined });
    expect(r.errors.map((e) => e.path).sort()).toEqual(['/#3', '/a/y', '/bad']);
    expect(r.errors.find((e) => e.path === '/bad')!.message).toMatch(/not restored: uid -7/);
    expect(await readFile(join(target, 'good'), 'utf8')).toBe('good!');
    expect(await readFile(join(target, 'a', 'x'), 'utf8')).toBe('xxx');
    await repo.close();
  });
});

describe('prune does not work around invalid tree entries', () => {
  it('refuses to prune when a snapshot has a tree with invalid entries (their blobs would look unused)', async () => {
    const { repo } = await build();
    const { prune } = await import('../../src/maintenance/prune.js');
    const before = [];
    for await (const f of repo.storage.list('data')) before.push(f.name);
    await expect(prune(repo)).rejects.toThrow(/has 2 invalid entries \(entry 1, "bad": uid -7 is not an integer/);
    const after = [];
    for await (const f of repo.storage.list('data')) after.push(f.name);
    expect(after.sort()).toEqual(before.sort());
    await repo.close();
  });
});

describe('repair snapshots removes invalid tree entries', () => {
  it('writes a snapshot without them (listed as removed), which checks clean and restores', async () => {
    const { repo, snap } = await build();
    const { repairSnapshots } = await import('../../src/maintenance/repair-snapshots.js');
    const removed: string[] = [];
    const r = await repairSnapshots(repo, { onRemoved: (_id, path, reason) => removed.push(`${path}: ${reason}`) });
    expect(removed.sort()).toEqual([
      '/#3: invalid entry: entry is null, not an object',
      '/a/y: invalid entry: mtimeNs is not a time in nanoseconds (a decimal string, its seconds within 64 bits)',
      '/bad: invalid entry: uid -7 is not an integer in 0…4294967294',
    ]);
    const repaired = r.snapshots.find((s) => s.removedCount === 3)!;
    expect(repaired).toBeDefined();
    const report = await repo.check();
    const stillBad = report.errors.filter((e) => !e.file.startsWith('snapshots/') || !e.message.includes('invalid entry'));
    expect(stillBad).toEqual([]);
    expect(repaired.newId).toBeDefined();
    const fresh = await repo.loadSnapshot(repaired.newId!);
    expect(fresh.tree).not.toBe(snap.tree);
    const errors: TreeWalkError[] = [];
    const paths: string[] = [];
    for await (const e of listTree(repo, fresh, '/', { onError: (err) => errors.push(err) })) paths.push(e.path);
    expect(errors).toEqual([]);
    expect(paths).toEqual(['/a', '/a/x', '/good']);
    await repo.close();
  });
});

describe('copy does not drop invalid tree entries silently', () => {
  it('refuses to copy a snapshot whose trees have entries the validator refused (reported, not copied; the copy goes on)', async () => {
    const { repo, snap } = await build();
    const { copySnapshots } = await import('../../src/maintenance/copy.js');
    const { repo: dest } = await newRepo();
    const snapshots = (await repo.listSnapshots()).filter((s) => s.snapshot.tree === snap.tree);
    const r = await copySnapshots(repo, dest, { snapshots });
    expect(r.copied).toEqual([]);
    expect(r.failed.map((f) => f.source)).toEqual(snapshots.map((s) => s.id));
    expect(r.failed[0]!.message).toMatch(/has 2 invalid entries \(entry 1, "bad": uid -7 is not an integer.*kiwi repair snapshots/);
    expect(await dest.listSnapshots()).toEqual([]);
    await dest.close();
    await repo.close();
  });
});
