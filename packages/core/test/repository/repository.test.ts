import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import {
  IntegrityError,
  RepositoryExistsError,
  RepositoryNotFoundError,
  SnapshotNotFoundError,
  WrongPasswordError,
} from '../../src/repository/errors.js';
import { Repository } from '../../src/repository/repository.js';
import type { EngineRepository } from '../../src/backup/types.js';
import type { Snapshot, Tree } from '../../src/repository/types.js';
import { FAST_KDF, MapStorage, newRepo, quietLogger, random, textish } from './helpers.js';

function snap(tree: string, time: string, extra: Partial<Snapshot> = {}): Snapshot {
  return { time, hostname: 'h1', username: 'u', paths: ['/src'], tags: [], tree, programVersion: 'test', ...extra };
}

const emptyTree: Tree = { nodes: [] };

describe('init and open', () => {
  it('creates a repository that opens with the same password', async () => {
    const { repo, storage } = await newRepo({ packSize: 64 * 1024, compressionLevel: 5 });
    expect(repo.id).toMatch(/^[0-9a-f]{64}$/);
    expect(repo.config.packSize).toBe(64 * 1024);
    expect(repo.config.compression).toEqual({ algorithm: 'zstd', level: 5 });
    expect(Buffer.from(repo.config.chunker.seed, 'base64')).toHaveLength(32);
    expect(repo.config.chunker).toMatchObject({ minSize: 512 * 1024, avgSize: 1024 * 1024, maxSize: 8 * 1024 * 1024 });
    await repo.close();
    expect(storage.paths('keys/')).toHaveLength(1);
    // config is encrypted: no plaintext id in it
    expect(storage.files.get('config')!.toString('latin1')).not.toContain(repo.id);
    const again = await Repository.open(storage, 'secret', { logger: quietLogger() });
    expect(again.id).toBe(repo.id);
    expect(again.config).toEqual(repo.config);
    await again.close();
  });

  it('refuses to init twice', async () => {
    const { repo, storage } = await newRepo();
    await repo.close();
    await expect(Repository.init(storage, 'x', { kdf: FAST_KDF })).rejects.toBeInstanceOf(RepositoryExistsError);
  });

  it('reports a missing repository', async () => {
    await expect(Repository.open(new MapStorage(), 'x')).rejects.toBeInstanceOf(RepositoryNotFoundError);
  });

  it('rejects a wrong password', async () => {
    const { repo, storage } = await newRepo();
    await repo.close();
    const err = await Repository.open(storage, 'wrong').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrongPasswordError);
    expect((err as Error).message).not.toContain('wrong"');
    expect((err as Error).message).toContain('map:test');
  });

  it('reports a damaged config by name', async () => {
    const { repo, storage } = await newRepo();
    await repo.close();
    const c = storage.files.get('config')!;
    c[c.length - 1]! ^= 1;
    await expect(Repository.open(storage, 'secret')).rejects.toMatchObject({ name: 'IntegrityError', file: 'config' });
  });

  it('has a type usable as the backup engine repository', async () => {
    const { repo } = await newRepo();
    const engine: EngineRepository = repo;
    expect(engine.config.chunker.seed).toBeTypeOf('string');
    await repo.close();
  });
});

