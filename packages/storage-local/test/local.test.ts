import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { freemem } from 'node:os';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageError, openStorage, unwrapRetry, type FileType, type Handle } from '@kiwi-backup/core';
import { deterministicBytes, sha256Hex } from '@kiwi-backup/storage-testkit';
import { DIR_MODE, FILE_MODE, MAX_READ, TEMP_PREFIX, createLocalStorage, localAdapter, mapError } from '../src/index.js';

let base: string;
let repo: string;
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'kiwi-local-'));
  repo = join(base, 'repo');
});
afterEach(async () => {
  await chmod(base, 0o700).catch(() => undefined);
  await rm(base, { recursive: true, force: true });
});

const dataHandle = (data: Uint8Array): Handle => ({ type: 'data', name: sha256Hex(data) });

/** Every name `list(type)` yields, with its size. */
async function listed(s: { list(type: FileType): AsyncIterable<{ name: string; size: number }> }, type: FileType): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const f of s.list(type)) {
    expect(out.has(f.name), `${f.name} listed twice`).toBe(false);
    out.set(f.name, f.size);
  }
  return out;
}

describe('local storage layout and modes', () => {
  it('create() makes the layout with private modes and refuses an existing repository', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const entries = (await readdir(repo)).sort();
    expect(entries).toEqual(['data', 'index', 'keys', 'locks', 'snapshots']);
    expect((await readdir(join(repo, 'data'))).length).toBe(256);
    expect((await stat(repo)).mode & 0o777).toBe(DIR_MODE);
    expect((await stat(join(repo, 'data', 'ff'))).mode & 0o777).toBe(DIR_MODE);

    const data = deterministicBytes(1000, 'layout');
    await s.save(dataHandle(data), data);
    const path = join(repo, 'data', sha256Hex(data).slice(0, 2), sha256Hex(data));
    expect(await readFile(path)).toEqual(data);
    expect((await stat(path)).mode & 0o777).toBe(FILE_MODE);
    await s.save({ type: 'config', name: 'config' }, Buffer.from('cfg'));
    expect(await readFile(join(repo, 'config'), 'utf8')).toBe('cfg');

    // saveFrom of a file (copied by the kernel) gets the repository's mode, not the source file's.
    const copied = deterministicBytes(300_000, 'layout-copy');
    const source = join(base, 'source-file');
    await writeFile(source, copied, { mode: 0o644 });
    await s.saveFrom!(dataHandle(copied), { size: copied.byteLength, path: source, open: () => [copied][Symbol.iterator]() as never });
    const copiedPath = join(repo, 'data', sha256Hex(copied).slice(0, 2), sha256Hex(copied));
    expect((await readFile(copiedPath)).equals(copied)).toBe(true);
    expect((await stat(copiedPath)).mode & 0o777).toBe(FILE_MODE);
    expect((await readdir(join(repo, 'data', sha256Hex(copied).slice(0, 2)))).filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);

    const err = (await s.create().catch((e: unknown) => e)) as StorageError;
    expect(err).toBeInstanceOf(StorageError);
    expect(err.kind).toBe('config');
    expect(err.message).toContain(`cannot create a repository in ${repo}: it already holds one (${join(repo, 'config')} exists)`);
  });

  it('create() accepts an existing empty directory', async () => {
    await mkdir(repo);
    await createLocalStorage(repo).create();
    expect((await readdir(repo)).length).toBe(5);
  });

  it('a repository without its directories still works: list is empty, save makes the directory', async () => {
    await mkdir(repo);
    const s = createLocalStorage(repo);
    for await (const _ of s.list('data')) throw new Error('unexpected file');
    for await (const _ of s.list('snapshot')) throw new Error('unexpected file');
    const data = deterministicBytes(10, 'nodirs');
    await s.save(dataHandle(data), data);
    await s.save({ type: 'snapshot', name: 'abc' }, data);
    expect(await s.load(dataHandle(data))).toEqual(data);
    expect(await s.load({ type: 'snapshot', name: 'abc' })).toEqual(data);
  });
  it('a save into a repository directory that does not exist says so', async () => {
    const s = createLocalStorage(repo);
    const err = (await s.save({ type: 'config', name: 'config' }, Buffer.from('x')).catch((e: unknown) => e)) as StorageError;
    expect(err.message).toBe(`save ${join(repo, 'config')}: the repository directory ${repo} does not exist`);
    await expect(readdir(repo)).rejects.toThrow(/ENOENT/);
  });
});

