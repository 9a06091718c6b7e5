/**
 * A backup reads what the walk listed, never what a swapped directory leads to: a local user who
 * can write in a backed-up tree swaps one of its directories for a symlink (to a stand-in for
 * `/etc/ssh`) between the walk's listing and the read below it. O_NOFOLLOW guards only the last
 * name of a path, so before this was checked the outside files were stored under the user's path.
 * A file replaced within its own directory (a log rotated between the walk and the read) is still
 * read, as before: what the directory holds now.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { lookupPath, PluginRuntime, runBackup, type PluginDefinition, type Snapshot } from '../../src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { nativeFs } from '../../src/native/native-fs.js';
import { anchorsAvailable } from '../../src/restore/anchors.js';
import { nativeScanAvailable } from '../../src/walker/scan.js';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { pseudoRandom, removeDir, tempDir } from './helpers/fs-tree.js';

let work: string;
let src: string;
let secret: string;
beforeEach(async () => {
  work = await tempDir('kiwi-swapped-');
  src = join(work, 'src');
  secret = join(work, 'etc-ssh');
  mkdirSync(join(src, 'a', 'sub'), { recursive: true });
  mkdirSync(join(secret, 'sub'), { recursive: true });
});
afterEach(async () => {
  await removeDir(work);
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const repoOpts = { kdf: { N: 1024, r: 8, p: 1 }, logger: { info() {}, warn() {} }, chunker: { minSize: 1024, avgSize: 4096, maxSize: 16 * 1024 }, packSize: 64 * 1024 };
const SECRET = Buffer.from('-----BEGIN OPENSSH PRIVATE KEY----- root only\n');
const SECRET_XATTR = 'user.kiwi-secret';

/** Sets the secret attribute on `path`; false where the file system has no user attributes. */
function trySetXattr(path: string): boolean {
  try {
    nativeFs()!.lsetxattrSync(Buffer.from(path), Buffer.from(SECRET_XATTR), Buffer.from('root only'));
    return true;
  } catch (err) {
    if (['ENOTSUP', 'EOPNOTSUPP'].includes((err as NodeJS.ErrnoException).code ?? '')) return false;
    throw err;
  }
}

async function repository(): Promise<Repository> {
  return Repository.init(createMemoryStorage(`swapped-${Math.random().toString(36).slice(2)}`), 'pw', repoOpts);
}

/** A plug-in that runs `swap` once, when the backup reaches `path` (after the walk listed it). */
async function swapAt(path: string, swap: () => void): Promise<PluginRuntime> {
  let done = false;
  return PluginRuntime.fromModules(
    [
      {
        name: 'attacker',
        module: {
          onFile: async (ctx, next) => {
            if (!done && ctx.file.path === path) {
              done = true;
              swap();
            }
            await next();
          },
        } satisfies PluginDefinition,
      },
    ],
    { logger: quiet },
  );
}

/** `src/a` becomes a symlink to the secret directory (the real one moved aside). */
function swapA(): void {
  renameSync(join(src, 'a'), join(src, 'a.real'));
  symlinkSync(secret, join(src, 'a'));
}

/** Every byte of every file the snapshot stores, as one Buffer. */
async function storedBytes(repo: Repository, snapshot: Snapshot, paths: string[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const p of paths) {
    const node = await lookupPath(repo, snapshot, p);
    for (const id of node?.content ?? []) parts.push(Buffer.from(await repo.loadBlob('data', id)));
  }
  return Buffer.concat(parts);
}