describe('keys', () => {
  it('supports several passwords and never removes the last key', async () => {
    const { repo, storage } = await newRepo();
    const second = await repo.addKey('other', { kdf: FAST_KDF });
    const keys = await repo.listKeys();
    expect(keys).toHaveLength(2);
    expect(keys.filter((k) => k.current)).toHaveLength(1);
    expect(keys.find((k) => k.id === second)!.current).toBe(false);
    // key file names are the SHA-256 of their bytes
    for (const p of storage.paths('keys/')) {
      expect(createHash('sha256').update(storage.files.get(p)!).digest('hex')).toBe(p.slice(5));
    }
    const viaOther = await Repository.open(storage, 'other', { logger: quietLogger() });
    expect(viaOther.id).toBe(repo.id);
    await viaOther.close();

    const first = keys.find((k) => k.current)!.id;
    await repo.removeKey(first);
    await expect(Repository.open(storage, 'secret')).rejects.toBeInstanceOf(WrongPasswordError);
    await expect(repo.removeKey(second)).rejects.toThrow(/only key/);
    const stillOther = await Repository.open(storage, 'other', { logger: quietLogger() });
    await stillOther.close();
    await repo.close();
  });

  it('stores key files with the documented JSON fields', async () => {
    const { repo, storage } = await newRepo({ hostname: 'hosty', username: 'ursula' });
    const [path] = storage.paths('keys/');
    const json = JSON.parse(storage.files.get(path!)!.toString('utf8'));
    expect(Object.keys(json).sort()).toEqual(['N', 'created', 'data', 'hostname', 'kdf', 'p', 'r', 'salt', 'username', 'version']);
    expect(json).toMatchObject({ version: 1, kdf: 'scrypt', N: FAST_KDF.N, r: 8, p: 1, hostname: 'hosty', username: 'ursula' });
    expect(Buffer.from(json.salt, 'base64')).toHaveLength(32);
    expect(Buffer.from(json.data, 'base64')).toHaveLength(64 + 28);
    await repo.close();
  });
});