describe('atomic saves', () => {
  it('a crash between the temp write and the rename leaves no visible file', async () => {
    let paused!: () => void;
    const reachedRename = new Promise<void>((r) => (paused = r));
    let crash!: (err: Error) => void;
    const s = createLocalStorage(repo, {
      beforeRename: () => {
        paused();
        // The process "dies" here: the rename never happens.
        return new Promise<void>((_, reject) => (crash = reject));
      },
    });
    await s.create();
    const data = deterministicBytes(3 * 1024 * 1024, 'crash');
    const h = dataHandle(data);
    const saving = s.save(h, data);
    await reachedRename;

    // The temp file is complete on disk...
    const dir = join(repo, 'data', h.name.slice(0, 2));
    const temps = (await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX));
    expect(temps).toHaveLength(1);
    expect(temps[0]).toMatch(/^\.tmp-[0-9a-f]{16}$/);
    expect((await lstat(join(dir, temps[0]!))).size).toBe(data.length);
    // ...but another process sees no file.
    const reader = createLocalStorage(repo);
    const listed: string[] = [];
    for await (const f of reader.list('data')) listed.push(f.name);
    expect(listed).toEqual([]);
    await expect(reader.stat(h)).rejects.toSatisfy((e) => reader.isNotFound(e));
    await expect(reader.load(h)).rejects.toSatisfy((e) => reader.isNotFound(e));

    // After the "crash" a new save of the same file succeeds and the stale temp file stays hidden.
    await reader.save(h, data);
    for await (const f of reader.list('data')) listed.push(f.name);
    expect(listed).toEqual([h.name]);
    expect((await reader.load(h)).equals(data)).toBe(true);

    // Let the paused save fail: it removes its own temp file.
    crash(new Error('simulated crash'));
    await expect(saving).rejects.toThrow(/simulated crash/);
    expect((await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);
  });

  it('a failed save leaves neither the target nor a temp file', async () => {
    const s = createLocalStorage(repo, {
      beforeRename: () => {
        throw new Error('disk unplugged');
      },
    });
    await s.create();
    const data = deterministicBytes(1000, 'fail');
    await expect(s.save(dataHandle(data), data)).rejects.toThrow(/disk unplugged/);
    expect(await readdir(join(repo, 'data', sha256Hex(data).slice(0, 2)))).toEqual([]);
  });

  it('list skips temp files and non-files', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    await writeFile(join(repo, 'snapshots', '.tmp-0123456789abcdef'), 'partial');
    await mkdir(join(repo, 'snapshots', 'somedir'));
    await writeFile(join(repo, 'snapshots', 'realone'), 'x');
    const names: string[] = [];
    for await (const f of s.list('snapshot')) names.push(f.name);
    expect(names).toEqual(['realone']);
  });

  it('symlinked files and data subdirectories (moved to another disk) are listed and loaded alike; dangling ones and FIFOs are not there', async () => {
    const { execFileSync } = await import('node:child_process');
    const { rename, symlink } = await import('node:fs/promises');
    const s = createLocalStorage(repo);
    await s.create();
    const a = deterministicBytes(3000, 'moved pack');
    const b = deterministicBytes(2000, 'moved dir');
    await s.save(dataHandle(a), a);
    await s.save(dataHandle(b), b);
    const other = join(base, 'other-disk');
    await mkdir(other);
    // One pack file moved and linked back; one whole data/xx directory moved and linked back.
    const aPath = join(repo, 'data', sha256Hex(a).slice(0, 2), sha256Hex(a));
    await rename(aPath, join(other, 'a'));
    await symlink(join(other, 'a'), aPath);
    const bDir = join(repo, 'data', sha256Hex(b).slice(0, 2));
    if (bDir !== dirname(aPath)) {
      await rename(bDir, join(other, 'bdir'));
      await symlink(join(other, 'bdir'), bDir);
    }
    // A dangling link, and a FIFO where a pack should be.
    await symlink(join(other, 'gone'), join(repo, 'data', 'ab', 'ab'.repeat(32)));
    execFileSync('mkfifo', [join(repo, 'data', 'cd', 'cd'.repeat(32))]);
    const listed = new Map<string, number>();
    for await (const f of s.list('data')) listed.set(f.name, f.size);
    expect(listed).toEqual(new Map([[sha256Hex(a), 3000], [sha256Hex(b), 2000]]));
    expect(await s.load(dataHandle(a))).toEqual(a);
    expect(await s.load(dataHandle(b))).toEqual(b);
    // Neither hangs; both are "not found", as the listing says.
    for (const name of ['ab'.repeat(32), 'cd'.repeat(32)]) {
      const err = await s.load({ type: 'data', name }).catch((e: unknown) => e);
      expect(s.isNotFound(err), name).toBe(true);
      expect(s.isNotFound(await s.stat({ type: 'data', name }).catch((e: unknown) => e)), name).toBe(true);
    }
    expect(String(await s.load({ type: 'data', name: 'cd'.repeat(32) }).catch((e: unknown) => e))).toMatch(/not a regular file/);
  });
});

