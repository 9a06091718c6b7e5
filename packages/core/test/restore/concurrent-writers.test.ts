/**
 * The restore's concurrent writers (files.ts, native-fs `writeFile`): one-blob files are written by
 * threadpool jobs, several at once (one directory's files one after another). These tests look for
 * what a race would break: files sharing blobs written from one buffer while other files are in
 * flight, a damaged blob failing exactly its files, and a stop while files wait for their turn.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { restoreSnapshot, runBackup } from '../../src/index.js';
import { nativeFs } from '../../src/native/native-fs.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

const native = nativeFs();
const MODES = [0o644, 0o600, 0o755, 0o640, 0o444, 0o700];

interface SourceFile {
  data: Buffer;
  mode: number;
  mtimeNs: bigint;
}

/** `dirs` directories of `perDir` files whose contents are drawn from `payloads` distinct ones (shared blobs). */
async function makeTree(src: string, dirs: number, perDir: number, payloads: Buffer[]): Promise<Map<string, SourceFile>> {
  const files = new Map<string, SourceFile>();
  for (let d = 0; d < dirs; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < perDir; f++) {
      const rel = `d${d}/f${f}`;
      const data = payloads[(d * 7 + f * 3) % payloads.length]!;
      const mode = MODES[(d + f) % MODES.length]!;
      // Distinct sub-microsecond digits: a lost nanosecond shows.
      const mtimeNs = 1_700_000_000_000_000_000n + BigInt(d * 1_000_003 + f * 7919 + 123);
      const p = join(src, rel);
      await writeFile(p, data);
      await chmod(p, mode);
      if (native) await native.lutimens(Buffer.from(p), mtimeNs, mtimeNs);
      files.set(rel, { data, mode, mtimeNs: native ? mtimeNs : (await lstat(p, { bigint: true })).mtimeNs });
    }
  }
  return files;
}

async function expectRestored(root: string, files: Map<string, SourceFile>, except: Set<string> = new Set()): Promise<void> {
  for (const [rel, want] of files) {
    const p = join(root, rel);
    if (except.has(rel)) {
      expect(existsSync(p), rel).toBe(false);
      continue;
    }
    expect((await readFile(p)).equals(want.data), rel).toBe(true);
    const st = await lstat(p, { bigint: true });
    expect(Number(st.mode) & 0o7777, rel).toBe(want.mode);
    if (native) expect(st.mtimeNs, rel).toBe(want.mtimeNs);
  }
}

async function tempFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.name.includes('.kiwi-restore-')) out.push(p);
    if (e.isDirectory()) out.push(...(await tempFiles(p)));
  }
  return out;
}

/** Counts the files written by native-fs `writeFilesAt`/`writeFiles`/`writeFile` (FileWriter takes them when the restore starts); `remove` takes them away instead. */
function patchNative(remove = false): { calls: () => number; restore: () => void } {
  const mod = native;
  const origAt = mod?.writeFilesAt;
  const origMany = mod?.writeFiles;
  const origOne = mod?.writeFile;
  let n = 0;
  if (mod) {
    if (remove) {
      mod.writeFilesAt = undefined;
      mod.writeFiles = undefined;
      mod.writeFile = undefined;
    } else {
      if (origAt)
        mod.writeFilesAt = (fd, files) => {
          n += files.length;
          return origAt.call(mod, fd, files);
        };
      if (origMany)
        mod.writeFiles = (files) => {
          n += files.length;
          return origMany.call(mod, files);
        };
      if (origOne)
        mod.writeFile = (...args) => {
          n++;
          return origOne.apply(mod, args);
        };
    }
  }
  return {
    calls: () => n,
    restore: () => {
      if (mod) {
        mod.writeFilesAt = origAt;
        mod.writeFiles = origMany;
        mod.writeFile = origOne;
      }
    },
  };
}