describe('blobs, packs and index', () => {
  it('round-trips blobs across packs and flushes, and dedups', async () => {
    const { repo, storage } = await newRepo({ packSize: 40 * 1024 });
    const blobs = Array.from({ length: 30 }, (_, i) => (i % 2 ? random(9000 + i) : textish(12000 + i, i)));
    const ids: string[] = [];
    for (const [i, b] of blobs.entries()) {
      const r = await repo.saveBlob('data', b);
      expect(r.known).toBe(false);
      expect(r.id).toBe(repo.blobId(b));
      if (i % 2 === 0) expect(r.storedSize).toBeLessThan(b.length); // compressed
      ids.push(r.id);
      if (i === 10) await repo.flush();
    }
    // pending dedup (same content, before flush)
    expect((await repo.saveBlob('data', blobs[29]!)).known).toBe(true);
    expect(repo.hasBlob('data', ids[29]!)).toBe(true);
    expect(repo.hasBlob('tree', ids[29]!)).toBe(false);
    await repo.flush();
    expect(storage.paths('data/').length).toBeGreaterThan(3);
    expect(storage.paths('index/').length).toBe(2);
    for (const [i, b] of blobs.entries()) expect((await repo.loadBlob('data', ids[i]!)).equals(b)).toBe(true);
    // indexed dedup
    const again = await repo.saveBlob('data', blobs[3]!);
    expect(again).toEqual({ id: ids[3], known: true, storedSize: 0 });
    await repo.close();

    // a new instance sees everything after loadIndex
    const r2 = await Repository.open(storage, 'secret', { logger: quietLogger() });
    expect(r2.hasBlob('data', ids[0]!)).toBe(false);
    const st = await r2.loadIndex();
    expect(st.blobs).toBe(30);
    expect(st.files).toBe(2);
    expect(r2.hasBlob('data', ids[0]!)).toBe(true);
    expect((await r2.saveBlob('data', blobs[7]!)).known).toBe(true);
    for (const [i, b] of blobs.entries()) expect((await r2.loadBlob('data', ids[i]!)).equals(b)).toBe(true);
    await r2.close();
  });

  it('stores an empty blob', async () => {
    const { repo } = await newRepo();
    const { id } = await repo.saveBlob('data', Buffer.alloc(0));
    await repo.flush();
    expect(await repo.loadBlob('data', id)).toHaveLength(0);
    expect((await repo.check({ readData: true })).errors).toEqual([]);
    await repo.close();
  });

  it('lets the caller reuse its buffer as soon as saveBlob resolves', async () => {
    const { repo } = await newRepo({ packSize: 64 * 1024 });
    const buf = Buffer.alloc(20000);
    const expected: Array<[string, Buffer]> = [];
    for (let i = 0; i < 12; i++) {
      textish(20000, i + 100).copy(buf);
      const r = await repo.saveBlob('data', buf);
      expected.push([r.id, Buffer.from(buf)]);
    }
    await repo.flush();
    for (const [id, b] of expected) expect((await repo.loadBlob('data', id)).equals(b)).toBe(true);
    await repo.close();
  });

  it('handles concurrent saveBlob calls, identical content included, and large blobs', async () => {
    const { repo } = await newRepo({ packSize: 32 * 1024, uploadConcurrency: 2 });
    const data = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? textish(7000, i % 6) : random(5000)));
    data.push(random(200 * 1024)); // larger than a pack buffer
    const results = await Promise.all(data.map((d) => repo.saveBlob('data', d)));
    const newOnes = results.filter((r) => !r.known).length;
    expect(newOnes).toBe(new Set(results.map((r) => r.id)).size);
    await repo.flush();
    for (const [i, d] of data.entries()) expect((await repo.loadBlob('data', results[i]!.id)).equals(d)).toBe(true);
    await repo.close();
  });

  it('flush waits for saveBlob calls still in flight; loadBlob loads the index on first use', async () => {
    const { repo, storage } = await newRepo({ packSize: 16 * 1024 });
    const data = Array.from({ length: 10 }, (_, i) => textish(6000, i + 50));
    const saves = data.map((d) => repo.saveBlob('data', d));
    await repo.flush();
    const ids = (await Promise.all(saves)).map((r) => r.id);
    await repo.close();
    const r2 = await Repository.open(storage, 'secret', { logger: quietLogger() });
    for (const [i, d] of data.entries()) expect((await r2.loadBlob('data', ids[i]!)).equals(d)).toBe(true);
    expect(r2.indexStats()).toMatchObject({ blobs: 10, loaded: true });
    await r2.close();
  });

  it('keeps data and tree blobs in separate packs and dedups identical trees', async () => {
    const { repo, storage } = await newRepo();
    const tree: Tree = {
      nodes: [{ name: 'a', type: 'file', mode: 0o644, uid: 1, gid: 1, mtimeNs: '1', ctimeNs: '1', inode: '1', dev: '1', size: 0, content: [] }],
    };
    const reordered = JSON.parse(JSON.stringify({ nodes: [Object.fromEntries(Object.entries(tree.nodes[0]!).reverse())] })) as Tree;
    const t1 = await repo.saveTree(tree);
    const t2 = await repo.saveTree(reordered);
    expect(t2).toBe(t1);
    await repo.saveBlob('data', textish(5000));
    await repo.flush();
    expect(storage.paths('data/')).toHaveLength(2);
    expect(await repo.loadTree(t1)).toEqual(tree);
    expect(repo.lookupBlob('tree', t1)!.pack).not.toBe(repo.lookupBlob('data', repo.blobId(textish(5000)))!.pack);
    await repo.close();
  });

  it('writes index files periodically during a long write', async () => {
    const { repo, storage } = await newRepo({ packSize: 8 * 1024, indexEvery: 3 });
    for (let i = 0; i < 20; i++) await repo.saveBlob('data', random(7000));
    // wait (without flushing) for the uploads and index writes started so far
    for (let i = 0; i < 400 && storage.paths('index/').length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    // 20 blobs of ~7 KiB in 8 KiB packs: 10 packs, an index file every 3 packs
    expect(storage.paths('index/').length).toBe(3);
    await repo.flush();
    expect(storage.paths('index/').length).toBe(4);
    await repo.close();
    const r2 = await Repository.open(storage, 'secret', { logger: quietLogger() });
    expect((await r2.loadIndex()).blobs).toBe(20);
    await r2.close();
  });

  it('writes an index file after indexBlobs new blobs too, however few packs hold them (small files)', async () => {
    const { repo, storage } = await newRepo({ packSize: 16 * 1024, indexEvery: 1000, indexBlobs: 100 });
    const blobs = Array.from({ length: 350 }, () => random(300));
    for (const b of blobs) await repo.saveBlob('data', b);
    for (let i = 0; i < 400 && storage.paths('index/').length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    // ~50 blobs a pack: an index file every 2 packs, not every 1000.
    expect(storage.paths('index/').length).toBeGreaterThanOrEqual(3);
    await repo.flush();
    await repo.close();
    const r2 = await Repository.open(storage, 'secret', { logger: quietLogger() });
    expect((await r2.loadIndex()).blobs).toBe(350);
    await r2.close();
  });

  it('applies back-pressure: saveBlob waits while uploads are stuck, memory stays bounded', async () => {
    const { repo, storage } = await newRepo({ packSize: 8 * 1024, uploadConcurrency: 2 });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    storage.beforeSave = async (h) => {
      if (h.type === 'data') await gate;
    };
    let done = 0;
    const saves = Array.from({ length: 30 }, (_, i) =>
      repo.saveBlob('data', random(9000 + i)).then(() => done++),
    );
    await new Promise((r) => setTimeout(r, 50));
    // 2 uploading + 2 open/queued pack buffers at most; the rest of the callers wait
    expect(done).toBeLessThanOrEqual(4); // one blob fills a pack: 4 pack buffers
    const stats = repo.writeStats();
    expect(stats.bufferBytes).toBeLessThanOrEqual(4 * (8 * 1024 + 8 * 1024 + 64 * 1024)); // packSize + slack (at most packSize) + header room
    open();
    await Promise.all(saves);
    await repo.flush();
    expect(done).toBe(30);
    expect(repo.writeStats()).toMatchObject({ packsInFlight: 0, unindexedPacks: 0, pendingBlobs: 0 });
    await repo.close();
  });

  it('refuses a tampered blob and names blob and pack', async () => {
    const { repo, storage } = await newRepo();
    const b = textish(30000);
    const { id } = await repo.saveBlob('data', b);
    await repo.flush();
    const loc = repo.lookupBlob('data', id)!;
    const path = `data/${loc.pack.slice(0, 2)}/${loc.pack}`;
    storage.files.get(path)![loc.offset + 20]! ^= 0x40;
    const err = await repo.loadBlob('data', id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).file).toBe(path);
    expect((err as Error).message).toContain(id);
    await repo.close();
  });

  it('surfaces an upload failure from flush', async () => {
    const { repo, storage } = await newRepo();
    storage.beforeSave = (h) => {
      if (h.type === 'data') throw new Error('disk full');
    };
    await repo.saveBlob('data', random(1000));
    await expect(repo.flush()).rejects.toThrow(/uploading pack data\/.* failed: disk full/);
    await repo.close();
  });
});