describe('list yields only what load reads: misplaced, foreign and unreadable entries are skipped with a warning', () => {
  it('a pack outside its data/xx directory is not listed: neither a 2-byte copy under a real pack\'s name nor a moved pack', async () => {
    const warnings: string[] = [];
    const s = createLocalStorage(repo, { onWarning: (m) => warnings.push(m) });
    await s.create();
    const pack = deterministicBytes(5000, 'real pack');
    const real = dataHandle(pack);
    await s.save(real, pack);
    const wrong = real.name.startsWith('00') ? 'ff' : '00';
    // `echo x > data/00/<P>`: before, list said P has 2 bytes (check: truncated; repair index, prune: gone).
    const copy = join(repo, 'data', wrong, real.name);
    await writeFile(copy, 'x\n');
    // `mv data/a8/<Q> data/00/<Q>`: before, Q was listed though load cannot find it.
    const movedBytes = deterministicBytes(3000, 'moved pack');
    const moved = dataHandle(movedBytes);
    const movedPath = join(repo, 'data', moved.name.startsWith('00') ? 'ff' : '00', moved.name);
    await writeFile(movedPath, movedBytes);
    // A pack at the top of data/, and a directory that is not data/<2 hex>.
    await writeFile(join(repo, 'data', moved.name), movedBytes);
    await mkdir(join(repo, 'data', 'old'));
    await writeFile(join(repo, 'data', 'old', real.name), pack);

    expect(await listed(s, 'data')).toEqual(new Map([[real.name, 5000]]));
    expect((await s.stat(real)).size).toBe(5000);
    expect(s.isNotFound(await s.load(moved).catch((e: unknown) => e))).toBe(true);
    expect(warnings.sort()).toEqual(
      [
        `list data: skipped ${copy}: a pack of that name belongs in data/${real.name.slice(0, 2)}/, where it is loaded from`,
        `list data: skipped ${movedPath}: a pack of that name belongs in data/${moved.name.slice(0, 2)}/, where it is loaded from`,
        `list data: skipped ${join(repo, 'data', moved.name)}: not a pack directory (data/00 … data/ff)`,
        `list data: skipped ${join(repo, 'data', 'old')}: not a pack directory (data/00 … data/ff)`,
      ].sort(),
    );
    // Each entry is reported once per storage, however often it lists.
    expect(await listed(s, 'data')).toEqual(new Map([[real.name, 5000]]));
    expect(warnings).toHaveLength(4);
  });

  it('names that are not valid for the type are skipped, not thrown (core refuses them)', async () => {
    const warnings: string[] = [];
    const s = createLocalStorage(repo, { onWarning: (m) => warnings.push(m) });
    await s.create();
    const idx = deterministicBytes(100, 'index');
    await s.save({ type: 'index', name: sha256Hex(idx) }, idx);
    await writeFile(join(repo, 'index', 'a b'), 'x');
    await writeFile(join(repo, 'keys', 'key@host'), 'x');
    const pack = 'ab'.repeat(32);
    for (const name of ['ab', `${pack}.bak`, `AB${pack.slice(2)}`, `${pack.slice(0, 62)}zz`]) await writeFile(join(repo, 'data', 'ab', name), 'x');
    expect(await listed(s, 'index')).toEqual(new Map([[sha256Hex(idx), 100]]));
    expect(await listed(s, 'key')).toEqual(new Map());
    expect(await listed(s, 'data')).toEqual(new Map());
    expect(warnings).toContain(`list index: skipped ${join(repo, 'index', 'a b')}: not a valid index file name`);
    expect(warnings).toContain(`list key: skipped ${join(repo, 'keys', 'key@host')}: not a valid key file name`);
    expect(warnings).toContain(`list data: skipped ${join(repo, 'data', 'ab', 'ab')}: not a pack file name (64 lowercase hex digits)`);
    expect(warnings).toHaveLength(6);
    // Through the retry layer core uses, too: the listing completes.
    const wrapped = await openStorage(repo, { adapters: { local: localAdapter }, options: { local: { onWarning: () => undefined } } });
    expect(await listed(wrapped, 'index')).toEqual(new Map([[sha256Hex(idx), 100]]));
  });

  it('a symlink loop (ELOOP) in locks/, keys/, data/xx/ or data/ is skipped, not a failed listing', async () => {
    const { symlink } = await import('node:fs/promises');
    const warnings: string[] = [];
    const s = createLocalStorage(repo, { onWarning: (m) => warnings.push(m) });
    await s.create();
    const lock = deterministicBytes(50, 'lock');
    await s.save({ type: 'lock', name: sha256Hex(lock) }, lock);
    const pack = deterministicBytes(500, 'pack');
    await s.save(dataHandle(pack), pack);
    // `ln -s x locks/x`, and loops under valid names.
    await symlink('x', join(repo, 'locks', 'x'));
    await symlink('loop', join(repo, 'keys', 'loop'));
    const loopPack = 'ee'.repeat(32);
    await symlink(loopPack, join(repo, 'data', 'ee', loopPack));
    await symlink('x', join(repo, 'data', 'ee', 'x'));
    await rm(join(repo, 'data', 'ef'), { recursive: true });
    await symlink('ef', join(repo, 'data', 'ef'));
    expect(await listed(s, 'lock')).toEqual(new Map([[sha256Hex(lock), 50]]));
    expect(await listed(s, 'key')).toEqual(new Map());
    expect(await listed(s, 'data')).toEqual(new Map([[sha256Hex(pack), 500]]));
    expect(warnings).toContain(`list lock: skipped ${join(repo, 'locks', 'x')}: cannot be read (ELOOP)`);
    expect(warnings).toContain(`list key: skipped ${join(repo, 'keys', 'loop')}: cannot be read (ELOOP)`);
    expect(warnings).toContain(`list data: skipped ${join(repo, 'data', 'ee', loopPack)}: cannot be read (ELOOP)`);
    expect(warnings).toContain(`list data: skipped ${join(repo, 'data', 'ef')}: not a pack directory (data/00 … data/ff)`);
  });

  it('warns through process.emitWarning by default; a throwing onWarning changes nothing', async () => {
    const emit = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const s = createLocalStorage(repo);
      await s.create();
      await writeFile(join(repo, 'snapshots', 'a b'), 'x');
      expect(await listed(s, 'snapshot')).toEqual(new Map());
      expect(emit).toHaveBeenCalledWith(`list snapshot: skipped ${join(repo, 'snapshots', 'a b')}: not a valid snapshot file name`, 'KiwiWarning');
    } finally {
      emit.mockRestore();
    }
    const s = createLocalStorage(repo, {
      onWarning: () => {
        throw new Error('broken logger');
      },
    });
    expect(await listed(s, 'snapshot')).toEqual(new Map());
  });
});

