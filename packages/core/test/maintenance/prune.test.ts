/**
 * prune (issue #10): deletes what no snapshot uses, repacks what is mostly unused, refuses to
 * work around damage, and survives a crash at any storage operation.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runBackup, prune, parseMaxUnused, type Storage, type Handle } from '../../src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';
import { expectRestores, generations } from './helpers.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-prune-');
});
afterEach(async () => {
  await removeDir(work);
});

const KDF = { N: 1024, r: 8, p: 1 };
const quiet = { info() {}, warn() {} };

async function totalBytes(storage: Storage, type: 'data' | 'index'): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const f of storage.list(type)) {
    files++;
    bytes += f.size;
  }
  return { files, bytes };
}

describe('prune', () => {
  it('after forgetting older snapshots: deletes their data, keeps the rest restorable, and a second prune has nothing to do', async () => {
    const { src, storage, snaps, open } = await generations(work);
    const before = await totalBytes(storage, 'data');
    for (const s of snaps.slice(0, 2)) await storage.remove({ type: 'snapshot', name: s.id });

    let repo = await open();
    const dry = await prune(repo, { dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.bytes.freed).toBeGreaterThan(100_000);
    expect(await totalBytes(storage, 'data')).toEqual(before);
    await repo.close();

    repo = await open();
    const r = await prune(repo);
    await repo.close();
    expect(r.packs.deleted + r.packs.repacked).toBeGreaterThan(0);
    const after = await totalBytes(storage, 'data');
    expect(before.bytes - after.bytes).toBeGreaterThan(100_000);
    // What is left is at most 5 % unused (by the default limit), plus one pack's worth of rounding.
    expect(r.bytes.unusedAfter).toBeLessThanOrEqual(r.bytes.used * 0.05);

    repo = await open();
    const report = await repo.check({ readData: true });
    expect(report.errors).toEqual([]);
    expect(report.warnings).toEqual([]);
    await expectRestores(work, repo, snaps[2]!.id, snaps[2]!.tree, src, 'last');
    const again = await prune(repo);
    expect(again.packs.deleted + again.packs.repacked).toBe(0);
    await repo.close();
  });

  it('repacks partly used packs when the unused share is above --max-unused, and not when it is within', async () => {
    const { src, storage, snaps, open } = await generations(work, 200 * 1024);
    for (const s of snaps.slice(0, 2)) await storage.remove({ type: 'snapshot', name: s.id });
    let repo = await open();
    const lenient = await prune(repo, { maxUnused: parseMaxUnused('unlimited'), dryRun: true });
    expect(lenient.packs.repacked).toBe(0);
    const before = await totalBytes(storage, 'data');
    // The stored bytes of every used blob, to compare after the repack (copied as stored, not sealed again).
    const storedBytes = async (r: Repository) => {
      const out = new Map<string, string>();
      await r.loadIndex();
      const ids: string[] = [];
      r.internals().index.forEachUsableId('data', (buf, off) => ids.push(Buffer.from(buf.subarray(off, off + 32)).toString('hex')));
      for (const id of ids) {
        const loc = r.lookupBlob('data', id)!;
        const bytes = await storage.load({ type: 'data', name: loc.pack }, { offset: loc.offset, length: loc.length });
        out.set(id, bytes.toString('base64'));
      }
      return out;
    };
    const storedBefore = await storedBytes(repo);
    await repo.close();
    // Blobs copied out of packs that prune retires are not lost copies: no warning says they were.
    const warnings: string[] = [];
    repo = await open({ info() {}, warn: (m) => warnings.push(m) });
    const strict = await prune(repo, { maxUnused: parseMaxUnused('0%') });
    expect(strict.packs.repacked).toBeGreaterThan(0);
    expect(warnings).toEqual([]);
    expect(strict.bytes.unusedAfter).toBe(0);
    // What it says it freed is what it freed (up to the new packs' headers).
    const after = await totalBytes(storage, 'data');
    expect(strict.bytes.freed).toBeGreaterThan(0);
    expect(Math.abs(strict.bytes.freed - (before.bytes - after.bytes))).toBeLessThanOrEqual(64 * 1024);
    await repo.close();
    repo = await open();
    const storedAfter = await storedBytes(repo);
    expect(storedAfter.size).toBeGreaterThan(10);
    for (const [id, bytes] of storedAfter) expect(bytes, id).toBe(storedBefore.get(id));
    const report = await repo.check({ readData: true });
    expect(report.errors).toEqual([]);
    await expectRestores(work, repo, snaps[2]!.id, snaps[2]!.tree, src, 'repacked');
    await repo.close();
  });

  it('parses --max-unused and refuses nonsense', () => {
    expect(parseMaxUnused('5%')).toEqual({ kind: 'percent', value: 5 });
    expect(parseMaxUnused('unlimited')).toEqual({ kind: 'unlimited' });
    expect(parseMaxUnused('100M')).toEqual({ kind: 'bytes', value: 100 * 1024 * 1024 });
    expect(parseMaxUnused('2GiB')).toEqual({ kind: 'bytes', value: 2 * 1024 ** 3 });
    expect(() => parseMaxUnused('100%')).toThrow(/below 100/);
    expect(() => parseMaxUnused('-1')).toThrow(/expected a percentage/);
    expect(() => parseMaxUnused('lots')).toThrow(/expected a percentage/);
  });

  it('refuses to prune around a missing pack or a damaged index file, naming it and the repair command', async () => {
    const { storage, snaps, open } = await generations(work);
    await storage.remove({ type: 'snapshot', name: snaps[0]!.id });
    const packs: string[] = [];
    for await (const f of storage.list('data')) packs.push(f.name);
    await storage.remove({ type: 'data', name: packs[0]! });
    let repo = await open();
    await expect(prune(repo)).rejects.toThrow(/refusing to prune: .*missing or damaged .*kiwi repair index/);
    await repo.close();
    const dataBefore = await totalBytes(storage, 'data');
    expect(dataBefore.files).toBe(packs.length - 1);

    const indexFiles: string[] = [];
    for await (const f of storage.list('index')) indexFiles.push(f.name);
    const bytes = Buffer.from(await storage.load({ type: 'index', name: indexFiles[0]! }));
    bytes[20] = bytes[20]! ^ 1;
    await storage.remove({ type: 'index', name: indexFiles[0]! });
    await storage.save({ type: 'index', name: indexFiles[0]! }, bytes);
    repo = await open();
    await expect(prune(repo)).rejects.toThrow(new RegExp(`index/${indexFiles[0]}.*kiwi repair index`));
    await repo.close();
    // Also when the same repository object had loaded its index before (the damaged file is not read again).
    repo = await open();
    await repo.loadIndex();
    await expect(prune(repo)).rejects.toThrow(new RegExp(`index/${indexFiles[0]}.*kiwi repair index`));
    await repo.close();
    expect(await totalBytes(storage, 'data')).toEqual(dataBefore);
  });
});

describe('prune copying blobs into new packs', () => {
  /** A repository where a strict prune repacks, the packs it would repack, and their files' bytes. */
  async function repackable() {
    const g = await generations(work, 200 * 1024);
    for (const s of g.snaps.slice(0, 2)) await g.storage.remove({ type: 'snapshot', name: s.id });
    const repo = await g.open();
    const plan = await prune(repo, { maxUnused: parseMaxUnused('0%'), dryRun: true });
    expect(plan.repackedPacks.length).toBeGreaterThan(0);
    const { index } = repo.internals();
    const blobsOf = (pack: string) => index.entriesOfPack(index.findPack(pack)).map((e) => index.get(e));
    // The pack of a tree a kept snapshot uses (read to find the used blobs).
    const kept = (await repo.listSnapshots())[0]!.snapshot;
    const treePack = repo.lookupBlob('tree', kept.tree)!.pack;
    await repo.close();
    const files = async () => {
      const names: string[] = [];
      for (const type of ['data', 'index', 'snapshot'] as const) for await (const f of g.storage.list(type)) names.push(`${type}/${f.name}`);
      return names.sort();
    };
    return { ...g, plan, blobsOf, files, treePack };
  }

  it('refuses a damaged blob in a pack it repacks: names the pack and `kiwi repair packs`, removes nothing; with the pack put back, the next prune runs', async () => {
    const { storage, open, plan, blobsOf, files } = await repackable();
    const pack = plan.repackedPacks[plan.repackedPacks.length - 1]!;
    // One flipped byte in every blob of the pack (whichever of them a snapshot uses).
    const good = Buffer.from(await storage.load({ type: 'data', name: pack }));
    const bytes = Buffer.from(good);
    for (const loc of blobsOf(pack)) bytes[loc.offset + Math.floor(loc.length / 2)]! ^= 0x40;
    await storage.remove({ type: 'data', name: pack });
    await storage.save({ type: 'data', name: pack }, bytes);
    const before = await files();
    const repo = await open();
    await expect(prune(repo, { maxUnused: parseMaxUnused('0%') })).rejects.toThrow(
      new RegExp(`data/${pack.slice(0, 2)}/${pack}: data blob [0-9a-f]{64}, which a snapshot uses, cannot be read \\(.*authentication failed.*\\); nothing was deleted. Run \`kiwi repair packs ${pack.slice(0, 12)}\` first`),
    );
    await repo.close();
    // Every file is still there (new packs of the blobs copied before may have been added: unindexed, reclaimable).
    const after = await files();
    for (const f of before) expect(after, f).toContain(f);
    expect(after.filter((f) => f.startsWith('index/'))).toEqual(before.filter((f) => f.startsWith('index/')));

    await storage.remove({ type: 'data', name: pack });
    await storage.save({ type: 'data', name: pack }, good);
    const fixed = await open();
    const done = await prune(fixed, { maxUnused: parseMaxUnused('0%') });
    expect(done.repackedPacks).toContain(pack);
    expect((await fixed.check({ readData: true })).errors).toEqual([]);
    await fixed.close();
  });

  it('passes a storage failure on as it is (not as damage), reading trees or repacking; removes nothing; leaves no read running', async () => {
    const { storage, plan, files, blobsOf, treePack } = await repackable();
    const dataPack = plan.repackedPacks.find((p) => blobsOf(p).every((l) => l.type === 'data'));
    expect(treePack && dataPack).toBeTruthy();
    const before = await files();
    // Every read of a pack of trees fails (read first, to find the used blobs); then of a pack of data
    // (read only to repack it).
    for (const failing of [treePack!, dataPack!]) {
      let loads = 0;
      let settled = 0;
      let failed = 0;
      const load = async (h: Handle, o?: Parameters<Storage['load']>[1]) => {
        loads++;
        try {
          if (h.type === 'data' && h.name === failing) {
            failed++;
            throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
          }
          return await storage.load(h, o);
        } finally {
          settled++;
        }
      };
      const flaky = new Proxy(storage, {
        get: (target, key) => {
          if (key === 'load') return load;
          const value = Reflect.get(target, key) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const repo = await Repository.open(flaky, 'test-password', { kdf: KDF, logger: quiet });
      const err = (await prune(repo, { maxUnused: parseMaxUnused('0%') }).catch((e: unknown) => e)) as Error;
      expect(failed, failing).toBeGreaterThan(0);
      expect(err.message).toMatch(/EIO: i\/o error/);
      // Not damage: no repair to run (the same prune succeeds once the store reads again).
      expect(err.name).not.toBe('IntegrityError');
      expect(err.message).not.toMatch(/repair|kiwi check/);
      expect(settled).toBe(loads);
      await repo.close();
      const after = await files();
      for (const f of before) expect(after, f).toContain(f);
    }
  });
});

describe('a prune that crashes at any storage operation', () => {
  it('leaves a repository that check --read-data passes and where the kept snapshot restores; the next prune finishes the job', async () => {
    const { src, storage, snaps, open } = await generations(work);
    for (const s of snaps.slice(0, 2)) await storage.remove({ type: 'snapshot', name: s.id });
    // A snapshot of the repository's files, to start each crash from the same state.
    const files = new Map<string, Buffer>();
    const copyIn = async (from: Storage, to: Map<string, Buffer>) => {
      for (const type of ['config', 'key', 'snapshot', 'index', 'data'] as const) {
        for await (const f of from.list(type)) {
          const h: Handle = type === 'config' ? { type, name: 'config' } : { type, name: f.name };
          to.set(`${type}\u0000${h.name}`, Buffer.from(await from.load(h)));
        }
      }
    };
    await copyIn(storage, files);
    const restoreInto = async (to: Storage) => {
      for (const [k, v] of files) {
        const [type, name] = k.split('\u0000') as [Handle['type'], string];
        await to.save({ type, name }, v);
      }
    };
    const { createMemoryStorage } = await import('../../../storage-memory/src/index.js');

    // Count the storage changes (saves and removes) of a full prune.
    const probe = createMemoryStorage('probe');
    await restoreInto(probe);
    let changes = 0;
    const counting = wrap(probe, (h) => {
      if (h.type !== 'lock') changes++;
    });
    let repo = await Repository.open(counting, 'test-password', { kdf: KDF, logger: quiet });
    await prune(repo, { maxUnused: parseMaxUnused('0%') });
    await repo.close();
    expect(changes).toBeGreaterThan(6);

    for (let crashAt = 1; crashAt <= changes; crashAt++) {
      const s = createMemoryStorage(`crash-${crashAt}`);
      await restoreInto(s);
      let n = 0;
      const dying = wrap(s, (h) => {
        if (h.type !== 'lock' && ++n >= crashAt) throw new Error(`simulated crash before change ${crashAt}`);
      });
      repo = await Repository.open(dying, 'test-password', { kdf: KDF, logger: quiet });
      await expect(prune(repo, { maxUnused: parseMaxUnused('0%') })).rejects.toThrow(/simulated crash/);
      await repo.close().catch(() => undefined);
      // The lock file of the dead prune stays behind; it belongs to this (live) process, so remove it as unlock would.
      for await (const f of s.list('lock')) await s.remove({ type: 'lock', name: f.name });

      repo = await Repository.open(s, 'test-password', { kdf: KDF, logger: quiet });
      const report = await repo.check({ readData: true });
      expect(report.errors, `crash before change ${crashAt}`).toEqual([]);
      await expectRestores(work, repo, snaps[2]!.id, snaps[2]!.tree, src, `crash-${crashAt}`);
      await prune(repo, { maxUnused: parseMaxUnused('0%') });
      await repo.close();
      repo = await Repository.open(s, 'test-password', { kdf: KDF, logger: quiet });
      const clean = await repo.check({ readData: true });
      expect(clean.errors, `after the next prune (crash ${crashAt})`).toEqual([]);
      expect(clean.warnings, `after the next prune (crash ${crashAt})`).toEqual([]);
      await repo.close();
    }
  });
});

/** `storage` with `before(handle)` called before every save and remove (it may throw). */
function wrap(storage: Storage, before: (h: Handle) => void): Storage {
  return {
    location: storage.location,
    create: () => storage.create(),
    save: async (h, d) => {
      before(h);
      return storage.save(h, d);
    },
    load: (h, o) => storage.load(h, o),
    stat: (h) => storage.stat(h),
    list: (t) => storage.list(t),
    remove: async (h) => {
      before(h);
      return storage.remove(h);
    },
    isNotFound: (e) => storage.isNotFound(e),
    close: () => storage.close(),
  };
}