describe('snapshots', () => {
  it('saves, lists, and finds by prefix and latest', async () => {
    const { repo, storage } = await newRepo();
    const tree = await repo.saveTree(emptyTree);
    await repo.flush();
    const ids: string[] = [];
    ids.push(await repo.saveSnapshot(snap(tree, '2024-01-01T00:00:00.000Z')));
    ids.push(await repo.saveSnapshot(snap(tree, '2024-01-03T00:00:00.000Z', { hostname: 'h2' })));
    ids.push(await repo.saveSnapshot(snap(tree, '2024-01-02T00:00:00.000Z', { paths: ['/other'] })));
    for (const id of ids) {
      expect(id).toBe(createHash('sha256').update(storage.files.get(`snapshots/${id}`)!).digest('hex'));
    }
    const list = await repo.listSnapshots();
    expect(list.map((s) => s.snapshot.time)).toEqual(['2024-01-01T00:00:00.000Z', '2024-01-02T00:00:00.000Z', '2024-01-03T00:00:00.000Z']);
    expect((await repo.findSnapshot('latest')).id).toBe(ids[1]);
    expect((await repo.findSnapshot('latest', { host: 'h1' })).id).toBe(ids[2]);
    expect((await repo.findSnapshot('latest', { host: 'h1', paths: ['/src'] })).id).toBe(ids[0]);
    await expect(repo.findSnapshot('latest', { host: 'nope' })).rejects.toBeInstanceOf(SnapshotNotFoundError);
    expect((await repo.findSnapshot(ids[0]!.slice(0, 8))).snapshot.time).toBe('2024-01-01T00:00:00.000Z');
    expect((await repo.findSnapshot(ids[0]!.slice(0, 8).toUpperCase())).id).toBe(ids[0]);
    await expect(repo.findSnapshot('zz')).rejects.toBeInstanceOf(SnapshotNotFoundError);
    await expect(repo.findSnapshot('')).rejects.toBeInstanceOf(SnapshotNotFoundError);
    // an ambiguous prefix lists candidates
    const err = (await repo.findSnapshot('').catch((e: unknown) => e)) as SnapshotNotFoundError;
    expect(err.message).toBeTruthy();
    const common = commonPrefixPair(ids);
    if (common) {
      const amb = (await repo.findSnapshot(common).catch((e: unknown) => e)) as SnapshotNotFoundError;
      expect(amb.candidates.length).toBeGreaterThan(1);
      expect(amb.message).toMatch(/ambiguous/);
    }
    await repo.close();
  });

  it('enforces the commit order: no snapshot before flush', async () => {
    const { repo } = await newRepo();
    const tree = await repo.saveTree(emptyTree);
    await expect(repo.saveSnapshot(snap(tree, new Date().toISOString()))).rejects.toThrow(/flush/);
    await repo.flush();
    await repo.saveSnapshot(snap(tree, new Date().toISOString()));
    await expect(repo.saveSnapshot(snap('0'.repeat(64), new Date().toISOString()))).rejects.toThrow(/not in the repository/);
    await repo.close();
  });
});

