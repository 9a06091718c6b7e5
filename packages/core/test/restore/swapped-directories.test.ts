/**
 * Someone who can write in the target swaps its directories for symlinks while the restore runs:
 * nothing may be written through them (restore/anchors.ts). Deterministic swaps from the progress
 * callback, with anchors on and (as on systems without /proc) off; and, as root, a real attacker
 * process of another user swapping in a loop.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { existsSync, renameSync, symlinkSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { restoreSnapshot, runBackup } from '../../src/index.js';
import { anchorsAvailable, setAnchorsForTesting } from '../../src/restore/anchors.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  setAnchorsForTesting(undefined);
  await removeDir(work);
});

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** `src/victim/` with `n` files (distinct contents) and `src/z-other/one` (after it: the first progress report is a victim's file). */
async function makeSource(src: string, n: number): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  await mkdir(join(src, 'victim'), { recursive: true });
  await mkdir(join(src, 'z-other'), { recursive: true });
  for (let i = 0; i < n; i++) {
    const data = Buffer.from(`file ${i} `.repeat(1 + (i % 50)));
    await writeFile(join(src, 'victim', `f${i}`), data);
    files.set(`victim/f${i}`, data);
  }
  await writeFile(join(src, 'z-other', 'one'), 'one');
  files.set('z-other/one', Buffer.from('one'));
  return files;
}

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    out.push(e.name);
    if (e.isDirectory()) for (const s of await listAll(join(dir, e.name))) out.push(`${e.name}/${s}`);
  }
  return out.sort();
}

