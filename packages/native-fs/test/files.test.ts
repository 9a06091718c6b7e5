import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nfs as n, skipNative as skip } from './load.js';
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kiwi-native-files-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skip)('@kiwi-backup/native-fs: writeFile', () => {
  it('creates the file under the temporary name, sets mode and ns times, and renames it into place', async () => {
    const tmp = join(dir, '.t');
    const final = join(dir, 'f');
    const t = 1_234_567_890_123_456_789n;
    await n!.writeFile(Buffer.from(tmp), Buffer.from(final), Buffer.from('hello world'), 0o644, 0o4750, -1, -1, t);
    const st = statSync(final, { bigint: true }); // (before reading it: reading moves the atime)
    expect(Number(st.mode) & 0o7777).toBe(0o4750);
    expect(st.mtimeNs).toBe(t);
    expect(st.atimeNs).toBe(t);
    expect(existsSync(tmp)).toBe(false);
    expect(readFileSync(final, 'utf8')).toBe('hello world');
  });

  it('sets a time after 2262 (nanoseconds beyond 64 bits) exactly, and refuses one whose seconds do not fit', async () => {
    const t = 13_569_465_600_000_000_123n; // 2400-01-01T00:00:00.000000123Z
    await n!.writeFile(Buffer.from(join(dir, '.t')), Buffer.from(join(dir, 'f')), Buffer.from('x'), 0o644, -1, -1, -1, t);
    expect(statSync(join(dir, 'f'), { bigint: true }).mtimeNs).toBe(t);
    expect(() => n!.writeFile(Buffer.from(join(dir, '.u')), Buffer.from(join(dir, 'g')), null, 0o644, -1, -1, -1, 2n ** 100n)).toThrow(RangeError);
    expect(existsSync(join(dir, '.u'))).toBe(false);
  });

  it('writes an empty file from null, and a large buffer whole', async () => {
    await n!.writeFile(Buffer.from(join(dir, '.a')), Buffer.from(join(dir, 'empty')), null, 0o600, -1, -1, -1, 0n);
    expect(statSync(join(dir, 'empty')).size).toBe(0);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    await n!.writeFile(Buffer.from(join(dir, '.b')), Buffer.from(join(dir, 'big')), big, 0o600, -1, -1, -1, 0n);
    expect(readFileSync(join(dir, 'big')).equals(big)).toBe(true);
  });

  it('never opens an existing temporary name (O_EXCL) and leaves it as it was', async () => {
    const tmp = join(dir, '.t');
    writeFileSync(tmp, 'not ours');
    const err = await n!.writeFile(Buffer.from(tmp), Buffer.from(join(dir, 'f')), Buffer.from('x'), 0o644, -1, -1, -1, 0n).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect((err as NodeJS.ErrnoException).syscall).toBe('open');
    expect(readFileSync(tmp, 'utf8')).toBe('not ours');
    expect(existsSync(join(dir, 'f'))).toBe(false);
  });

  it('removes the temporary file when the rename fails, and names the final path', async () => {
    const final = join(dir, 'missing', 'f');
    const err = await n!.writeFile(Buffer.from(join(dir, '.t')), Buffer.from(final), Buffer.from('x'), 0o644, -1, -1, -1, 0n).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect((err as NodeJS.ErrnoException).syscall).toBe('rename');
    expect((err as NodeJS.ErrnoException).path).toBe(final);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('rejects bad arguments synchronously', () => {
    expect(() => n!.writeFile(Buffer.from(join(dir, '.t')), Buffer.from(join(dir, 'f')), Buffer.from('x'), 0o644, -1, 5, -1, 0n)).toThrow(/gid/);
    expect(() => n!.writeFile(Buffer.from(join(dir, '.t')), Buffer.from(join(dir, 'f')), Buffer.from('x'), 0o644, -1, -1, -1, 1 as unknown as bigint)).toThrow(/BigInt/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('writeFiles writes a batch in order in one job; a failing file is reported in its place and the others are written', async () => {
    writeFileSync(join(dir, '.taken'), 'not ours');
    const file = (tmp: string, name: string, text: string, t: bigint) =>
      [Buffer.from(join(dir, tmp)), Buffer.from(join(dir, name)), Buffer.from(text), 0o640, -1, -1, -1, t] as [Buffer, Buffer, Buffer, number, number, number, number, bigint];
    const results = await n!.writeFiles([file('.a', 'a', 'one', 10n), file('.taken', 'b', 'two', 20n), file('.c', 'c', 'three', 30_000_000_001n)]);
    expect(results.length).toBe(3);
    expect(results[0]).toBeNull();
    expect(results[1]?.code).toBe('EEXIST');
    expect(results[2]).toBeNull();
    expect(statSync(join(dir, 'c'), { bigint: true }).mtimeNs).toBe(30_000_000_001n);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('one');
    expect(readFileSync(join(dir, 'c'), 'utf8')).toBe('three');
    expect(readdirSync(dir).sort()).toEqual(['.taken', 'a', 'c']);
    expect(() => n!.writeFiles([])).toThrow(/non-empty/);
  });

  it('writeFilesAt writes names in a directory descriptor: the directory moved meanwhile still gets them, a symlink in its old place is not followed', async () => {
    mkdirSync(join(dir, 'd'));
    mkdirSync(join(dir, 'elsewhere'));
    const fd = openSync(join(dir, 'd'), constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      renameSync(join(dir, 'd'), join(dir, 'moved'));
      symlinkSync(join(dir, 'elsewhere'), join(dir, 'd'));
      const file = (tmp: string, name: string, text: string) =>
        [Buffer.from(tmp), Buffer.from(name), Buffer.from(text), 0o600, -1, -1, -1, 5n] as [Buffer, Buffer, Buffer, number, number, number, number, bigint];
      const results = await n!.writeFilesAt(fd, [file('.x', 'x', 'ex'), file('.y', 'y', 'why')]);
      expect(results).toEqual([null, null]);
      expect(readdirSync(join(dir, 'moved')).sort()).toEqual(['x', 'y']);
      expect(readFileSync(join(dir, 'moved', 'y'), 'utf8')).toBe('why');
      expect(readdirSync(join(dir, 'elsewhere'))).toEqual([]);
      expect(() => n!.writeFilesAt(fd, [file('../.z', 'z', 'z')])).toThrow(/names/);
      expect(() => n!.writeFilesAt(-1, [file('.z', 'z', 'z')])).toThrow(TypeError);
    } finally {
      closeSync(fd);
    }
  });
});
