import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { LockHeldError } from '../../src/repository/errors.js';
import { Repository } from '../../src/repository/repository.js';
import { readLockFile, writeLockFile } from '../../src/repository/lock.js';
import { newRepo, quietLogger } from './helpers.js';

async function second(storage: Parameters<typeof Repository.open>[0], opts = {}) {
  const logger = quietLogger();
  return { repo: await Repository.open(storage, 'secret', { logger, ...opts }), logger };
}

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  expect(r.status).toBe(0);
  return r.pid!;
}

describe('locks', () => {
  it('allows shared + shared, refuses exclusive against any lock', async () => {
    const { repo, storage } = await newRepo();
    const { repo: other } = await second(storage);
    const a = await repo.lock('shared');
    const b = await other.lock('shared');
    expect(storage.paths('locks/')).toHaveLength(2);
    const err = (await other.lock('exclusive').catch((e: unknown) => e)) as LockHeldError;
    expect(err).toBeInstanceOf(LockHeldError);
    expect(err.holder).toMatchObject({ hostname: hostname(), pid: process.pid, exclusive: false });
    expect(err.message).toContain(`pid ${process.pid}`);
    expect(storage.paths('locks/')).toHaveLength(2); // the failed attempt left nothing behind
    await a.release();
    await b.release();
    await a.release(); // idempotent
    expect(storage.paths('locks/')).toHaveLength(0);
    const x = await other.lock('exclusive');
    await expect(repo.lock('shared')).rejects.toMatchObject({ name: 'LockHeldError', holder: { exclusive: true } });
    await expect(repo.lock('exclusive')).rejects.toBeInstanceOf(LockHeldError);
    await other.close(); // releases x
    expect(storage.paths('locks/')).toHaveLength(0);
    expect(x.name).toMatch(/^[0-9a-f]{64}$/);
    await repo.close();
  });

  it('stores encrypted lock files with the documented fields', async () => {
    const { repo, storage } = await newRepo({ hostname: 'hh', username: 'uu' });
    const l = await repo.lock('exclusive');
    const raw = storage.files.get(`locks/${l.name}`)!;
    expect(raw.toString('latin1')).not.toContain('hh');
    const info = await readLockFile(repo.lockContext(), l.name);
    expect(Object.keys(info!).sort()).toEqual(['exclusive', 'hostname', 'pid', 'time', 'username']);
    expect(info).toMatchObject({ hostname: 'hh', username: 'uu', pid: process.pid, exclusive: true });
    await repo.close();
  });

  it('takes over a lock that is older than 30 minutes, with a log line', async () => {
    const { repo, storage, logger } = await newRepo();
    const old = new Date(Date.now() - 31 * 60 * 1000).toISOString();
    const name = await writeLockFile(repo.lockContext(), { time: old, hostname: 'elsewhere', pid: 4242, username: 'x', exclusive: true });
    const l = await repo.lock('exclusive');
    expect(storage.files.has(`locks/${name}`)).toBe(false);
    expect(logger.lines.join('\n')).toMatch(/removing stale exclusive lock .* pid 4242 on elsewhere .*31 min ago/);
    await l.release();
    await repo.close();
  });

  it('takes over at once a lock of a dead process on this host', async () => {
    const { repo, storage, logger } = await newRepo();
    const pid = deadPid();
    const name = await writeLockFile(repo.lockContext(), { time: new Date().toISOString(), hostname: hostname(), pid, username: 'x', exclusive: true });
    const l = await repo.lock('shared');
    expect(storage.files.has(`locks/${name}`)).toBe(false);
    expect(logger.lines.join('\n')).toContain(`process ${pid} on ${hostname()} is gone`);
    await l.release();
    await repo.close();
  });

  it('respects a fresh lock of a live process, and of another host', async () => {
    const { repo } = await newRepo();
    const ctx = repo.lockContext();
    await writeLockFile(ctx, { time: new Date().toISOString(), hostname: 'other-host', pid: deadPid(), username: 'x', exclusive: true });
    const err = (await repo.lock('shared').catch((e: unknown) => e)) as LockHeldError;
    expect(err).toBeInstanceOf(LockHeldError);
    expect(err.holder.hostname).toBe('other-host');
    await repo.close();
  });

  it('refreshes a held lock automatically: new file first, then the old one is removed', async () => {
    const { repo, storage } = await newRepo({ lockOptions: { refreshMs: 40 } });
    const l = await repo.lock('shared');
    const first = l.name;
    const t1 = (await readLockFile(repo.lockContext(), first))!.time;
    await new Promise((r) => setTimeout(r, 150));
    expect(l.name).not.toBe(first);
    expect(storage.files.has(`locks/${first}`)).toBe(false);
    // between refreshes exactly one lock file exists (a refresh briefly has two)
    for (let i = 0; i < 100 && storage.paths('locks/').length !== 1; i++) await new Promise((r) => setTimeout(r, 3));
    expect(storage.paths('locks/')).toHaveLength(1);
    const latest = await readLockFile(repo.lockContext(), l.name);
    if (latest) expect(Date.parse(latest.time)).toBeGreaterThanOrEqual(Date.parse(t1));
    await repo.close();
    expect(storage.paths('locks/')).toHaveLength(0);
  });

  it('refreshes on demand; concurrent refreshes leave one file', async () => {
    const { repo, storage } = await newRepo();
    const l = await repo.lock('exclusive');
    const first = l.name;
    await new Promise((r) => setTimeout(r, 5));
    await Promise.all([l.refresh(), l.refresh(), l.refresh()]);
    expect(l.name).not.toBe(first);
    expect(storage.paths('locks/')).toEqual([`locks/${l.name}`]);
    await l.release();
    expect(storage.paths('locks/')).toHaveLength(0);
    await repo.close();
  });

  it('a quick release (attempts) tries the removal that many times and does not wait for a refresh in flight', async () => {
    const { repo, storage } = await newRepo();
    const l = await repo.lock('shared');
    const name = l.name;
    // The storage is gone: a save hangs (until we let it go), every lock removal fails with a transient error.
    let letGo!: () => void;
    const hung = new Promise<void>((r) => (letGo = r));
    let removes = 0;
    const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    let entered!: () => void;
    const saving = new Promise<void>((r) => (entered = r));
    storage.beforeSave = async () => {
      entered();
      await hung;
      throw down;
    };
    const remove = storage.remove.bind(storage);
    storage.remove = async (h) => {
      if (h.type === 'lock') {
        removes++;
        throw down;
      }
      return remove(h);
    };
    const refreshing = l.refresh().catch(() => undefined); // in flight, hanging
    await saving;
    // Settles although the refresh still hangs: it did not wait for it.
    await expect(l.release({ attempts: 2 })).rejects.toThrow(/ECONNREFUSED/);
    expect(removes).toBe(2);
    // The storage comes back: the lock file is still there (it goes stale later), nothing else was written.
    storage.remove = remove;
    letGo();
    await refreshing;
    expect(storage.paths('locks/')).toEqual([`locks/${name}`]);
    await repo.close();
  });
});