describe('temporary files of interrupted saves', () => {
  it('removeTemporaries removes those older than the limit, keeps newer ones and everything else', async () => {
    const { utimes } = await import('node:fs/promises');
    const s = createLocalStorage(repo);
    await s.create();
    const data = deterministicBytes(1000, 'kept');
    await s.save(dataHandle(data), data);
    const old = Date.now() / 1000 - 3600;
    const stale = [join(repo, 'data', 'ab', `${TEMP_PREFIX}0001`), join(repo, 'snapshots', `${TEMP_PREFIX}0002`), join(repo, 'index', `${TEMP_PREFIX}0003`)];
    for (const p of stale) {
      await writeFile(p, Buffer.alloc(100));
      await utimes(p, old, old);
    }
    const fresh = join(repo, 'data', 'cd', `${TEMP_PREFIX}0004`);
    await writeFile(fresh, 'being written');
    expect(await s.removeTemporaries!(15 * 60 * 1000)).toEqual({ files: 3, bytes: 300 });
    for (const p of stale) await expect(stat(p)).rejects.toThrow();
    expect((await stat(fresh)).size).toBe(13);
    expect(await s.load(dataHandle(data))).toEqual(data);
    expect(await s.removeTemporaries!(15 * 60 * 1000)).toEqual({ files: 0, bytes: 0 });
  });
});

