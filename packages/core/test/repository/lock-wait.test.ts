import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { LockHeldError } from '../../src/repository/errors.js';
import { Repository } from '../../src/repository/repository.js';
import { listLocks, parseLockWait, removeLocks, writeLockFile, type LockWait } from '../../src/repository/lock.js';
import { newRepo, quietLogger } from './helpers.js';

async function second(storage: Parameters<typeof Repository.open>[0], lockOptions = {}) {
  return Repository.open(storage, 'secret', { logger: quietLogger(), lockOptions });
}

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

describe('waiting for a lock (--retry-lock)', () => {
  it('a shared lock waits for an exclusive one, and gets it once it is released', async () => {
    const { repo, storage } = await newRepo();
    const held = await repo.lock('exclusive');
    const waits: LockWait[] = [];
    const other = await second(storage, {
      retryLockMs: 60_000,
      retryDelayMs: 10,
      onWait: (w: LockWait) => {
        waits.push(w);
        if (waits.length === 3) void held.release();
      },
    });
    const got = await other.lock('shared');
    expect(got.kind).toBe('shared');
    expect(waits.length).toBeGreaterThanOrEqual(3);
    expect(waits[0]).toMatchObject({ kind: 'shared', attempt: 1 });
    expect(waits[0]!.holders).toEqual([expect.objectContaining({ pid: process.pid, hostname: hostname(), exclusive: true })]);
    // The pauses grow.
    expect(waits[2]!.retryInMs).toBeGreaterThan(waits[0]!.retryInMs);
    expect(storage.paths('locks/')).toEqual([`locks/${got.name}`]);
    await other.close();
    await repo.close();
  });

  it('gives up when the wait is over, naming every holder and the time waited', async () => {
    const { repo, storage } = await newRepo({ hostname: 'host-a', username: 'alice' });
    const ctx = repo.lockContext();
    await writeLockFile(ctx, { time: new Date().toISOString(), hostname: 'nas', pid: 1234, username: 'bob', exclusive: false });
    const mine = await repo.lock('shared');
    const other = await second(storage, { retryLockMs: 150, retryDelayMs: 10 });
    const err = (await other.lock('exclusive').catch((e: unknown) => e)) as LockHeldError;
    expect(err).toBeInstanceOf(LockHeldError);
    expect(err.holders.map((h) => `${h.pid}@${h.hostname}`).sort()).toEqual([`${process.pid}@host-a`, '1234@nas'].sort());
    expect(err.waitedMs).toBeGreaterThan(0);
    expect(err.message).toMatch(/a shared lock is held by pid \d+ on (nas|host-a) .*; also a shared lock is held by pid \d+ on (nas|host-a) .*cannot take an exclusive lock \(gave up after waiting \d+ s\)/);
    // Nothing of the failed attempts is left behind.
    expect(storage.paths('locks/')).toHaveLength(2);
    await mine.release();
    await other.close();
    await repo.close();
  });

  it('without a wait, fails at once (the default)', async () => {
    const { repo, storage } = await newRepo();
    const held = await repo.lock('exclusive');
    let waited = false;
    const other = await second(storage, { onWait: () => (waited = true) });
    await expect(other.lock('shared')).rejects.toMatchObject({ name: 'LockHeldError', waitedMs: 0 });
    expect(waited).toBe(false);
    await held.release();
    await other.close();
    await repo.close();
  });

  it('an abort signal ends the wait with its reason', async () => {
    const { repo, storage } = await newRepo();
    const held = await repo.lock('exclusive');
    const ac = new AbortController();
    const other = await second(storage, { retryLockMs: 60_000, retryDelayMs: 10, signal: ac.signal, onWait: () => ac.abort(new Error('interrupted by SIGINT')) });
    await expect(other.lock('exclusive')).rejects.toThrow('interrupted by SIGINT');
    expect(storage.paths('locks/')).toEqual([`locks/${held.name}`]);
    await held.release();
    await other.close();
    await repo.close();
  });
});

describe('unlock', () => {
  it('removes stale locks (dead pid on this host, not refreshed for too long) and keeps live ones', async () => {
    const { repo, storage } = await newRepo();
    const ctx = repo.lockContext();
    const live = await repo.lock('shared');
    const otherHost = await writeLockFile(ctx, { time: new Date().toISOString(), hostname: 'elsewhere', pid: 99, username: 'x', exclusive: true });
    const dead = await writeLockFile(ctx, { time: new Date().toISOString(), hostname: ctx.hostname, pid: deadPid(), username: 'x', exclusive: false });
    const old = await writeLockFile(ctx, { time: new Date(Date.now() - 31 * 60_000).toISOString(), hostname: 'elsewhere', pid: 7, username: 'x', exclusive: true });
    await storage.save({ type: 'lock', name: 'f'.repeat(64) }, Buffer.from('not a lock'));

    const listed = await listLocks(ctx);
    expect(listed).toHaveLength(5);
    expect(listed.find((e) => e.name === dead)!.stale).toMatch(/process \d+ on .* is gone/);
    expect(listed.find((e) => e.name === old)!.stale).toMatch(/last refreshed 31 min ago/);
    expect(listed.find((e) => e.name === 'f'.repeat(64))!.error).toBeTruthy();

    const r = await removeLocks(ctx);
    expect(r.removed.map((e) => e.name).sort()).toEqual([dead, old].sort());
    expect(r.kept.map((e) => e.name).sort()).toEqual([live.name, otherHost, 'f'.repeat(64)].sort());
    expect(storage.paths('locks/')).toHaveLength(3);

    const all = await removeLocks(ctx, { removeAll: true });
    expect(all.removed).toHaveLength(3);
    expect(storage.paths('locks/')).toHaveLength(0);
    await live.release(); // already gone: not an error
    await repo.close();
  });
});

describe('parseLockWait', () => {
  it.each([
    ['0', 0],
    ['90', 90_000],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['250ms', 250],
  ])('%s', (text, ms) => expect(parseLockWait(text)).toBe(ms));
  it.each(['', '5 minutes', '-1s', '1d', 'soon', '200h'])('refuses %j', (text) => {
    expect(() => parseLockWait(text)).toThrow(/--retry-lock/);
  });
});