function commonPrefixPair(ids: string[]): string | undefined {
  // the single hex digit shared by two ids, if any
  for (const a of ids) for (const b of ids) if (a !== b && a[0] === b[0]) return a[0];
  return undefined;
}

describe('crash safety', () => {
  it('packs without an index leave a valid repository; an index without a snapshot is fine', async () => {
    const { repo, storage } = await newRepo({ packSize: 16 * 1024, indexEvery: 1000 });
    const tree = await repo.saveTree(emptyTree);
    await repo.flush();
    const first = await repo.saveSnapshot(snap(tree, '2024-01-01T00:00:00.000Z'));
    // a "crashed" backup: packs uploaded, no index written for them, no snapshot
    const lost = Array.from({ length: 8 }, () => random(6000));
    for (const b of lost) await repo.saveBlob('data', b);
    await new Promise((r) => setTimeout(r, 30));
    const indexBefore = storage.paths('index/').length;
    await repo.close(); // no flush: open pack dropped, uploaded packs unindexed
    expect(storage.paths('index/').length).toBe(indexBefore);

    const r2 = await Repository.open(storage, 'secret', { logger: quietLogger() });
    await r2.loadIndex();
    for (const b of lost) expect(r2.hasBlob('data', r2.blobId(b))).toBe(false);
    const report = await r2.check({ readData: true });
    expect(report.errors).toEqual([]);
    expect(report.warnings.every((w) => w.file.startsWith('data/'))).toBe(true);
    expect(report.warnings.length).toBeGreaterThan(0);
    expect(report.warnings[0]!.message).toMatch(/not referenced by any index/);
    // the next backup stores them again and completes
    for (const b of lost) expect((await r2.saveBlob('data', b)).known).toBe(false);
    await r2.flush(); // index written, no snapshot: still fine
    expect((await r2.check({ readData: true })).errors).toEqual([]);
    expect((await r2.findSnapshot('latest')).id).toBe(first);
    await r2.close();
  });
});