describe.each([
  { workers: 0, where: 'on the main thread' },
  { workers: 2, where: 'on saver threads' },
])('a directory swapped for a symlink during the backup ($where)', ({ workers }) => {
  it.runIf(anchorsAvailable())('a file below it is not read through the symlink: an error for that file, the outside file is not stored', async () => {
    const small = Buffer.from('my own small file\n');
    const big = pseudoRandom(200_000, 3);
    writeFileSync(join(src, 'a', 'key'), small);
    writeFileSync(join(src, 'a', 'big'), big);
    writeFileSync(join(secret, 'key'), SECRET);
    writeFileSync(join(secret, 'big'), Buffer.concat([SECRET, pseudoRandom(200_000, 4)]));
    // Swapped once the walk has listed `a` and before either file is opened ('big' comes first).
    const plugins = await swapAt(join(src, 'a', 'big'), swapA);
    const repo = await repository();
    const res = await runBackup({ repository: repo, sources: [src], plugins, workers });
    expect(res.status).toBe('partial');
    const errors = new Map(res.errors.map((e) => [e.path, e.message]));
    expect(errors.get(join(src, 'a', 'key'))).toMatch(/directory was replaced/);
    expect(errors.get(join(src, 'a', 'big'))).toMatch(/directory was replaced/);
    const stored = await storedBytes(repo, res.snapshot!, [join(src, 'a', 'key'), join(src, 'a', 'big')]);
    expect(stored.includes(SECRET.subarray(0, 20))).toBe(false);
    expect(res.stats.bytesRead).toBe(0);
  });

  it('a file replaced within its own directory (a rotated log) is read as it is now, without an error', async () => {
    writeFileSync(join(src, 'a', 'app.log'), 'old log line\n');
    const fresh = Buffer.concat([Buffer.from('new log\n'), pseudoRandom(workers ? 50_000 : 10, 5)]);
    const plugins = await swapAt(join(src, 'a', 'app.log'), () => {
      renameSync(join(src, 'a', 'app.log'), join(src, 'a', 'app.log.1'));
      writeFileSync(join(src, 'a', 'app.log'), fresh);
    });
    const repo = await repository();
    const res = await runBackup({ repository: repo, sources: [src], plugins, workers });
    expect(res.errors).toEqual([]);
    expect(res.status).toBe('success');
    expect((await storedBytes(repo, res.snapshot!, [join(src, 'a', 'app.log')])).equals(fresh)).toBe(true);
    expect((await lookupPath(repo, res.snapshot!, join(src, 'a', 'app.log')))!.size).toBe(fresh.length);
  });
});

describe('a directory above one not yet read swapped for a symlink', () => {
  it.runIf(nativeScanAvailable())('the directory below is not listed through the symlink: an error for it, nothing of the outside stored', async () => {
    writeFileSync(join(src, 'a', 'sub', 'mine.txt'), 'mine\n');
    writeFileSync(join(secret, 'sub', 'ssh_host_ed25519_key'), SECRET);
    // The walk has listed `a` (with `sub` in it); `sub` is read after its plug-in call.
    const plugins = await swapAt(join(src, 'a', 'sub'), swapA);
    const repo = await repository();
    const res = await runBackup({ repository: repo, sources: [src], plugins, workers: 0 });
    expect(res.status).toBe('partial');
    expect(res.errors).toEqual([{ path: join(src, 'a', 'sub'), message: expect.stringMatching(/^readdir: the directory was replaced while the walk read it/) }]);
    expect(await lookupPath(repo, res.snapshot!, join(src, 'a', 'sub', 'ssh_host_ed25519_key'))).toBeUndefined();
    expect(await lookupPath(repo, res.snapshot!, join(src, 'a', 'sub', 'mine.txt'))).toBeUndefined();
    expect(res.stats.bytesRead).toBe(0);
  });
});