describe('temporary files in a symlinked data directory', () => {
  it('removeTemporaries looks inside a data/xx that is a symlink to another disk, as list and load follow it', async () => {
    const { rename, symlink, utimes } = await import('node:fs/promises');
    const s = createLocalStorage(repo);
    await s.create();
    const data = deterministicBytes(1000, 'moved');
    await s.save(dataHandle(data), data);
    const sub = dataHandle(data).name.slice(0, 2);
    // data/<sub> moved elsewhere and linked back.
    const elsewhere = `${repo}-elsewhere`;
    await mkdir(elsewhere);
    await rename(join(repo, 'data', sub), join(elsewhere, sub));
    await symlink(join(elsewhere, sub), join(repo, 'data', sub));
    const stale = join(elsewhere, sub, `${TEMP_PREFIX}0001`);
    await writeFile(stale, Buffer.alloc(100));
    const old = Date.now() / 1000 - 3600;
    await utimes(stale, old, old);
    try {
      expect(await s.removeTemporaries!(15 * 60 * 1000)).toEqual({ files: 1, bytes: 100 });
      await expect(stat(stale)).rejects.toThrow();
      expect(await s.load(dataHandle(data))).toEqual(data);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('loads into a caller buffer (LoadOptions.into)', () => {
  it('reads a range straight into into and returns a view of its first length bytes', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const data = deterministicBytes(100_000, 'into');
    const h = dataHandle(data);
    await s.save(h, data);
    const into = Buffer.alloc(70_000, 0xab);
    const got = await s.load(h, { offset: 12_345, length: 65_536, into });
    expect(got.buffer).toBe(into.buffer);
    expect(got.byteOffset).toBe(into.byteOffset);
    expect(got.equals(data.subarray(12_345, 12_345 + 65_536))).toBe(true);
    expect(into.subarray(65_536).every((b) => b === 0xab)).toBe(true);
    // Reused for the next load: a view again, with the new bytes.
    const next = await s.load(h, { offset: 0, length: 10, into });
    expect(next.buffer).toBe(into.buffer);
    expect(next.equals(data.subarray(0, 10))).toBe(true);
  });

  it('allocates instead when into is too short or no length is given, and never touches into', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const data = deterministicBytes(5000, 'into-short');
    const h = dataHandle(data);
    await s.save(h, data);
    const into = Buffer.alloc(999, 0xab);
    const got = await s.load(h, { offset: 1, length: 1000, into });
    expect(got.buffer).not.toBe(into.buffer);
    expect(got.equals(data.subarray(1, 1001))).toBe(true);
    const whole = await s.load(h, { offset: 4500, into });
    expect(whole.equals(data.subarray(4500))).toBe(true);
    expect(into.every((b) => b === 0xab)).toBe(true);
  });

  it('a file that shrank still fails the load into a caller buffer, naming the file', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const data = deterministicBytes(5000, 'into-shrunk');
    const h = dataHandle(data);
    await s.save(h, data);
    const path = join(repo, 'data', h.name.slice(0, 2), h.name);
    await truncate(path, 3000);
    await expect(s.load(h, { offset: 1000, length: 4000, into: Buffer.alloc(4000) })).rejects.toThrow(
      `load ${path}: range 1000+4000 is past the end of the file (3000 bytes)`,
    );
  });
});

describe('files too large for one read', () => {
  it('a load reads in pieces of at most maxRead bytes', async () => {
    const s = createLocalStorage(repo, { maxRead: 4096 });
    await s.create();
    const data = deterministicBytes(100_003, 'pieces');
    const h = dataHandle(data);
    await s.save(h, data);
    expect((await s.load(h)).equals(data)).toBe(true);
    expect((await s.load(h, { offset: 5000, length: 50_001 })).equals(data.subarray(5000, 55_001))).toBe(true);
    expect((await s.load(h, { offset: 1, length: 90_000, into: Buffer.alloc(90_000) })).equals(data.subarray(1, 90_001))).toBe(true);
    expect(MAX_READ).toBeLessThan(2 ** 31);
  });

  // `truncate -s 3G index/eeee…e` made every command abort (exit 134, `Assertion failed: args[3]->IsInt32()`):
  // one fs.read of 2^31 bytes or more. 2 GiB of memory for the buffer; the file is sparse.
  it.skipIf(freemem() < 6 * 1024 ** 3)('a file of 2^31 bytes or more loads (in pieces) instead of aborting the process', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const name = 'e'.repeat(64);
    const path = join(repo, 'index', name);
    const size = 2 ** 31 + 4096;
    await writeFile(path, '');
    await truncate(path, size);
    let got: Buffer | undefined = await s.load({ type: 'index', name });
    expect(got.byteLength).toBe(size);
    expect(got[0]).toBe(0);
    expect(got[size - 1]).toBe(0);
    got = undefined;
    const tail = await s.load({ type: 'index', name }, { offset: size - 10, length: 10 });
    expect(tail.equals(Buffer.alloc(10))).toBe(true);
  }, 120_000);

  it('a file larger than a Buffer can hold is refused with a StorageError naming it', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const name = 'e'.repeat(64);
    const path = join(repo, 'index', name);
    await writeFile(path, '');
    await truncate(path, bufferConstants.MAX_LENGTH + 1);
    const err = (await s.load({ type: 'index', name }).catch((e: unknown) => e)) as StorageError;
    expect(err).toBeInstanceOf(StorageError);
    expect(err.kind).toBe('other');
    expect(s.isNotFound(err)).toBe(false);
    expect(err.message).toBe(
      `load ${path}: ${bufferConstants.MAX_LENGTH + 1} bytes are more than can be loaded at once (at most ${bufferConstants.MAX_LENGTH}); no repository file is that large`,
    );
    // A range of it still loads.
    expect((await s.load({ type: 'index', name }, { offset: bufferConstants.MAX_LENGTH - 4, length: 5 })).equals(Buffer.alloc(5))).toBe(true);
    // The listing gives its size, as before.
    expect(await listed(s, 'index')).toEqual(new Map([[name, bufferConstants.MAX_LENGTH + 1]]));
  });
});