describe('concurrent file writers', () => {
  it('restore files of many directories that share blobs exactly (bytes, mode, ns mtime), each blob read once', async () => {
    const src = join(work, 'src');
    // (Up to 1 KiB: one blob each with the test repository's chunker, whose smallest chunk is 1 KiB.)
    const payloads = Array.from({ length: 9 }, (_, i) => pseudoRandom(100 + i * 115, i + 1));
    const files = await makeTree(src, 12, 40, payloads);
    const { repo, reopen } = await memoryRepository({ packSize: 64 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    await repo.close();
    const repo2 = await reopen();
    const requested: string[] = [];
    const spied = Object.create(repo2) as Repository;
    spied.loadBlobs = (type, ids, onBlob, opts) => {
      if (type === 'data') requested.push(...ids);
      return repo2.loadBlobs(type, ids, onBlob, opts);
    };
    const patch = patchNative();
    try {
      const target = join(work, 'out');
      const rr = await restoreSnapshot({ repository: spied, snapshotId: res.snapshotId!, target });
      expect(rr.errors).toEqual([]);
      expect(rr.filesRestored).toBe(files.size);
      await expectRestored(join(target, src), files);
      expect(await tempFiles(target)).toEqual([]);
      // 480 files, 9 distinct contents: a blob is read once per window at most and written to every file that uses it.
      expect(new Set(requested).size).toBe(payloads.length);
      expect(requested.length).toBeLessThan(files.size / 10);
      if (native?.writeFiles) expect(patch.calls()).toBe(files.size);
    } finally {
      patch.restore();
    }
    await repo2.close();
  });

  it('without native-fs writeFiles/writeFile (an older addon), the same tree comes back exactly on the JS path', async () => {
    const src = join(work, 'src');
    const payloads = Array.from({ length: 5 }, (_, i) => pseudoRandom(500 + i * 1500, i + 20));
    const files = await makeTree(src, 4, 25, payloads);
    const { repo, reopen } = await memoryRepository({ packSize: 64 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    await repo.close();
    const repo2 = await reopen();
    const patch = patchNative(true);
    try {
      const target = join(work, 'out');
      const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target });
      expect(rr.errors).toEqual([]);
      await expectRestored(join(target, src), files);
      expect(await tempFiles(target)).toEqual([]);
    } finally {
      patch.restore();
    }
    await repo2.close();
  });

  it('a native writeFiles that throws at once (an addon that does not match) fails those files; the restore ends, no temporary file left', async () => {
    if (!native?.writeFiles) {
      expect(process.env.CI, 'CI builds native-fs with writeFiles').not.toBe('true');
      return;
    }
    const src = join(work, 'src');
    const payloads = Array.from({ length: 3 }, (_, i) => pseudoRandom(300 + i * 700, i + 60));
    await makeTree(src, 3, 10, payloads);
    const { repo, reopen } = await memoryRepository({ packSize: 64 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    await repo.close();
    const repo2 = await reopen();
    const orig = native.writeFiles;
    const origAt = native.writeFilesAt;
    native.writeFiles = () => {
      throw new TypeError('binding.writeFiles is not a function');
    };
    if (origAt)
      native.writeFilesAt = () => {
        throw new TypeError('binding.writeFilesAt is not a function');
      };
    try {
      const target = join(work, 'out');
      const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target });
      // Files that share a blob with one written natively may be written by the other paths (the
      // synchronous one while its calls are fast, else the async one): how many go native depends on
      // timing. Every file is either restored or failed with the addon's error, and at least the
      // natively written ones failed.
      expect(rr.errors.length).toBeGreaterThanOrEqual(3);
      for (const e of rr.errors) expect(e.message).toMatch(/not a function/);
      expect(rr.errors.length + rr.filesRestored).toBe(30);
      expect(await tempFiles(target)).toEqual([]);
    } finally {
      native.writeFiles = orig;
      native.writeFilesAt = origAt;
    }
    await repo2.close();
  }, 20_000);

  it('a damaged blob fails exactly the files that use it (in several directories); the rest is exact, no temporary file left', async () => {
    const src = join(work, 'src');
    const payloads = Array.from({ length: 7 }, (_, i) => pseudoRandom(200 + i * 130, i + 40));
    const files = await makeTree(src, 8, 30, payloads);
    const { repo, storage, reopen } = await memoryRepository({ packSize: 256 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    await repo.close();
    const repo2 = await reopen();
    await repo2.loadIndex();
    const victim = payloads[3]!;
    const loc = repo2.lookupBlob('data', repo2.blobId(victim))!;
    const packBytes = await storage.load({ type: 'data', name: loc.pack });
    packBytes[loc.offset + 20]! ^= 0x01;
    await storage.save({ type: 'data', name: loc.pack }, packBytes);
    const users = new Set([...files].filter(([, f]) => f.data === victim).map(([rel]) => rel));
    expect(new Set([...users].map((rel) => rel.split('/')[0])).size).toBeGreaterThan(1);
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target });
    expect(rr.errorCount).toBe(users.size);
    expect(new Set(rr.errors.map((e) => e.path))).toEqual(new Set([...users].map((rel) => join(src, rel))));
    for (const e of rr.errors) expect(e.message).toContain(loc.id);
    expect(rr.filesRestored).toBe(files.size - users.size);
    await expectRestored(join(target, src), files, users);
    expect(await tempFiles(target)).toEqual([]);
    await repo2.close();
  });

  it('a stop while files wait for their directory leaves only complete files and no temporary file', async () => {
    const src = join(work, 'src');
    // Distinct contents (no sharing): many blobs per read, queued per directory.
    const files = new Map<string, SourceFile>();
    for (let d = 0; d < 3; d++) {
      await mkdir(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 200; f++) {
        const rel = `d${d}/f${f}`;
        const data = pseudoRandom(200 + ((f * 37) % 800), d * 1000 + f + 1);
        await writeFile(join(src, rel), data);
        files.set(rel, { data, mode: 0o644, mtimeNs: 0n });
      }
    }
    const { repo, reopen } = await memoryRepository({ packSize: 512 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    await repo.close();
    const repo2 = await reopen();
    const ac = new AbortController();
    const reason = new Error('SIGTERM');
    let delivered = 0;
    const spied = Object.create(repo2) as Repository;
    spied.loadBlobs = (type, ids, onBlob, opts) =>
      repo2.loadBlobs(
        type,
        ids,
        (id, data, err) => {
          if (type === 'data' && ++delivered === 150) ac.abort(reason);
          return onBlob(id, data, err);
        },
        opts,
      );
    const target = join(work, 'out');
    const err = await restoreSnapshot({ repository: spied, snapshotId: res.snapshotId!, target, signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBe(reason);
    expect(await tempFiles(target)).toEqual([]);
    let restored = 0;
    for (const [rel, want] of files) {
      const p = join(target, src, rel);
      if (!existsSync(p)) continue;
      restored++;
      expect((await readFile(p)).equals(want.data), rel).toBe(true);
    }
    expect(restored).toBeLessThan(files.size);
    await repo2.close();
  });

  it('compressed blobs decompressed into reused output buffers and decrypted in place come back exactly, shared by many files', async () => {
    // Blobs of 100-400 KiB (decompressed on the zstd threads into pooled outputs), compressible, each used by several files.
    const common = { kdf: { N: 2 ** 10, r: 8, p: 1 }, logger: { info: () => {}, warn: () => {} } };
    const storage = createMemoryStorage(`cw-${Math.random().toString(36).slice(2)}`);
    const repo = await Repository.init(storage, 'pw', { ...common, chunker: { minSize: 64 * 1024, avgSize: 256 * 1024, maxSize: 512 * 1024 }, packSize: 2 * 1024 * 1024 });
    const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'];
    const text = (size: number, seed: number): Buffer => {
      const noise = pseudoRandom(size, seed);
      let s = '';
      for (let i = 0; s.length < size; i++) s += `${words[noise[i % size]! & 7]}${noise[(i * 7) % size]! & 15} `;
      return Buffer.from(s.slice(0, size));
    };
    const payloads = Array.from({ length: 6 }, (_, i) => text(100 * 1024 + i * 60 * 1024, i + 70));
    const src = join(work, 'src');
    const files = await makeTree(src, 5, 8, payloads);
    const big = Buffer.concat([payloads[2]!, pseudoRandom(700 * 1024, 9), payloads[4]!, text(900 * 1024, 11)]);
    await writeFile(join(src, 'd0', 'big'), big);
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    await repo.close();
    const repo2 = await Repository.open(storage, 'pw', common);
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target });
    expect(rr.errors).toEqual([]);
    await expectRestored(join(target, src), files);
    expect((await readFile(join(target, src, 'd0', 'big'))).equals(big)).toBe(true);
    expect(await tempFiles(target)).toEqual([]);
    await repo2.close();
  });

  it('a whole snapshot into a fresh target makes every directory before the first file; a selection does not', async () => {
    const src = join(work, 'src');
    const files = new Map<string, Buffer>();
    for (const dir of ['a/x/deep', 'a/y', 'b', 'c/empty-below/z']) {
      await mkdir(join(src, dir), { recursive: true });
      const data = pseudoRandom(500 + dir.length, dir.length);
      await writeFile(join(src, dir, 'f'), data);
      files.set(`${dir}/f`, data);
    }
    await mkdir(join(src, 'empty'), { recursive: true });
    const dirs = ['a', 'a/x', 'a/x/deep', 'a/y', 'b', 'c', 'c/empty-below', 'c/empty-below/z', 'empty'];
    const { repo, reopen } = await memoryRepository({ packSize: 64 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    await repo.close();
    const repo2 = await reopen();
    const spyOn = (target: string) => {
      const seen: { dirs: boolean[] | undefined } = { dirs: undefined };
      const spied = Object.create(repo2) as Repository;
      spied.loadBlobs = (type, ids, onBlob, opts) => {
        if (type === 'data' && !seen.dirs) seen.dirs = dirs.map((d) => existsSync(join(target, src, d)));
        return repo2.loadBlobs(type, ids, onBlob, opts);
      };
      return { spied, seen };
    };
    const target = join(work, 'out');
    const { spied, seen } = spyOn(target);
    const rr = await restoreSnapshot({ repository: spied, snapshotId: res.snapshotId!, target });
    expect(rr.errors).toEqual([]);
    expect(seen.dirs).toEqual(dirs.map(() => true));
    for (const [rel, data] of files) expect((await readFile(join(target, src, rel))).equals(data), rel).toBe(true);
    for (const d of dirs) expect((await lstat(join(target, src, d))).mode & 0o777, d).toBe((await lstat(join(src, d))).mode & 0o777);
    expect(await tempFiles(target)).toEqual([]);

    // With --include, only what is selected comes back: no skeleton of the rest.
    const target2 = join(work, 'out2');
    const sel = spyOn(target2);
    const r2 = await restoreSnapshot({ repository: sel.spied, snapshotId: res.snapshotId!, target: target2, include: [join(src, 'a/y')] });
    expect(r2.errors).toEqual([]);
    expect(existsSync(join(target2, src, 'a/y/f'))).toBe(true);
    expect(existsSync(join(target2, src, 'b'))).toBe(false);
    expect(existsSync(join(target2, src, 'a/x'))).toBe(false);
    await repo2.close();
  });
});
