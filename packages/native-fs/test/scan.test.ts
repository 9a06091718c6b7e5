import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nfs as maybe, skipNative } from './load.js';

const linux = process.platform === 'linux';
const XATTR_FILES = 1;
const XATTR_OTHER = 2;
const LINKS = 4;
const LIMITS = [65536, 1024, 1 << 20] as const;

interface Listing {
  count: number;
  names: Buffer;
  ints: Int32Array;
  stats: BigInt64Array;
  xattrs: Array<number | Array<Buffer | number>>;
  dev: bigint;
  ino: bigint;
}

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiwi-scan-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The listing as a map by name: lstat fields, link target (or its state) and xattr state. */
function byName(l: Listing): Map<string, { ints: number[]; stats: bigint[]; link?: Buffer; xattrs?: Array<Buffer | number> }> {
  const m = new Map<string, { ints: number[]; stats: bigint[]; link?: Buffer; xattrs?: Array<Buffer | number> }>();
  const lists = new Map<number, Array<Buffer | number>>();
  for (let i = 0; i < l.xattrs.length; i += 2) lists.set(l.xattrs[i] as number, l.xattrs[i + 1] as Array<Buffer | number>);
  for (let i = 0; i < l.count; i++) {
    const ints = Array.from(l.ints.subarray(i * 6, i * 6 + 6));
    const name = l.names.subarray(ints[0]!, ints[0]! + ints[1]!).toString('latin1');
    m.set(name, {
      ints,
      stats: Array.from(l.stats.subarray(i * 16, i * 16 + 16)),
      ...(ints[4]! >= 0 ? { link: l.names.subarray(ints[3]!, ints[3]! + ints[4]!) } : {}),
      ...(lists.has(i) ? { xattrs: lists.get(i)! } : {}),
    });
  }
  return m;
}