describe('errors name the path', () => {
  it('a ranged load of a file that became shorter fails, naming the file', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const data = deterministicBytes(5000, 'short');
    const h = dataHandle(data);
    await s.save(h, data);
    const path = join(repo, 'data', h.name.slice(0, 2), h.name);
    await truncate(path, 3000);
    await expect(s.load(h, { offset: 1000, length: 4000 })).rejects.toThrow(
      `load ${path}: range 1000+4000 is past the end of the file (3000 bytes)`,
    );
    expect((await s.load(h, { offset: 2000, length: 1000 })).equals(data.subarray(2000, 3000))).toBe(true);
  });

  it('a missing file is not-found and names the path', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const err = (await s.load({ type: 'key', name: 'nope' }).catch((e: unknown) => e)) as StorageError;
    expect(s.isNotFound(err)).toBe(true);
    expect(err.message).toBe(`load ${join(repo, 'keys', 'nope')}: no such file`);
  });

  it('a permission error names the path and is not retried', async () => {
    const s = createLocalStorage(repo);
    await s.create();
    const data = deterministicBytes(100, 'perm');
    const h = dataHandle(data);
    await s.save(h, data);
    const file = join(repo, 'data', h.name.slice(0, 2), h.name);
    const results: unknown[] = [];
    const isRoot = process.getuid?.() === 0;
    if (isRoot) {
      // Root ignores file modes: drop to "nobody" for the duration of the calls.
      process.setegid!(65534);
      process.seteuid!(65534);
    } else {
      await chmod(repo, 0o000);
    }
    try {
      results.push(await s.load(h).catch((e: unknown) => e));
      results.push(await s.save({ type: 'snapshot', name: 'abc' }, data).catch((e: unknown) => e));
    } finally {
      if (isRoot) {
        process.seteuid!(0);
        process.setegid!(0);
      } else {
        await chmod(repo, 0o700);
      }
    }
    const [loadErr, saveErr] = results as StorageError[];
    expect(loadErr).toBeInstanceOf(StorageError);
    expect(loadErr!.kind).toBe('permission');
    expect(loadErr!.message).toBe(`load ${file}: permission denied (EACCES)`);
    expect(s.isNotFound(loadErr)).toBe(false);
    expect(saveErr!.kind).toBe('permission');
    expect(saveErr!.message).toContain(join(repo, 'snapshots', 'abc'));
  });

  it('maps disk-full, quota, read-only and busy errors', () => {
    const e = (code: string) => Object.assign(new Error(`${code}: boom`), { code });
    const full = mapError(e('ENOSPC'), 'save', '/r/data/ab/abc');
    expect([full.kind, full.message]).toEqual(['other', 'save /r/data/ab/abc: no space left on the device']);
    expect(mapError(e('EDQUOT'), 'save', '/r/x').message).toBe('save /r/x: disk quota exceeded');
    expect(mapError(e('EROFS'), 'save', '/r/x').kind).toBe('permission');
    expect(mapError(e('EPERM'), 'remove', '/r/x').message).toBe('remove /r/x: permission denied (EPERM)');
    expect(mapError(e('EMFILE'), 'load', '/r/x').kind).toBe('transient');
    expect(mapError(e('EIO'), 'load', '/r/x').message).toBe('load /r/x: EIO: boom');
  });
});

describe('localAdapter', () => {
  it('opens local: URLs and bare paths through openStorage', async () => {
    for (const url of [`local:${repo}`, repo]) {
      const s = await openStorage(url, { adapters: { local: localAdapter }, options: { local: { fsync: false } } });
      expect(unwrapRetry(s).location).toBe(repo);
      await s.create().catch((err: unknown) => {
        if (!(err instanceof StorageError && err.kind === 'config')) throw err;
      });
      await s.save({ type: 'config', name: 'config' }, Buffer.from(url));
      expect((await readFile(join(repo, 'config'))).toString()).toBe(url);
    }
  });

  it('rejects a bad fsync or onWarning option and a non-local URL', () => {
    expect(() => localAdapter.open(repo, { fsync: 'yes' as never }, {})).toThrow(/fsync must be true or false/);
    expect(() => localAdapter.open(repo, { onWarning: 'log' as never }, {})).toThrow(/onWarning must be a function/);
    expect(() => localAdapter.open('s3:bucket', {}, {})).toThrow(/not a local path/);
  });
});
