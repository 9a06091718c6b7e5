import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { constants, openSync, closeSync, writeSync, ftruncateSync } from 'node:fs';
import { lstat, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nfs as maybe, skipNative } from './load.js';

const linux = process.platform === 'linux';
const root = process.getuid?.() === 0;
let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiwi-nfs-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.skipIf(skipNative)('@kiwi-backup/native-fs: extended attributes', () => {
  const nfs = maybe!;

  it.runIf(linux)('sets, lists and reads every attribute (binary values, empty values)', async () => {
    const f = join(work, 'f');
    await writeFile(f, 'x');
    const bin = Buffer.from([0, 1, 2, 255, 0]);
    nfs.lsetxattrSync(f, 'user.bin', bin);
    nfs.lsetxattrSync(Buffer.from(f), Buffer.from('user.empty'), Buffer.alloc(0));
    const fd = openSync(f, 'r+');
    try {
      nfs.fsetxattrSync(fd, 'user.fd', Buffer.from('via fd'));
    } finally {
      closeSync(fd);
    }
    const flat = nfs.lgetxattrsSync(f);
    const got = new Map<string, Buffer | number>();
    for (let i = 0; i < flat.length; i += 2) got.set((flat[i] as Buffer).toString(), flat[i + 1]!);
    expect([...got.keys()].filter((k) => k.startsWith('user.')).sort()).toEqual(['user.bin', 'user.empty', 'user.fd']);
    expect((got.get('user.bin') as Buffer).equals(bin)).toBe(true);
    expect((got.get('user.empty') as Buffer).length).toBe(0);
    expect((got.get('user.fd') as Buffer).toString()).toBe('via fd');
    expect(nfs.llistxattrSync(f).map(String).filter((n) => n.startsWith('user.')).sort()).toEqual(['user.bin', 'user.empty', 'user.fd']);
    nfs.lremovexattrSync(f, 'user.bin');
    expect(nfs.llistxattrSync(f).map(String)).not.toContain('user.bin');
    expect(flat.truncated).toBeUndefined();
  });

  it.runIf(linux)('bounds what it reads: values over maxValue come as their size, names past maxCount are counted', async () => {
    const f = join(work, 'f');
    await writeFile(f, 'x');
    nfs.lsetxattrSync(f, 'user.a', Buffer.alloc(100, 1));
    nfs.lsetxattrSync(f, 'user.b', Buffer.alloc(10, 2));
    nfs.lsetxattrSync(f, 'user.c', Buffer.alloc(10, 3));
    const all = nfs.lgetxattrsSync(f, 50, 10, 1024);
    const byName = new Map<string, Buffer | number>();
    for (let i = 0; i < all.length; i += 2) byName.set(String(all[i]), all[i + 1]!);
    expect(byName.get('user.a')).toBe(100);
    expect((byName.get('user.b') as Buffer).equals(Buffer.alloc(10, 2))).toBe(true);
    const two = nfs.lgetxattrsSync(f, 50, 2, 1024);
    expect(two.length).toBe(4);
    expect(two.truncated).toBe(3);
    expect(() => nfs.lgetxattrsSync(f, 50, 10, 4)).toThrow(expect.objectContaining({ code: 'E2BIG' }));
  });

  it.runIf(linux)('never follows a symlink; errors are like Node\'s', async () => {
    const f = join(work, 'f');
    await writeFile(f, 'x');
    await symlink('f', join(work, 'l'));
    nfs.lsetxattrSync(f, 'user.on-target', Buffer.from('1'));
    expect(nfs.lgetxattrsSync(join(work, 'l')).map(String)).not.toContain('user.on-target');
    // Linux refuses user.* attributes on symlinks themselves.
    expect(() => nfs.lsetxattrSync(join(work, 'l'), 'user.x', Buffer.from('1'))).toThrow(expect.objectContaining({ code: 'EPERM', syscall: 'lsetxattr' }));
    expect(() => nfs.lgetxattrsSync(join(work, 'missing'))).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'llistxattr', path: join(work, 'missing') }));
    expect(() => nfs.lsetxattrSync('/proc/self/status', 'user.x', Buffer.from('1'))).toThrow(expect.objectContaining({ code: 'ENOTSUP' }));
    expect(() => nfs.lsetxattrSync(Buffer.from('a\0b'), 'user.x', Buffer.from('1'))).toThrow(TypeError);
    expect(() => nfs.lsetxattrSync(f, 'user.x', 'not a buffer' as unknown as Buffer)).toThrow(TypeError);
  });
});

describe.skipIf(skipNative)('@kiwi-backup/native-fs: mknod and holes', () => {
  const nfs = maybe!;

  it('creates FIFOs and socket files', async () => {
    nfs.mknodSync(join(work, 'fifo'), constants.S_IFIFO | 0o640, 0n);
    expect((await lstat(join(work, 'fifo'))).isFIFO()).toBe(true);
    if (linux) {
      nfs.mknodSync(join(work, 'sock'), constants.S_IFSOCK | 0o600, 0n);
      expect((await lstat(join(work, 'sock'))).isSocket()).toBe(true);
    }
    expect(() => nfs.mknodSync(join(work, 'fifo'), constants.S_IFIFO | 0o640, 0n)).toThrow(expect.objectContaining({ code: 'EEXIST', syscall: 'mknod' }));
    expect(() => nfs.mknodSync(join(work, 'x'), constants.S_IFIFO, -1n)).toThrow(TypeError);
  });

  it.runIf(root && linux)('creates devices with their number (as root)', async () => {
    const rdev = BigInt((await stat('/dev/null')).rdev);
    nfs.mknodSync(join(work, 'null'), constants.S_IFCHR | 0o666, rdev);
    const st = await lstat(join(work, 'null'), { bigint: true });
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(rdev);
  });

  it.runIf(linux)('finds data and holes', () => {
    const p = join(work, 'sparse');
    const fd = openSync(p, 'w+');
    try {
      ftruncateSync(fd, 1 << 20);
      writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 256 * 1024);
      const data = nfs.seekDataSync(fd, 0);
      expect(data).toBe(256 * 1024);
      expect(nfs.seekHoleSync(fd, data)).toBe(256 * 1024 + 4096);
      expect(nfs.seekDataSync(fd, 256 * 1024 + 4096)).toBe(-1);
      expect(nfs.seekHoleSync(fd, 2 << 20)).toBe(-1);
    } finally {
      closeSync(fd);
    }
  });
});