describe('restore into a target whose directories are swapped for symlinks meanwhile', () => {
  it('is protected on Linux (anchors are on in this suite)', () => {
    if (process.platform === 'linux') expect(anchorsAvailable()).toBe(true);
  });

  it('an existing directory swapped once the restore is in it: every file lands in that directory (moved), none through the symlink', async () => {
    const src = join(work, 'src');
    const files = await makeSource(src, 200);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    const target = join(work, 'target');
    const outside = join(work, 'outside');
    await mkdir(outside);
    const base = join(target, src);
    // The directory exists already (a restore in place): the restore looks at what is there.
    await mkdir(join(base, 'victim'), { recursive: true });
    await writeFile(join(base, 'victim', 'old'), 'old');
    let swapped = false;
    const rr = await restoreSnapshot({
      repository: repo,
      snapshotId: res.snapshotId!,
      target,
      overwrite: 'always',
      onProgress: (p) => {
        if (swapped || !p.current.includes('/victim/')) return;
        swapped = true;
        // (Synchronous here: between the traversal's steps, before this directory's files are written.)
        renameSync(join(base, 'victim'), join(base, 'victim.moved'));
        symlinkSync(outside, join(base, 'victim'));
      },
    });
    expect(swapped).toBe(true);
    expect(await readdir(outside)).toEqual([]);
    expect(rr.errors).toEqual([]);
    // Everything went into the directory the restore had opened, wherever it was moved to.
    for (const [rel, data] of files) {
      const p = rel.startsWith('victim/') ? join(base, 'victim.moved', rel.slice('victim/'.length)) : join(base, rel);
      expect((await readFile(p)).equals(data), rel).toBe(true);
    }
    expect((await lstat(join(base, 'victim'))).isSymbolicLink()).toBe(true);
  });

  it('a directory the restore made in a fresh target, swapped: nothing lands outside', async () => {
    const src = join(work, 'src');
    const files = await makeSource(src, 100);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    const target = join(work, 'target');
    const outside = join(work, 'outside');
    await mkdir(outside);
    const top = src.split('/')[1]!; // the first directory below the target
    let swapped = false;
    const rr = await restoreSnapshot({
      repository: repo,
      snapshotId: res.snapshotId!,
      target,
      onProgress: (p) => {
        if (swapped || !p.current.includes('/victim/')) return;
        swapped = true;
        renameSync(join(target, top), join(target, `${top}.moved`));
        symlinkSync(outside, join(target, top));
      },
    });
    expect(swapped).toBe(true);
    expect(await listAll(outside)).toEqual([]);
    expect(rr.errors).toEqual([]);
    const moved = join(target, `${top}.moved`, src.split('/').slice(2).join('/'));
    for (const [rel, data] of files) expect((await readFile(join(moved, rel))).equals(data), rel).toBe(true);
  });

  it('without anchors (systems without /proc) a restore still works (plain paths)', async () => {
    setAnchorsForTesting(false);
    const src = join(work, 'src');
    const files = await makeSource(src, 50);
    await symlink('victim/f1', join(src, 'link'));
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    const target = join(work, 'target');
    for (const overwrite of ['if-changed', 'always'] as const) {
      const rr = await restoreSnapshot({ repository: repo, snapshotId: res.snapshotId!, target, overwrite, verify: true, delete: true });
      expect(rr.errors).toEqual([]);
      for (const [rel, data] of files) expect((await readFile(join(target, src, rel))).equals(data), rel).toBe(true);
      expect((await lstat(join(target, src, 'link'))).isSymbolicLink()).toBe(true);
    }
  });

  it.runIf(isRoot)('as root, a process of another user swapping its directory in a loop never gets a file written outside', { timeout: 120_000 }, async () => {
    // nobody (65534) owns target/home/user; the restore (root) writes target/home/user/dir/*.
    await chmod(work, 0o755);
    const src = join(work, 'src');
    const n = 3000;
    await mkdir(join(src, 'home', 'user', 'dir'), { recursive: true });
    for (let i = 0; i < n; i++) await writeFile(join(src, 'home', 'user', 'dir', `f${i}`), `secret ${i}\n`);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [join(src, 'home')] });
    expect(res.errors).toEqual([]);
    const target = join(work, 'target');
    const user = join(target, src, 'home', 'user');
    await mkdir(join(user, 'dir'), { recursive: true });
    await chown(user, 65534, 65534);
    await chown(join(user, 'dir'), 65534, 65534);
    for (let d = target; d.length > work.length; d = join(d, '..')) await chmod(d, 0o755);
    // Root's directory that nobody may write to: what the attacker wants root to write into.
    const outside = join(work, 'outside');
    await mkdir(outside, { mode: 0o755 });
    await writeFile(join(outside, 'f1'), 'original');
    const script = `
      const fs = require('fs');
      const dir = ${JSON.stringify(join(user, 'dir'))}, aside = dir + '.aside', out = ${JSON.stringify(outside)};
      let stop = false;
      process.on('SIGTERM', () => { stop = true; });
      const spin = (us) => { const end = process.hrtime.bigint() + BigInt(us) * 1000n; while (process.hrtime.bigint() < end); };
      // The directory is in place most of the time (the restore looks at it and finds it), a symlink now and then.
      const loop = () => {
        for (let i = 0; i < 50 && !stop; i++) {
          try { fs.renameSync(dir, aside); } catch {}
          try { fs.symlinkSync(out, dir); } catch {}
          spin(300);
          try { fs.unlinkSync(dir); } catch {}
          try { fs.renameSync(aside, dir); } catch {}
          spin(300);
        }
        if (stop) process.exit(0); else setImmediate(loop);
      };
      process.send('ready');
      loop();`;
    const attacker = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      await new Promise<void>((resolve, reject) => {
        attacker.once('message', () => resolve());
        attacker.once('error', reject);
        attacker.once('exit', (code) => reject(new Error(`the attacker process exited (${code})`)));
      });
      for (let round = 0; round < 3; round++) await restoreSnapshot({ repository: repo, snapshotId: res.snapshotId!, target, overwrite: 'always' });
    } finally {
      attacker.kill('SIGTERM');
      await new Promise((r) => attacker.once('exit', r));
    }
    expect(await readdir(outside)).toEqual(['f1']);
    expect(await readFile(join(outside, 'f1'), 'utf8')).toBe('original');
    expect((await lstat(join(outside, 'f1'))).uid).toBe(0);
    // What the restore did write is in the user's directory (wherever the loop left it), not elsewhere.
    const written = [join(user, 'dir'), join(user, 'dir.aside')].filter((p) => existsSync(p));
    expect(written.length).toBeGreaterThan(0);
  });
});
