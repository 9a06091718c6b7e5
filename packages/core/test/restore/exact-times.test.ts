import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { lstat, mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { prune, restoreSnapshot, runBackup } from '../../src/index.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
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

  it.skipIf(!exact && process.env.CI !== 'true')(
    'times after 2262-04-11 (nanoseconds beyond 64 bits) are backed up, checked, pruned around and restored exactly',
    async () => {
      // A camera with a wrong clock, or `touch -d 2400-01-01`: ext4, XFS and tmpfs keep such times.
      const src = join(work, 'src');
      await mkdir(join(src, 'dir'), { recursive: true });
      await writeFile(join(src, 'dir', 'future'), 'from the future');
      await writeFile(join(src, 'dir', 'now'), 'ordinary');
      await symlink('future', join(src, 'dir', 'link'));
      const times: Record<string, string> = {
        'dir/future': '13569465600000000123', // 2400-01-01T00:00:00.000000123Z
        'dir/link': '13569465600999999999',
        dir: '14000000000000000001',
      };
      for (const [rel, ns] of Object.entries(times)) await lsetTimesNs(Buffer.from(join(src, rel)), ns);
      for (const [rel, ns] of Object.entries(times)) expect((await lstat(join(src, rel), { bigint: true })).mtimeNs, rel).toBe(BigInt(ns));

      const { repo } = await memoryRepository();
      const first = await runBackup({ repository: repo, sources: [src], parent: null });
      expect(first.status).toBe('success');
      // Unchanged on the next backup (the parent's times compare equal), and the snapshot is sound.
      const second = await runBackup({ repository: repo, sources: [src] });
      expect(second.status).toBe('success');
      expect(second.snapshot!.tree).toBe(first.snapshot!.tree);
      const report = await repo.check({ readData: true });
      expect(report.errors).toEqual([]);
      expect((await prune(repo, { dryRun: true })).snapshots).toBe(2);

      const target = join(work, 'restored');
      const r = await restoreSnapshot({ repository: repo, snapshotId: second.snapshotId!, target });
      expect(r.errors).toEqual([]);
      for (const [rel, ns] of Object.entries(times)) {
        expect((await lstat(join(target, src, rel), { bigint: true })).mtimeNs, rel).toBe(BigInt(ns));
      }
      await repo.close();
    },
  );
});

