import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, lstat, open, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nfs as nt, nfsLoadError as loadError, skipNative as skip } from './load.js';

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiwi-nfs-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.skipIf(skip)('@kiwi-backup/native-fs: times', () => {
  it('is built', () => {
    expect(loadError).toBeUndefined();
  });

  it('futimens / futimensSync set atime and mtime to the nanosecond', async () => {
    const f = join(work, 'f');
    await writeFile(f, 'x');
    const fh = await open(f, 'r+');
    try {
      nt!.futimensSync(fh.fd, 1_600_000_000_000_000_007n, 1_700_000_000_123_456_789n);
      let st = await lstat(f, { bigint: true });
      expect([st.atimeNs, st.mtimeNs]).toEqual([1_600_000_000_000_000_007n, 1_700_000_000_123_456_789n]);
      await nt!.futimens(fh.fd, -1n, -999_999_999n);
      st = await lstat(f, { bigint: true });
      expect([st.atimeNs, st.mtimeNs]).toEqual([-1n, -999_999_999n]);
    } finally {
      await fh.close();
    }
  });

  it('times after 2262-04-11, whose nanoseconds pass 64 bits, are set exactly (and negative ones round down)', async () => {
    const f = join(work, 'f');
    await writeFile(f, 'x');
    const y2400 = 13_569_465_600_000_000_123n; // 2400-01-01T00:00:00.000000123Z
    // (ext4 clamps times before 1901, so the negative case stays after it.)
    const y1929 = -1_262_304_000_000_000_001n; // 1929-12-31T23:59:59.999999999Z
    const fh = await open(f, 'r+');
    try {
      nt!.futimensSync(fh.fd, y1929, y2400);
      const st = await lstat(f, { bigint: true });
      expect([st.atimeNs, st.mtimeNs]).toEqual([y1929, y2400]);
    } finally {
      await fh.close();
    }
    await nt!.lutimens(f, y2400, y2400 + 1n);
    expect((await lstat(f, { bigint: true })).mtimeNs).toBe(y2400 + 1n);
  });

  it('lutimens / lutimensSync do not follow symlinks and take string or Buffer paths', async () => {
    const f = join(work, 'f');
    const l = join(work, 'l');
    await writeFile(f, 'x');
    await symlink('f', l);
    const before = (await lstat(f, { bigint: true })).mtimeNs;
    nt!.lutimensSync(l, 1n, 1_400_000_000_999_999_999n);
    expect((await lstat(l, { bigint: true })).mtimeNs).toBe(1_400_000_000_999_999_999n);
    await nt!.lutimens(Buffer.from(l), 2n, 1_300_000_000_000_000_001n);
    expect((await lstat(l, { bigint: true })).mtimeNs).toBe(1_300_000_000_000_000_001n);
    expect((await lstat(f, { bigint: true })).mtimeNs).toBe(before);
  });

  it('reports errors like Node and validates arguments', async () => {
    const missing = join(work, 'missing');
    await expect(nt!.lutimens(missing, 1n, 1n)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'lutimes', path: missing, errno: expect.any(Number) });
    expect(() => nt!.futimensSync(2 ** 30, 1n, 1n)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => nt!.futimensSync(0, 1 as unknown as bigint, 1n)).toThrow(TypeError);
    // Seconds must fit in 64 bits (the nanoseconds may not: see the year-2400 case).
    expect(() => nt!.futimensSync(0, 1n, 2n ** 63n * 1_000_000_000n)).toThrow(RangeError);
    expect(() => nt!.futimensSync(0, 1n, -(2n ** 63n + 1n) * 1_000_000_000n)).toThrow(RangeError);
    expect(() => nt!.futimensSync(0, 1n, 2n ** 200n)).toThrow(RangeError);
    expect(() => nt!.futimensSync(0, 1n, -(2n ** 200n))).toThrow(RangeError);
    expect(() => nt!.lutimensSync(Buffer.from('a\0b'), 1n, 1n)).toThrow(TypeError);
  });
});
