/**
 * Waiting for locks (`--retry-lock`) and `kiwi unlock`. The lock holder is this test process:
 * another process from the point of view of the `kiwi` commands it runs.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { Repository, writeLockFile, type RepoLock } from '@kiwi-backup/core';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { runKiwi, tempDir, removeDir, jsonLines } from './helpers.js';

describe('locks: --retry-lock and kiwi unlock', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;
  let repo: Repository;

  beforeAll(async () => {
    work = await tempDir('kiwi-locks-');
    src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'f.txt'), 'f');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    repo = await Repository.open(createLocalStorage(env.KIWI_REPOSITORY!), 'pw', { logger: { info: () => {}, warn: () => {} } });
  });
  afterAll(async () => {
    await repo?.close();
    await removeDir(work);
  });

  const lockFiles = async () => (await readdir(join(env.KIWI_REPOSITORY!, 'locks'))).length;

  /** Run kiwi; `onStderr` sees its stderr as it comes. */
  function runWatching(args: string[], onStderr: (text: string) => void) {
    return runKiwi(args, {
      env,
      onSpawn: (child) => {
        let seen = '';
        child.stderr!.on('data', (d: Buffer | string) => {
          seen += String(d);
          onStderr(seen);
        });
      },
    });
  }

  it('a backup started while an exclusive lock is held waits, then succeeds once it is released', async () => {
    const lock = await repo.lock('exclusive');
    let released = false;
    const r = await runWatching(['backup', src, '--retry-lock', '2m'], (seen) => {
      if (!released && seen.includes('is locked by')) {
        released = true;
        void lock.release();
      }
    });
    expect(r.code, r.stderr).toBe(0);
    expect(released).toBe(true);
    expect(r.stderr).toMatch(new RegExp(`is locked by pid ${process.pid} on ${hostname()} \\(exclusive, user .*\\); waiting up to .* more for a shared lock \\(--retry-lock\\)`));
    expect(await lockFiles()).toBe(0);
  });

  it('forget waits for a backup (shared lock) the same way; --json reports the wait as status lines', async () => {
    const lock = await repo.lock('shared');
    let released = false;
    const r = await runKiwi(['forget', '--keep-last', '1', '--retry-lock', '2m', '--json'], {
      env,
      onSpawn: (child) => {
        let seen = '';
        child.stdout!.on('data', (d: Buffer | string) => {
          seen += String(d);
          if (!released && seen.includes('"lock_wait"')) {
            released = true;
            void lock.release();
          }
        });
      },
    });
    expect(r.code, r.stderr).toBe(0);
    const waits = jsonLines(r.stdout).filter((l) => l.message_type === 'status' && l.action === 'lock_wait');
    expect(waits[0]).toMatchObject({ lock: 'exclusive', holders: [expect.objectContaining({ pid: process.pid, exclusive: false })] });
    expect(await lockFiles()).toBe(0);
  });

  it('when the wait is over: exit 11, naming the holder and how long it waited', async () => {
    const lock = await repo.lock('exclusive');
    try {
      const r = await runKiwi(['backup', src, '--retry-lock', '2s'], { env });
      expect(r.code).toBe(11);
      expect(r.stderr).toContain(`an exclusive lock is held by pid ${process.pid} on ${hostname()}`);
      expect(r.stderr).toMatch(/cannot take a shared lock \(gave up after waiting [12] s\)/);
      expect(r.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
      const json = await runKiwi(['backup', src, '--retry-lock', '0', '--json'], { env });
      expect(json.code).toBe(11);
      expect(jsonLines(json.stdout).find((l) => l.message_type === 'error')).toMatchObject({ error: 'LockHeldError' });
    } finally {
      await lock.release();
    }
    expect(await lockFiles()).toBe(0);
  });

  it('prune waits the same way for a backup, and gives up with exit 11', async () => {
    const lock = await repo.lock('shared');
    try {
      const r = await runKiwi(['prune', '--retry-lock', '1s'], { env });
      expect(r.code).toBe(11);
      expect(r.stderr).toContain(`a shared lock is held by pid ${process.pid}`);
      expect(r.stderr).toMatch(/cannot take an exclusive lock \(gave up after waiting [01] s\)/);
    } finally {
      await lock.release();
    }
    const ok = await runKiwi(['prune', '--retry-lock', '0'], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(await lockFiles()).toBe(0);
  });

  it('two backups at once are allowed (shared + shared): no waiting', async () => {
    const lock: RepoLock = await repo.lock('shared');
    try {
      const r = await runKiwi(['backup', src, '--retry-lock', '0'], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toContain('is locked');
    } finally {
      await lock.release();
    }
  });

  it('unlock removes stale locks (dead pid here, or too old) and keeps live ones; --remove-all removes every lock', async () => {
    const ctx = repo.lockContext();
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    const live = await repo.lock('shared');
    const dead = await writeLockFile(ctx, { time: new Date().toISOString(), hostname: hostname(), pid: deadPid, username: 'u', exclusive: true });
    const old = await writeLockFile(ctx, { time: new Date(Date.now() - 45 * 60_000).toISOString(), hostname: 'nas', pid: 42, username: 'u', exclusive: false });
    const otherHost = await writeLockFile(ctx, { time: new Date().toISOString(), hostname: 'nas', pid: 43, username: 'u', exclusive: false });

    const r = await runKiwi(['unlock'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`removed locks/${dead}: exclusive lock of pid ${deadPid} on ${hostname()}`);
    expect(r.stdout).toContain(`(stale: process ${deadPid} on ${hostname()} is gone)`);
    expect(r.stdout).toContain(`removed locks/${old}: shared lock of pid 42 on nas`);
    expect(r.stdout).toMatch(/stale: it was last refreshed 45 min ago/);
    expect(r.stderr).toContain(`left in place locks/${otherHost}`);
    expect(r.stderr).toContain(`left in place locks/${live.name}`);
    expect(await lockFiles()).toBe(2);

    const all = await runKiwi(['unlock', '--remove-all', '--json'], { env });
    expect(all.code, all.stderr).toBe(0);
    const lines = jsonLines(all.stdout);
    expect(lines.filter((l) => l.message_type === 'lock_removed').map((l) => l.file).sort()).toEqual([`locks/${live.name}`, `locks/${otherHost}`].sort());
    expect(lines.find((l) => l.message_type === 'summary')).toMatchObject({ removed: 2, kept: 0, remove_all: true });
    expect(await lockFiles()).toBe(0);
    await live.release(); // already gone

    const none = await runKiwi(['unlock'], { env });
    expect(none.code).toBe(0);
    expect(none.stderr).toContain('no locks');
  });
});
