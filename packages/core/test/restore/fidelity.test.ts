/**
 * What a restore brings back besides contents: extended attributes (user.*, security.capability, trusted.* as
 * root), POSIX ACLs, FIFOs, devices, sockets, holes. Run as root on Linux (CI is); elsewhere the parts that need
 * root or Linux are skipped with a warning. Tools (setfacl, setcap) are required under CI=true.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { constants, type BigIntStats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { restoreSnapshot, runBackup } from '../../src/index.js';
import { nativeFs } from '../../src/native/native-fs.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

const linux = process.platform === 'linux';
const root = process.getuid?.() === 0;
const ci = process.env.CI === 'true';
const nfs = nativeFs();
function tool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    if (ci) throw new Error(`${name} is missing (scripts/test-all.mjs installs it)`);
    console.warn(`\n*** ${name} is not installed: its part of the restore fidelity test is skipped ***\n`);
    return false;
  }
}
if (!nfs && !ci) console.warn('\n*** @kiwi-backup/native-fs is not built: restore fidelity tests skipped ***\n');
if (linux && !root && !ci) console.warn('\n*** not root: device, trusted.* and capability tests skipped ***\n');

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

function xattrsOf(p: string): Record<string, string> {
  const flat = nfs!.lgetxattrsSync(Buffer.from(p), 65536, 1024, 1 << 20);
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) out[String(flat[i])] = (flat[i + 1] as Buffer).toString('hex');
  return out;
}

function comparable(st: BigIntStats) {
  return { mode: st.mode, uid: st.uid, gid: st.gid, rdev: st.isCharacterDevice() || st.isBlockDevice() ? st.rdev : 0n, mtimeNs: st.mtimeNs, size: st.isFile() ? st.size : 0n };
}

describe.runIf(linux && (nfs !== null || ci))('restore fidelity', () => {
  it('extended attributes, ACLs, FIFOs, sockets and devices come back as they were', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'dir'), { recursive: true });
    await writeFile(join(src, 'file'), 'content');
    await writeFile(join(src, 'dir/inner'), 'inner');
    const n = nfs!;
    n.lsetxattrSync(Buffer.from(join(src, 'file')), Buffer.from('user.comment'), Buffer.from('hello'));
    n.lsetxattrSync(Buffer.from(join(src, 'file')), Buffer.from('user.binary'), Buffer.from([0, 1, 2, 0xff]));
    n.lsetxattrSync(Buffer.from(join(src, 'dir')), Buffer.from('user.on-dir'), Buffer.from('d'));
    if (tool('setfacl')) {
      execFileSync('setfacl', ['-m', 'u:nobody:rw', join(src, 'file')]);
      execFileSync('setfacl', ['-m', 'u:nobody:rx', '-d', '-m', 'g:nogroup:rwx', join(src, 'dir')]);
    }
    n.mknodSync(Buffer.from(join(src, 'fifo')), constants.S_IFIFO | 0o640, 0n);
    // A real socket, bound by a listening server while the backup runs.
    const server = createServer();
    await new Promise<void>((r) => server.listen(join(src, 'sock'), r));
    if (root) {
      const devNull = (await stat('/dev/null', { bigint: true })).rdev;
      n.mknodSync(Buffer.from(join(src, 'chardev')), constants.S_IFCHR | 0o620, devNull);
      n.mknodSync(Buffer.from(join(src, 'blockdev')), constants.S_IFBLK | 0o600, (7n << 8n) | 3n); // loop3's number
      n.lsetxattrSync(Buffer.from(join(src, 'file')), Buffer.from('trusted.kiwi'), Buffer.from('root only'));
      if (tool('setcap')) {
        await writeFile(join(src, 'helper'), '#!/bin/sh\n');
        execFileSync('setcap', ['cap_net_raw,cap_sys_nice+ep', join(src, 'helper')]);
        execFileSync('chown', ['1234:2345', join(src, 'dir/inner')]);
      }
    }
    try {
      const { repo } = await memoryRepository();
      const res = await runBackup({ repository: repo, sources: [src] });
      expect(res.errors).toEqual([]);
      const target = join(work, 'target');
      const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target });
      expect(rr.errors).toEqual([]);
      expect(rr.skipped).toEqual([]);
      const out = join(target, src);
      const names = (await readdir(src)).sort();
      expect((await readdir(out)).sort()).toEqual(names);
      for (const name of [...names, 'dir/inner']) {
        const a = await lstat(join(src, name), { bigint: true });
        const b = await lstat(join(out, name), { bigint: true });
        expect(comparable(b), name).toEqual(comparable(a));
        expect(xattrsOf(join(out, name)), name).toEqual(xattrsOf(join(src, name)));
      }
      expect((await lstat(join(out, 'sock'))).isSocket()).toBe(true);
      expect((await lstat(join(out, 'fifo'))).isFIFO()).toBe(true);
      expect(rr.specialsRestored).toBe(root ? 4 : 2);
      expect(Object.keys(xattrsOf(join(out, 'file')))).toEqual(expect.arrayContaining(['user.comment', 'user.binary']));
      if (root && tool('setcap')) {
        expect(execFileSync('getcap', [join(out, 'helper')], { encoding: 'utf8' })).toContain('cap_net_raw,cap_sys_nice=ep');
      }
      if (tool('getfacl')) {
        const acl = (p: string) => execFileSync('getfacl', ['-cp', p], { encoding: 'utf8' });
        expect(acl(join(out, 'dir'))).toBe(acl(join(src, 'dir')));
        expect(acl(join(out, 'file'))).toContain('user:nobody:rw-');
      }
      await repo.close();
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('a sparse file comes back with its holes (48 MiB, two 4 KiB islands); written zeros stay written', async () => {
    const src = join(work, 'src');
    await mkdir(src);
    const size = 48 * 1024 * 1024;
    const fh = await open(join(src, 'sparse'), 'w');
    await fh.truncate(size);
    await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 16 * 1024 * 1024);
    await fh.write(Buffer.alloc(4096, 0xa5), 0, 4096, 40 * 1024 * 1024 + 4096);
    await fh.close();
    await writeFile(join(src, 'zeros'), Buffer.alloc(1024 * 1024));
    await link(join(src, 'sparse'), join(src, 'sparse-link'));
    await symlink('sparse', join(src, 'sparse-symlink'));
    const { repo } = await memoryRepository({ packSize: 4 * 1024 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    const target = join(work, 'target');
    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target });
    expect(rr.errors).toEqual([]);
    const out = join(target, src);
    const [a, b] = await Promise.all([stat(join(src, 'sparse')), stat(join(out, 'sparse'))]);
    expect(b.size).toBe(size);
    expect(b.blocks * 512).toBe(a.blocks * 512);
    expect(b.blocks * 512).toBeLessThanOrEqual(16 * 1024);
    const sha = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');
    expect(await sha(join(out, 'sparse'))).toBe(await sha(join(src, 'sparse')));
    expect((await stat(join(out, 'sparse-link'))).ino).toBe(b.ino);
    expect((await stat(join(out, 'zeros'))).blocks * 512).toBeGreaterThanOrEqual(1024 * 1024);
    await repo.close();
  });
});