describe('crash safety: periodic index files', () => {
  it('lets the next backup reuse packs indexed before an interruption', async () => {
    const { repo, storage } = await newRepo({ packSize: 8 * 1024, indexEvery: 2 });
    const blobs = Array.from({ length: 12 }, () => random(7000));
    for (const b of blobs) await repo.saveBlob('data', b);
    await new Promise((r) => setTimeout(r, 50));
    await repo.close(); // interrupted: no flush
    const r2 = await Repository.open(storage, 'secret', { logger: quietLogger() });
    await r2.loadIndex();
    const known = blobs.filter((b) => r2.hasBlob('data', r2.blobId(b))).length;
    expect(known).toBeGreaterThanOrEqual(8);
    for (const b of blobs) await r2.saveBlob('data', b);
    await r2.flush();
    for (const b of blobs) expect((await r2.loadBlob('data', r2.blobId(b))).equals(b)).toBe(true);
    expect((await r2.check({ readData: true })).errors).toEqual([]);
    await r2.close();
  });
});

describe('check', () => {
  async function populated() {
    const ctx = await newRepo({ packSize: 16 * 1024 });
    const { repo } = ctx;
    const contents = Array.from({ length: 10 }, (_, i) => textish(9000, i));
    const ids = [];
    for (const c of contents) ids.push((await repo.saveBlob('data', c)).id);
    const sub = await repo.saveTree({
      nodes: ids.map((id, i) => ({ name: `f${i}`, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', ctimeNs: '0', inode: '0', dev: '0', size: 9000, content: [id] })),
    });
    const root = await repo.saveTree({
      nodes: [{ name: 'src', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: '0', ctimeNs: '0', inode: '0', dev: '0', size: 0, subtree: sub }],
    });
    await repo.flush();
    const snapId = await repo.saveSnapshot(snap(root, '2024-05-01T00:00:00.000Z'));
    return { ...ctx, ids, snapId };
  }

  it('passes on a healthy repository', async () => {
    const { repo } = await populated();
    const progress: string[] = [];
    const report = await repo.check({ readData: true, onProgress: (p) => progress.push(p.phase) });
    expect(report.errors).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(report.stats).toMatchObject({ keys: 1, snapshots: 1, trees: 2, blobs: 12 });
    expect(report.stats.bytesVerified).toBeGreaterThan(0);
    expect(new Set(progress)).toEqual(new Set(['keys', 'index', 'packs', 'snapshots', 'trees', 'data']));
    await repo.close();
  });

  it('names a bit-flipped pack (readData) and still passes the structural check', async () => {
    const { repo, storage, ids } = await populated();
    const loc = repo.lookupBlob('data', ids[4]!)!;
    const path = `data/${loc.pack.slice(0, 2)}/${loc.pack}`;
    storage.files.get(path)![loc.offset + 100]! ^= 1;
    expect((await repo.check({ readData: false })).errors).toEqual([]);
    const report = await repo.check({ readData: true });
    expect(report.errors.length).toBeGreaterThanOrEqual(2);
    expect(report.errors.every((e) => e.file === path)).toBe(true);
    expect(report.errors.map((e) => e.message).join('\n')).toContain(ids[4]!);
    expect(report.errors.map((e) => e.message).join('\n')).toMatch(/does not match its name/);
    await repo.close();
  });

  it('names a truncated pack with and without readData', async () => {
    const { repo, storage, ids } = await populated();
    const loc = repo.lookupBlob('data', ids[0]!)!;
    const path = `data/${loc.pack.slice(0, 2)}/${loc.pack}`;
    const f = storage.files.get(path)!;
    storage.files.set(path, f.subarray(0, f.length - 10));
    const quick = await repo.check({});
    expect(quick.errors).toHaveLength(1);
    expect(quick.errors[0]!.file).toBe(path);
    expect(quick.errors[0]!.message).toMatch(/truncated/);
    const full = await repo.check({ readData: true });
    expect(full.errors.some((e) => e.file === path && /header/.test(e.message))).toBe(true);
    // the last blob of the pack now ends past its end
    const last = ids.map((id) => repo.lookupBlob('data', id)!).filter((l) => l.pack === loc.pack).sort((a, b) => b.offset - a.offset)[0]!;
    storage.files.set(path, f.subarray(0, last.offset + 10));
    await expect(repo.loadBlob('data', last.id)).rejects.toMatchObject({ name: 'IntegrityError', file: path, message: expect.stringMatching(/truncated/) });
    await repo.close();
  });

  it('names a damaged config', async () => {
    const { repo, storage } = await populated();
    storage.files.get('config')![5]! ^= 1;
    expect((await repo.check({})).errors).toEqual([{ file: 'config', message: expect.stringMatching(/authenticated/) }]);
    await repo.close();
  });

  it('names a missing pack through the index that lists it', async () => {
    const { repo, storage, ids } = await populated();
    const loc = repo.lookupBlob('data', ids[0]!)!;
    storage.files.delete(`data/${loc.pack.slice(0, 2)}/${loc.pack}`);
    const report = await repo.check({});
    expect(report.errors.some((e) => e.file.startsWith('index/') && e.message.includes(loc.pack))).toBe(true);
    await repo.close();
  });

  it('names a tampered index file and a tampered snapshot file', async () => {
    const { repo, storage, snapId } = await populated();
    const [indexPath] = storage.paths('index/');
    storage.files.get(indexPath!)![40]! ^= 4;
    storage.files.get(`snapshots/${snapId}`)![50]! ^= 4;
    const report = await repo.check({});
    const files = report.errors.map((e) => e.file);
    expect(files).toContain(indexPath);
    expect(files).toContain(`snapshots/${snapId}`);
    await expect(repo.loadSnapshot(snapId)).rejects.toMatchObject({ name: 'IntegrityError', file: `snapshots/${snapId}` });
    await expect(repo.listSnapshots()).rejects.toMatchObject({ name: 'IntegrityError', file: `snapshots/${snapId}` });
    const skipped: string[] = [];
    expect(await repo.listSnapshots({ onError: (f) => skipped.push(f) })).toEqual([]);
    expect(skipped).toEqual([`snapshots/${snapId}`]);
    // Loading the index skips the damaged file (named in the result and the log) instead of failing.
    const logger = quietLogger();
    const r2 = await Repository.open(storage, 'secret', { logger });
    const loaded = await r2.loadIndex();
    expect(loaded.damagedFiles).toEqual([{ file: indexPath, message: expect.stringMatching(/does not match its name/) }]);
    expect(logger.lines.join('\n')).toContain(indexPath);
    await r2.close();
    await repo.close();
  });

  it('detects a re-encrypted (renamed) file whose name matches but content is foreign', async () => {
    const { repo, storage, snapId } = await populated();
    // Replace a snapshot with random bytes saved under their own SHA-256: the name matches, authentication fails.
    const junk = random(300);
    const name = createHash('sha256').update(junk).digest('hex');
    storage.files.set(`snapshots/${name}`, junk);
    const report = await repo.check({});
    expect(report.errors).toEqual([{ file: `snapshots/${name}`, message: expect.stringMatching(/authentication failed/), hint: expect.stringMatching(/kiwi forget/) }]);
    expect(snapId).not.toBe(name);
    await repo.close();
  });

  it('names a snapshot whose data blob is missing from the index', async () => {
    const { repo, storage } = await populated();
    const tree = await repo.saveTree({
      nodes: [{ name: 'ghost', type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', ctimeNs: '0', inode: '0', dev: '0', size: 1, content: ['ab'.repeat(32)] }],
    });
    await repo.flush();
    const id = await repo.saveSnapshot(snap(tree, '2024-06-01T00:00:00.000Z'));
    const report = await repo.check({});
    expect(report.errors).toEqual([{ file: `snapshots/${id}`, message: expect.stringContaining('ab'.repeat(32)), hint: expect.stringMatching(/kiwi repair/) }]);
    expect(storage.paths('snapshots/')).toHaveLength(2);
    await repo.close();
  });
});