describe('a process of another user swapping its directory in a loop', () => {
  const isRoot = process.getuid?.() === 0;
  it.runIf(isRoot && anchorsAvailable() && nativeScanAvailable())('as root, the backup of its home never stores a file of root\'s from outside', { timeout: 120_000 }, async () => {
    // nobody (65534) owns home/user; root backs up home. `outside` is root's, mode 0700.
    chmodSync(work, 0o755);
    const home = join(work, 'home');
    const user = join(home, 'user');
    const dir = join(user, 'dir');
    const outside = join(work, 'outside');
    const n = 1500;
    for (const d of [join(dir, 'sub'), join(outside, 'sub')]) mkdirSync(d, { recursive: true });
    for (let i = 0; i < n; i++) {
      writeFileSync(join(dir, `f${i}`), `mine ${i}\n`);
      writeFileSync(join(outside, `f${i}`), `ROOT-SECRET ${i}\n`);
    }
    for (let i = 0; i < 200; i++) {
      writeFileSync(join(dir, 'sub', `g${i}`), `mine too ${i}\n`);
      writeFileSync(join(outside, 'sub', `g${i}`), `ROOT-SECRET sub ${i}\n`);
    }
    // Attributes of root's entries outside, where the file system has user attributes: never stored either.
    const xattrs = nativeFs()?.xattrSupported === true && trySetXattr(join(outside, 'f0'));
    if (xattrs) {
      for (let i = 1; i < n; i++) trySetXattr(join(outside, `f${i}`));
      for (let i = 0; i < 200; i++) trySetXattr(join(outside, 'sub', `g${i}`));
      trySetXattr(join(outside, 'sub'));
    }
    chmodSync(outside, 0o700);
    for (const p of [user, dir, join(dir, 'sub')]) chownSync(p, 65534, 65534);
    if (xattrs) for (const p of [join(dir, 'f0'), join(dir, 'sub', 'g0')]) nativeFs()!.lsetxattrSync(Buffer.from(p), Buffer.from('user.mine'), Buffer.from('yes'));
    const script = `
      const fs = require('fs');
      const dir = ${JSON.stringify(dir)}, aside = dir + '.aside', out = ${JSON.stringify(outside)};
      let stop = false;
      process.on('SIGTERM', () => { stop = true; });
      const spin = (us) => { const end = process.hrtime.bigint() + BigInt(us) * 1000n; while (process.hrtime.bigint() < end); };
      // The directory is in place most of the time (the walk lists it), a symlink now and then.
      const loop = () => {
        for (let i = 0; i < 50 && !stop; i++) {
          try { fs.renameSync(dir, aside); } catch {}
          try { fs.symlinkSync(out, dir); } catch {}
          spin(150);
          try { fs.unlinkSync(dir); } catch {}
          try { fs.renameSync(aside, dir); } catch {}
          spin(600);
        }
        if (stop) process.exit(0); else setImmediate(loop);
      };
      process.send('ready');
      loop();`;
    const attacker = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const repo = await repository();
    let errors = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        attacker.once('message', () => resolve());
        attacker.once('error', reject);
        attacker.once('exit', (code) => reject(new Error(`the attacker process exited (${code})`)));
      });
      // Rounds in which the walk got to list `dir` (it is a symlink or missing now and then: an error
      // for it, nothing read), on the main thread and on saver threads.
      let readRounds = 0;
      for (let round = 0; round < 30 && readRounds < 4; round++) {
        const res = await runBackup({ repository: repo, sources: [home], workers: round % 2 === 0 ? 0 : 2 });
        errors += res.errors.length;
        if (res.stats.bytesRead > 0) readRounds++;
      }
      expect(readRounds).toBeGreaterThan(0);
    } finally {
      attacker.kill('SIGTERM');
      await new Promise((r) => attacker.once('exit', r));
    }
    // The swaps did land (entries failed or went missing), and no stored blob holds a byte of outside.
    expect(errors).toBeGreaterThan(0);
    await repo.loadIndex();
    const ids: string[] = [];
    repo.internals().index.forEachUsableId('data', (buf, off) => ids.push(Buffer.from(buf.subarray(off, off + 32)).toString('hex')));
    expect(ids.length).toBeGreaterThan(0);
    let leaked = 0;
    for (const id of ids) if ((await repo.loadBlob('data', id)).includes('ROOT-SECRET')) leaked++;
    expect(leaked).toBe(0);
    if (xattrs) {
      const trees: string[] = [];
      repo.internals().index.forEachUsableId('tree', (buf, off) => trees.push(Buffer.from(buf.subarray(off, off + 32)).toString('hex')));
      let withSecret = 0;
      let withMine = 0;
      for (const id of trees) {
        const text = (await repo.loadBlob('tree', id)).toString('utf8');
        if (text.includes(SECRET_XATTR) || text.includes(Buffer.from(SECRET_XATTR).toString('base64'))) withSecret++;
        if (text.includes(Buffer.from('user.mine').toString('base64')) || text.includes('user.mine')) withMine++;
      }
      expect(withSecret).toBe(0);
      // (The user's own attributes are stored: the check above looks where they are.)
      expect(withMine).toBeGreaterThan(0);
    }
  });
});