describe.runIf(linux).skipIf(skipNative)('@kiwi-backup/native-fs: scanDirs', () => {
  const nfs = maybe!;

  it('lists every entry (not . and ..) with the lstat that Node gives, and symlink targets', async () => {
    writeFileSync(join(work, 'file'), 'hello');
    mkdirSync(join(work, 'dir'));
    symlinkSync('file', join(work, 'link'));
    const long = 'x/'.repeat(1500) + 'end';
    symlinkSync(long, join(work, 'long-link'));
    symlinkSync('/nowhere/at/all', join(work, 'dangling'));
    const raw = Buffer.concat([Buffer.from(work + '/'), Buffer.from([0x6e, 0xff, 0xfe])]);
    writeFileSync(raw, 'not utf-8');
    execFileSync('mkfifo', [join(work, 'fifo')]);
    const [l] = (await nfs.scanDirs([Buffer.from(work)], LINKS, ...LIMITS)) as Listing[];
    const m = byName(l!);
    expect([...m.keys()].sort()).toEqual(['dangling', 'dir', 'fifo', 'file', 'link', 'long-link', Buffer.from([0x6e, 0xff, 0xfe]).toString('latin1')].sort());
    for (const [name, e] of m) {
      const st = lstatSync(Buffer.concat([Buffer.from(work + '/'), Buffer.from(name, 'latin1')]), { bigint: true });
      expect(e.ints[2]).toBe(0);
      expect(e.stats.slice(0, 10)).toEqual([st.dev, st.ino, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.blksize, st.blocks]);
      expect(e.stats[12]! * 1_000_000_000n + e.stats[13]!).toBe(st.mtimeNs);
      expect(e.stats[14]! * 1_000_000_000n + e.stats[15]!).toBe(st.ctimeNs);
      // (A symlink's atime moves when its target is read, after the lstat.)
      if (!st.isSymbolicLink()) expect(e.stats[10]! * 1_000_000_000n + e.stats[11]!).toBe(st.atimeNs);
      if (st.isSymbolicLink()) expect(e.link!.equals(readlinkSync(Buffer.from(join(work, name), 'latin1'), { encoding: 'buffer' }))).toBe(true);
      else expect(e.ints[4]).toBe(-1);
      expect(e.ints[5]).toBe(0); // attributes not asked for
    }
    expect(m.get('long-link')!.link!.toString()).toBe(long);
  });

  it('reads symlink targets only when asked', async () => {
    symlinkSync('target', join(work, 'l'));
    const [l] = (await nfs.scanDirs([Buffer.from(work)], 0, ...LIMITS)) as Listing[];
    expect(byName(l!).get('l')!.ints[4]).toBe(-1);
  });

  it('reads extended attributes of files (flag 1) and of everything else (flag 2), values and sizes over the limit', async () => {
    writeFileSync(join(work, 'f'), 'x');
    mkdirSync(join(work, 'd'));
    writeFileSync(join(work, 'plain'), 'y');
    try {
      nfs.lsetxattrSync(join(work, 'f'), 'user.a', Buffer.from([0, 1, 2]));
      nfs.lsetxattrSync(join(work, 'f'), 'user.big', Buffer.alloc(3000, 7));
      nfs.lsetxattrSync(join(work, 'd'), 'user.b', Buffer.from('dir'));
    } catch (err) {
      if (['ENOTSUP', 'EOPNOTSUPP'].includes((err as NodeJS.ErrnoException).code ?? '')) return; // no user xattrs on this file system
      throw err;
    }
    const dir = Buffer.from(work);
    const [files] = (await nfs.scanDirs([dir], XATTR_FILES, 2000, 1024, 1 << 20)) as Listing[];
    const m = byName(files!);
    const list = m.get('f')!.xattrs!;
    const got = new Map<string, Buffer | number>();
    for (let i = 0; i < list.length; i += 2) got.set((list[i] as Buffer).toString(), list[i + 1]!);
    expect((got.get('user.a') as Buffer).equals(Buffer.from([0, 1, 2]))).toBe(true);
    expect(got.get('user.big')).toBe(3000); // over maxValue: its size, not its bytes
    expect(m.get('f')!.ints[5]).toBe(2);
    expect(m.get('plain')!.ints[5]).toBe(1); // read: none
    expect(m.get('d')!.ints[5]).toBe(0); // a directory: not read under flag 1
    const [other] = (await nfs.scanDirs([dir], XATTR_OTHER, ...LIMITS)) as Listing[];
    const o = byName(other!);
    expect(o.get('f')!.ints[5]).toBe(0);
    expect(o.get('d')!.ints[5]).toBe(2);
    expect((o.get('d')!.xattrs![1] as Buffer).toString()).toBe('dir');
  });

  it('reads the same attributes by name in the directory descriptor (flag 8) as by path', async () => {
    expect(nfs.scanXattrsAt).toBe(true);
    writeFileSync(join(work, 'f'), 'x');
    mkdirSync(join(work, 'd'));
    try {
      nfs.lsetxattrSync(join(work, 'f'), 'user.a', Buffer.from('file'));
      nfs.lsetxattrSync(join(work, 'd'), 'user.b', Buffer.from('dir'));
    } catch (err) {
      if (['ENOTSUP', 'EOPNOTSUPP'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
      throw err;
    }
    const dir = Buffer.from(work);
    const both = XATTR_FILES | XATTR_OTHER;
    const byPath = byName(nfs.scanDirSync(dir, both, ...LIMITS) as Listing);
    const [atFd] = (await nfs.scanDirs([dir], both | 8, ...LIMITS)) as Listing[];
    const byFd = byName(atFd!);
    for (const name of ['f', 'd']) {
      expect(byFd.get(name)!.ints[5]).toBe(2);
      expect(byFd.get(name)!.xattrs!.map(String)).toEqual(byPath.get(name)!.xattrs!.map(String));
    }
    expect(() => nfs.scanDirSync(dir, 16, ...LIMITS)).toThrow(TypeError);
  });

  it('caps the number of attributes and says how many there were', async () => {
    const f = join(work, 'many');
    writeFileSync(f, 'x');
    try {
      for (let i = 0; i < 5; i++) nfs.lsetxattrSync(f, `user.n${i}`, Buffer.from(String(i)));
    } catch (err) {
      if (['ENOTSUP', 'EOPNOTSUPP'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
      throw err;
    }
    const [l] = (await nfs.scanDirs([Buffer.from(work)], XATTR_FILES, 65536, 2, 1 << 20)) as Listing[];
    const list = byName(l!).get('many')!.xattrs! as Array<Buffer | number> & { truncated?: number };
    expect(list.length).toBe(4);
    expect(list.truncated).toBeGreaterThanOrEqual(5);
  });

  it('gives each directory of a job its listing or its own error, in order; a symlink to a directory is not followed', async () => {
    mkdirSync(join(work, 'a'));
    writeFileSync(join(work, 'a', 'one'), '1');
    mkdirSync(join(work, 'b'));
    writeFileSync(join(work, 'b', 'two'), '2');
    symlinkSync('a', join(work, 'to-a'));
    writeFileSync(join(work, 'file'), 'f');
    const paths = ['a', 'missing', 'b', 'to-a', 'file'].map((p) => Buffer.from(join(work, p)));
    const r = await nfs.scanDirs(paths, 0, ...LIMITS);
    expect(r).toHaveLength(5);
    expect([...byName(r[0] as Listing).keys()]).toEqual(['one']);
    expect((r[1] as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect((r[1] as NodeJS.ErrnoException).syscall).toBe('scandir');
    expect((r[1] as NodeJS.ErrnoException).path).toBe(join(work, 'missing'));
    expect([...byName(r[2] as Listing).keys()]).toEqual(['two']);
    expect(r[3]).toBeInstanceOf(Error); // O_DIRECTORY | O_NOFOLLOW: ENOTDIR, never a's listing
    expect(['ENOTDIR', 'ELOOP']).toContain((r[3] as NodeJS.ErrnoException).code);
    expect((r[4] as NodeJS.ErrnoException).code).toBe('ENOTDIR');
  });

  it('lists an empty directory and a large one', async () => {
    mkdirSync(join(work, 'empty'));
    mkdirSync(join(work, 'big'));
    for (let i = 0; i < 3000; i++) writeFileSync(join(work, 'big', `f${i}`), '');
    const [empty, big] = (await nfs.scanDirs([Buffer.from(join(work, 'empty')), Buffer.from(join(work, 'big'))], 0, ...LIMITS)) as Listing[];
    expect(empty!.count).toBe(0);
    expect(big!.count).toBe(3000);
    expect(new Set(byName(big!).keys()).size).toBe(3000);
  });

  it('scanDirSync reads the same listing on the calling thread, and throws when the directory cannot be read', async () => {
    writeFileSync(join(work, 'f'), 'x');
    mkdirSync(join(work, 'd'));
    symlinkSync('f', join(work, 'l'));
    const dir = Buffer.from(work);
    const [a] = (await nfs.scanDirs([dir], LINKS, ...LIMITS)) as Listing[];
    const b = nfs.scanDirSync(dir, LINKS, ...LIMITS) as Listing;
    const ma = byName(a!);
    const mb = byName(b);
    expect([...mb.keys()].sort()).toEqual([...ma.keys()].sort());
    for (const [k, v] of mb) {
      expect(v.stats.slice(0, 10)).toEqual(ma.get(k)!.stats.slice(0, 10));
      expect(v.link?.toString()).toBe(ma.get(k)!.link?.toString());
    }
    expect(() => nfs.scanDirSync(Buffer.from(join(work, 'nope')), 0, ...LIMITS)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'scandir' }));
    expect(() => nfs.scanDirSync(Buffer.from(join(work, 'f')), 0, ...LIMITS)).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    expect(() => nfs.scanDirSync(dir, 16, ...LIMITS)).toThrow(TypeError);
  });

  it('gives the device and inode of the directory it opened, also when a directory above it was swapped for a symlink', async () => {
    mkdirSync(join(work, 'a', 'sub'), { recursive: true });
    mkdirSync(join(work, 'elsewhere', 'sub'), { recursive: true });
    writeFileSync(join(work, 'elsewhere', 'sub', 'secret'), 'x');
    const path = Buffer.from(join(work, 'a', 'sub'));
    const listed = lstatSync(path, { bigint: true });
    const [l] = (await nfs.scanDirs([path], 0, ...LIMITS)) as Listing[];
    expect([l!.dev, l!.ino]).toEqual([listed.dev, listed.ino]);
    const s = nfs.scanDirSync(path, 0, ...LIMITS) as Listing;
    expect([s.dev, s.ino]).toEqual([listed.dev, listed.ino]);
    // O_NOFOLLOW guards only the last name: with `a` now a symlink, the path reaches elsewhere/sub,
    // and dev/ino say so (the walker compares them with its listing).
    renameSync(join(work, 'a'), join(work, 'a.old'));
    symlinkSync(join(work, 'elsewhere'), join(work, 'a'));
    const swapped = nfs.scanDirSync(path, 0, ...LIMITS) as Listing;
    expect([...byName(swapped).keys()]).toEqual(['secret']);
    expect(swapped.ino).not.toBe(listed.ino);
    expect(swapped.ino).toBe(lstatSync(join(work, 'elsewhere', 'sub'), { bigint: true }).ino);
  });

  it('refuses bad arguments with a TypeError, never a crash', () => {
    const dir = Buffer.from(work);
    expect(() => nfs.scanDirs([], 0, ...LIMITS)).toThrow(TypeError);
    expect(() => (nfs.scanDirs as unknown as (...a: unknown[]) => unknown)('not an array', 0, ...LIMITS)).toThrow();
    expect(() => nfs.scanDirs([Buffer.from('a\0b')], 0, ...LIMITS)).toThrow(TypeError);
    expect(() => nfs.scanDirs([dir], 16, ...LIMITS)).toThrow(TypeError);
    expect(() => nfs.scanDirs([dir], -1, ...LIMITS)).toThrow(TypeError);
    expect(() => nfs.scanDirs([dir], 0.5, ...LIMITS)).toThrow(TypeError);
    expect(() => nfs.scanDirs([dir], 0, -1, 1, 1)).toThrow(TypeError);
    expect(() => nfs.scanDirs(Array.from({ length: 4097 }, () => dir), 0, ...LIMITS)).toThrow(TypeError);
  });
});
