import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { nsToUtimeSeconds, restoreSnapshot, runBackup, type Snapshot } from '../../src/index.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { nativeFs } from '../../src/native/native-fs.js';
import { describeTree, makeSampleTree, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
let src: string;
let repo: Awaited<ReturnType<typeof memoryRepository>>['repo'];
let snapshot: Snapshot;
beforeEach(async () => {
  work = await tempDir();
  src = join(work, 'src');
  await makeSampleTree(src);
  repo = (await memoryRepository()).repo;
  snapshot = (await runBackup({ repository: repo, sources: [src] })).snapshot!;
});
afterEach(async () => {
  await repo.close();
  await removeDir(work);
});

const restore = (target: string, extra: Partial<Parameters<typeof restoreSnapshot>[0]> = {}) => restoreSnapshot({ repository: repo, snapshot, target, ...extra });

describe('restoring into a directory that holds files', () => {
  it('if-changed (default): same size and mtime keep their content and get their metadata; changed files are replaced', async () => {
    const target = join(work, 't');
    const first = await restore(target);
    expect(first.errors).toEqual([]);
    const out = join(target, src);
    // A file edited in place (new mtime), one whose mode changed, one whose content changed behind an unchanged size and mtime.
    await writeFile(join(out, 'hello.txt'), 'HELLO, KIWI\n');
    await chmod(join(out, 'exec.sh'), 0o600);
    const before = await stat(join(out, 'private.txt'), { bigint: true });
    await writeFile(join(out, 'private.txt'), 'SECRET-ISH');
    const nfs = nativeFs();
    if (nfs) await nfs.lutimens(Buffer.from(join(out, 'private.txt')), before.mtimeNs, before.mtimeNs);
    else await utimes(join(out, 'private.txt'), nsToUtimeSeconds(String(before.mtimeNs)), nsToUtimeSeconds(String(before.mtimeNs)));
    await rm(join(out, 'dir/sub/small.bin'));
    const again = await restore(target);
    expect(again.errors).toEqual([]);
    expect(await readFile(join(out, 'hello.txt'), 'utf8')).toBe('hello, kiwi\n');
    expect((await stat(join(out, 'exec.sh'))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(out, 'private.txt'), 'utf8')).toBe('SECRET-ISH'); // same size and mtime: taken as unchanged (as restic)
    expect((await readFile(join(out, 'dir/sub/small.bin'))).length).toBe(777);
    expect(again.filesRestored).toBe(2); // hello.txt, small.bin
    expect(again.filesUnchanged).toBeGreaterThan(5);
    expect(again.bytesWritten).toBe(12 + 777);
    // always: everything is written again.
    const always = await restore(target, { overwrite: 'always' });
    expect(always.filesUnchanged).toBe(0);
    expect(await readFile(join(out, 'private.txt'), 'utf8')).toBe('secret-ish');
    const tree = await describeTree(out);
    expect(tree).toEqual(await describeTree(src));
  });

  it.skipIf(process.geteuid?.() !== 0)('as root, the owner of kept and created entries is set even when it is root\'s own (kept files and directories with other owners, a setgid directory)', async () => {
    const target = join(work, 't');
    expect((await restore(target)).errors).toEqual([]);
    const out = join(target, src);
    const owner = async (p: string) => {
      const st = await lstat(p);
      return `${st.uid}:${st.gid}`;
    };
    const expected = new Map<string, string>();
    for (const rel of ['', 'hello.txt', 'dir', 'dir/sub', 'dir/sub/small.bin']) expected.set(rel, await owner(join(src, rel)));
    expect(expected.get('hello.txt')).toBe('0:0'); // the sample tree is root's: the case the old shortcut skipped
    // Kept entries (unchanged files, existing directories) given other owners, and a setgid directory
    // whose new files would inherit its group.
    const { chown } = await import('node:fs/promises');
    for (const rel of ['', 'hello.txt', 'dir']) await chown(join(out, rel), 1, 2);
    await chown(join(out, 'dir/sub'), 0, 4321);
    await chmod(join(out, 'dir/sub'), 0o2755);
    await rm(join(out, 'dir/sub/small.bin'));
    const again = await restore(target);
    expect(again.errors).toEqual([]);
    expect(again.filesUnchanged).toBeGreaterThan(0);
    for (const [rel, ids] of expected) expect(await owner(join(out, rel)), rel || '.').toBe(ids);
  });

  it('never leaves every existing entry as it is (counted); if-newer replaces only older ones', async () => {
    const target = join(work, 't');
    const out = join(target, src);
    await mkdir(join(out, 'dir'), { recursive: true });
    await writeFile(join(out, 'hello.txt'), 'mine');
    await writeFile(join(out, 'exec.sh'), 'mine too');
    await utimes(join(out, 'exec.sh'), new Date('2000-01-01'), new Date('2000-01-01'));
    await writeFile(join(out, 'empty-dir'), 'a file where the snapshot has a directory');
    const never = await restore(target, { overwrite: 'never' });
    expect(never.errors).toEqual([]);
    expect(never.kept).toBe(3);
    // The file where a directory goes keeps that whole directory out: reported, not only counted.
    expect(never.skipped).toEqual([{ path: `${src}/empty-dir`, message: expect.stringContaining('kept by --overwrite never: nothing below it restored') }]);
    expect(await readFile(join(out, 'hello.txt'), 'utf8')).toBe('mine');
    expect(await readFile(join(out, 'empty-dir'), 'utf8')).toContain('a file');
    expect((await readFile(join(out, 'dir/big.bin'))).length).toBeGreaterThan(80_000);
    const newer = await restore(target, { overwrite: 'if-newer' });
    expect(newer.errors).toEqual([]);
    expect(await readFile(join(out, 'hello.txt'), 'utf8')).toBe('mine'); // written now: newer than the snapshot's
    expect(await readFile(join(out, 'exec.sh'), 'utf8')).toBe('#!/bin/sh\necho hi\n'); // from 2000: older
    expect((await lstat(join(out, 'empty-dir'))).isFile()).toBe(true);
  });

  it('a directory where a file goes: replaced when empty or with delete, else that entry fails (no EISDIR crash); a file where a directory goes is replaced', async () => {
    const target = join(work, 't');
    const out = join(target, src);
    await mkdir(join(out, 'hello.txt'), { recursive: true });
    await mkdir(join(out, 'private.txt/full'), { recursive: true });
    await writeFile(join(out, 'private.txt/full/keep'), 'x');
    await symlink('/etc', join(out, 'dir'));
    const rr = await restore(target, { overwrite: 'always' });
    expect(rr.errors.map((e) => [e.path, e.message])).toEqual([[join(src, 'private.txt'), 'a directory is in the way (not empty; --delete replaces it)']]);
    expect(await readFile(join(out, 'hello.txt'), 'utf8')).toBe('hello, kiwi\n');
    expect((await lstat(join(out, 'dir'))).isDirectory()).toBe(true);
    expect((await readdir('/etc')).length).toBeGreaterThan(0);
    const del = await restore(target, { overwrite: 'always', delete: true });
    expect(del.errors).toEqual([]);
    expect(await readFile(join(out, 'private.txt'), 'utf8')).toBe('secret-ish');
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });

  it('delete removes what the snapshot does not have, only in restored directories and never what the patterns leave out', async () => {
    const target = join(work, 't');
    await restore(target);
    const out = join(target, src);
    await writeFile(join(out, 'extra.txt'), 'x');
    await mkdir(join(out, 'dir/extra-dir/deep'), { recursive: true });
    await writeFile(join(out, 'dir/extra-dir/deep/f'), 'x');
    await writeFile(join(out, 'kept.log'), 'excluded by pattern');
    await writeFile(join(target, 'outside-the-snapshot-paths'), 'x');
    await writeFile(join(work, 't', src.split('/')[1]!, 'beside-an-ancestor'), 'x');
    const rr = await restore(target, { delete: true, exclude: ['*.log'] });
    expect(rr.errors).toEqual([]);
    expect(rr.deleted).toBe(2);
    expect((await readdir(out)).sort()).toEqual([...(await readdir(src)), 'kept.log'].sort());
    expect(await readdir(join(out, 'dir'))).not.toContain('extra-dir');
    expect(await readdir(target)).toContain('outside-the-snapshot-paths');
    expect(await readdir(join(target, src.split('/')[1]!))).toContain('beside-an-ancestor');
    // Include restricts delete to the included directory.
    await writeFile(join(out, 'extra.txt'), 'x');
    await writeFile(join(out, 'dir/sub/extra.bin'), 'x');
    const inc = await restore(target, { delete: true, include: [join(src, 'dir/sub')] });
    expect(inc.errors).toEqual([]);
    expect(await readdir(out)).toContain('extra.txt');
    expect(await readdir(join(out, 'dir/sub'))).not.toContain('extra.bin');
  });

  it.runIf(process.platform === 'linux' && process.getuid?.() === 0)('delete never removes what is on another file system mounted below', async () => {
    const target = join(work, 't');
    await restore(target);
    const out = join(target, src);
    const mnt = join(out, 'dir/extra/mnt');
    await mkdir(mnt, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', 'kiwi-test', mnt]);
    } catch (err) {
      if (process.env.CI === 'true') throw err;
      return; // no mount here (a container): nothing to test
    }
    try {
      await writeFile(join(mnt, 'precious'), 'on another file system');
      await writeFile(join(out, 'dir/extra/plain'), 'x');
      const rr = await restore(target, { delete: true });
      expect(rr.errors.map((e) => e.path)).toEqual([join(src, 'dir/extra')]);
      expect(rr.errors[0]!.message).toMatch(/is a mount point: not removed/);
      expect(await readFile(join(mnt, 'precious'), 'utf8')).toBe('on another file system');
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('removes the temporary files of killed restores (dead process, older versions), never those of a running one', async () => {
    const target = join(work, 't');
    await restore(target);
    const out = join(target, src);
    const dead = '.kiwi-restore-999999999-0123456789ab.tmp';
    const old = '.kiwi-restore-0123456789ab.tmp';
    const running = `.kiwi-restore-${process.ppid}-0123456789ab.tmp`;
    for (const [dir, name] of [[out, dead], [join(out, 'dir/sub'), old], [target, dead], [out, running]] as const) await writeFile(join(dir, name), 'partial');
    const rr = await restore(target);
    expect(rr.errors).toEqual([]);
    expect(rr.tempFilesRemoved).toBe(3);
    expect(await readdir(out)).not.toContain(dead);
    expect(await readdir(out)).toContain(running);
    expect(await readdir(join(out, 'dir/sub'))).not.toContain(old);
    expect(await readdir(target)).not.toContain(dead);
  });
});
