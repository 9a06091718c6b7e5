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
    expect(() => nt!.futimensSync(0, 1n, 2n ** 70n)).toThrow(RangeError);
    expect(() => nt!.lutimensSync(Buffer.from('a\0b'), 1n, 1n)).toThrow(TypeError);
  });
});
