import { mkdtemp, mkdir, writeFile, symlink, chmod, utimes, lutimes, lstat, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { exactTimesAvailable } from '../../../src/restore/times.js';
import { comparableMtime } from '../../../src/testing/times.js';

/** The nanosecond addon when built (see `comparableMtime`). */
function nativeTimes(): { lutimensSync(path: string, atimeNs: bigint, mtimeNs: bigint): void } | null {
  if (!exactTimesAvailable()) return null;
  return createRequire(import.meta.url)('@kiwi-backup/native-fs') as ReturnType<typeof nativeTimes>;
}

export async function tempDir(prefix = 'kiwi-engine-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Deterministic pseudo-random bytes (xorshift), so chunk boundaries are reproducible. */
export function pseudoRandom(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A non-UTF-8 file name (latin1 'é' as a single 0xE9 byte). */
export const NON_UTF8_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);

/**
 * Builds a small tree with every kind of entry the engine must round-trip:
 * regular files (0 bytes, small, larger than maxSize), nested and empty dirs,
 * a symlink and a broken symlink, a non-UTF-8 name, unusual modes and mtimes.
 */
export async function makeSampleTree(root: string, maxSize = 16 * 1024): Promise<void> {
  await mkdir(join(root, 'dir/sub/deeper'), { recursive: true });
  await mkdir(join(root, 'empty-dir'));
  await writeFile(join(root, 'empty.txt'), '');
  await writeFile(join(root, 'hello.txt'), 'hello, kiwi\n');
  await writeFile(join(root, 'dir/big.bin'), pseudoRandom(maxSize * 5 + 123, 42));
  await writeFile(join(root, 'dir/sub/small.bin'), pseudoRandom(777, 3));
  await writeFile(join(root, 'dir/sub/deeper/dup1.bin'), pseudoRandom(5000, 9));
  await writeFile(join(root, 'dir/sub/deeper/dup2.bin'), pseudoRandom(5000, 9));
  await writeFile(join(root, 'exec.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(root, 'exec.sh'), 0o755);
  await writeFile(join(root, 'private.txt'), 'secret-ish');
  await chmod(join(root, 'private.txt'), 0o600);
  await writeFile(join(root, 'odd-mode'), 'x');
  await chmod(join(root, 'odd-mode'), 0o4751);
  await symlink('hello.txt', join(root, 'link-to-hello'));
  await symlink('does/not/exist', join(root, 'broken-link'));
  await writeFile(Buffer.concat([Buffer.from(root + '/'), NON_UTF8_NAME]), 'latin1 name');
  await chmod(join(root, 'dir/sub'), 0o750);
  // Distinctive mtimes with microseconds.
  await utimes(join(root, 'hello.txt'), 1_600_000_000.123456, 1_600_000_000.123456);
  await utimes(join(root, 'dir/big.bin'), 1_500_000_000.654321, 1_500_000_000.654321);
  await lutimes(join(root, 'link-to-hello'), 1_400_000_000.5, 1_400_000_000.5);
  await utimes(join(root, 'empty-dir'), 1_300_000_000.25, 1_300_000_000.25);
  // And with nanoseconds (beyond a double's precision) where they can be set exactly.
  const nt = nativeTimes();
  if (nt) {
    nt.lutimensSync(join(root, 'private.txt'), 1_700_000_000_123_456_789n, 1_700_000_000_123_456_789n);
    nt.lutimensSync(join(root, 'broken-link'), 1_650_000_000_987_654_321n, 1_650_000_000_987_654_321n);
    nt.lutimensSync(join(root, 'dir/sub/deeper'), 1_550_000_000_000_000_001n, 1_550_000_000_000_000_001n);
  }
}

export interface FsEntryInfo {
  type: string;
  mode: number;
  /** Nanoseconds (see `comparableMtime`). */
  mtimeNs: bigint;
  size: number;
  sha?: string;
  link?: string;
}

/**
 * Describes every entry under `root` by relative path (latin1, so non-UTF-8
 * names stay distinct): type, mode, mtime in ns, content hash, link target.
 */
export async function describeTree(root: string, opts: { dirMtimes?: boolean } = {}): Promise<Map<string, FsEntryInfo>> {
  const out = new Map<string, FsEntryInfo>();
  async function visit(dir: Buffer, rel: string): Promise<void> {
    const names = (await readdir(dir, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const r = rel + '/' + name.toString('latin1');
      const st = await lstat(p, { bigint: true });
      const info: FsEntryInfo = {
        type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other',
        mode: Number(st.mode & 0o7777n),
        mtimeNs: comparableMtime(st.mtimeNs),
        size: st.isFile() ? Number(st.size) : 0,
      };
      if (st.isFile()) info.sha = createHash('sha256').update(await readFile(p)).digest('hex');
      if (st.isSymbolicLink()) info.link = ((await readlink(p, { encoding: 'buffer' })) as Buffer).toString('latin1');
      if (st.isDirectory()) {
        if (opts.dirMtimes === false) info.mtimeNs = 0n;
        await visit(p, r);
      }
      out.set(r, info);
    }
  }
  await visit(Buffer.from(root), '');
  return out;
}
