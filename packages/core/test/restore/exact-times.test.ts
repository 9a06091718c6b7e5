import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { lstat, open, symlink, writeFile } from 'node:fs/promises';
import { exactTimesAvailable, exactTimesUnavailableReason, lsetTimesNs, nsToUtimeSeconds, setTimesNs, setTimesNsSync } from '../../src/restore/times.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

const exact = exactTimesAvailable();
if (!exact && process.env.CI !== 'true') {
  console.warn(`\n*** @kiwi-backup/native-fs is not built (${exactTimesUnavailableReason()}): nanosecond checks skipped. Run \`pnpm install\`. ***\n`);
}

describe('nanosecond-exact restore times', () => {
  it('the native addon is loaded (required under CI=true, where it must be built by pnpm install)', () => {
    if (process.env.CI !== 'true' && !exact) return;
    expect(exactTimesUnavailableReason()).toBeUndefined();
    expect(exact).toBe(true);
  });

  it.skipIf(!exact && process.env.CI !== 'true')('sets file, directory and symlink times to the exact nanosecond (atime = mtime)', async () => {
    const f = join(work, 'f');
    await writeFile(f, 'x');
    const ns = '1700000000123456789';
    const fh = await open(f, 'r+');
    try {
      setTimesNsSync(fh.fd, ns);
      let st = await lstat(f, { bigint: true });
      expect(st.mtimeNs).toBe(BigInt(ns));
      expect(st.atimeNs).toBe(BigInt(ns));
      await setTimesNs(fh.fd, '1600000000000000001');
      st = await lstat(f, { bigint: true });
      expect(st.mtimeNs).toBe(1600000000000000001n);
    } finally {
      await fh.close();
    }
    // Before 1970 too (negative ns floor to the right second).
    const fh2 = await open(f, 'r+');
    try {
      await setTimesNs(fh2.fd, '-1500000001');
    } finally {
      await fh2.close();
    }
    expect((await lstat(f, { bigint: true })).mtimeNs).toBe(-1500000001n);

    const link = join(work, 'link');
    await symlink('f', link);
    await lsetTimesNs(Buffer.from(link), '1400000000999999999');
    expect((await lstat(link, { bigint: true })).mtimeNs).toBe(1400000000999999999n);
    // The target was not followed.
    expect((await lstat(f, { bigint: true })).mtimeNs).toBe(-1500000001n);
  });

  it('errors name the syscall, code and path', async () => {
    const missing = join(work, 'missing');
    await expect(lsetTimesNs(Buffer.from(missing), '1')).rejects.toMatchObject({ code: 'ENOENT', path: missing });
    expect(() => setTimesNsSync(2 ** 30, '1')).toThrow(/EBADF/);
  });

  it('the float fallback keeps the stored microsecond', () => {
    const s = nsToUtimeSeconds('1700000000123456789');
    expect(Math.floor(s * 1e6)).toBe(1700000000123456);
  });
});
