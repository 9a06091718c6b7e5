/**
 * Repository locks (`locks/<sha256>`): encrypted JSON {@link LockInfo}.
 *
 * Rules: a backup holds a shared lock, prune an exclusive one. Exclusive conflicts
 * with any other lock; shared conflicts with exclusive. A lock is refreshed (new file,
 * then the old one removed) every 5 minutes while held. A lock is stale when its time
 * is more than 30 minutes old, or at once when it was written on this host by a pid
 * that no longer exists; stale locks are removed when found, with a log line.
 *
 * Taking a lock: check for conflicts, write our lock file, check again (so two
 * processes racing for conflicting locks both see each other and back off).
 */
import { hostname as osHostname } from 'node:os';
import { createHash } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import { LockHeldError } from './errors.js';
import { MAX_LOCK_FILE_SIZE } from './limits.js';
import type { LockInfo, LockKind, ReleaseOptions, RepoLock, RepositoryLogger } from './types.js';
import { withRetry } from '../storage/retry.js';

export const LOCK_REFRESH_MS = 5 * 60 * 1000;
export const LOCK_STALE_MS = 30 * 60 * 1000;

/** What the lock code needs from the repository. */
export interface LockContext {
  storage: Storage;
  encrypt(plain: Uint8Array): Buffer;
  decrypt(data: Uint8Array): Buffer;
  log: RepositoryLogger;
  hostname: string;
  username: string;
}

export interface LockOptions {
  /** Refresh interval (default 5 min). */
  refreshMs?: number;
  /** Age after which a lock is stale (default 30 min). */
  staleMs?: number;
}

/** Write a lock file; returns its name. */
export async function writeLockFile(ctx: LockContext, info: LockInfo): Promise<string> {
  const bytes = ctx.encrypt(Buffer.from(JSON.stringify(info), 'utf8'));
  const name = createHash('sha256').update(bytes).digest('hex');
  await ctx.storage.save({ type: 'lock', name }, bytes);
  return name;
}

/**
 * Read and decrypt one lock file. Returns undefined when it vanished meanwhile. A file larger
 * than {@link MAX_LOCK_FILE_SIZE} is refused before it is decrypted; the fields are checked
 * (see {@link parseLockInfo}).
 */
export async function readLockFile(ctx: LockContext, name: string): Promise<LockInfo | undefined> {
  let bytes: Buffer;
  try {
    bytes = await ctx.storage.load({ type: 'lock', name });
  } catch (err) {
    if (ctx.storage.isNotFound(err)) return undefined;
    throw err;
  }
  if (bytes.byteLength > MAX_LOCK_FILE_SIZE) throw new Error(`locks/${name}: ${bytes.byteLength} bytes, more than a lock file may have (${MAX_LOCK_FILE_SIZE})`);
  return parseLockInfo(ctx.decrypt(bytes), `locks/${name}`);
}

/**
 * Parse a lock file's decrypted JSON: `time` a parseable date, `hostname` and `username` strings
 * of at most 256 characters, `pid` a positive integer below 2^32, `exclusive` a boolean.
 */
export function parseLockInfo(plain: Uint8Array, file: string): LockInfo {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).toString('utf8'));
  } catch {
    throw new Error(`${file}: malformed lock (not JSON)`);
  }
  const info = v as Partial<LockInfo> | null;
  const str = (x: unknown) => typeof x === 'string' && x.length <= 256;
  if (
    typeof info !== 'object' ||
    info === null ||
    !str(info.time) ||
    !Number.isFinite(Date.parse(info.time!)) ||
    !str(info.hostname) ||
    !(info.username === undefined || str(info.username)) ||
    !Number.isInteger(info.pid) ||
    info.pid! < 1 ||
    info.pid! >= 2 ** 32 ||
    !(info.exclusive === undefined || typeof info.exclusive === 'boolean')
  ) {
    throw new Error(`${file}: malformed lock`);
  }
  return { time: info.time!, hostname: info.hostname!, pid: info.pid!, username: info.username ?? '', exclusive: info.exclusive ?? false };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Why a lock is stale, or undefined when it is live. */
export function staleReason(info: LockInfo, host: string, staleMs: number, now = Date.now()): string | undefined {
  const t = Date.parse(info.time);
  if (!Number.isFinite(t)) return 'its time is invalid';
  if (now - t > staleMs) return `it was last refreshed ${Math.round((now - t) / 60000)} min ago`;
  if (info.hostname === host && info.pid !== process.pid && !pidAlive(info.pid)) return `process ${info.pid} on ${host} is gone`;
  return undefined;
}

/**
 * Look at every lock file except `own`: remove stale ones; throw {@link LockHeldError}
 * for the first one that conflicts with `kind`.
 */
async function checkLocks(ctx: LockContext, kind: LockKind, own: string | undefined, staleMs: number): Promise<void> {
  const names: string[] = [];
  for await (const f of ctx.storage.list('lock')) if (f.name !== own) names.push(f.name);
  for (const name of names) {
    let info: LockInfo | undefined;
    try {
      info = await readLockFile(ctx, name);
    } catch (err) {
      ctx.log.warn(`ignoring unreadable lock file locks/${name}: ${(err as Error).message}`);
      continue;
    }
    if (!info) continue;
    const stale = staleReason(info, ctx.hostname, staleMs);
    if (stale) {
      ctx.log.info(
        `removing stale ${info.exclusive ? 'exclusive' : 'shared'} lock locks/${name} of pid ${info.pid} on ${info.hostname} (${stale})`,
      );
      try {
        await ctx.storage.remove({ type: 'lock', name });
      } catch (err) {
        if (!ctx.storage.isNotFound(err)) throw err;
      }
      continue;
    }
    if (kind === 'exclusive' || info.exclusive) {
      throw new LockHeldError({ ...info, file: `locks/${name}` }, kind);
    }
  }
}

/** Take a lock. Resolves with a handle that refreshes itself until released. */
export async function acquireLock(ctx: LockContext, kind: LockKind, options: LockOptions = {}): Promise<RepoLock> {
  const staleMs = options.staleMs ?? LOCK_STALE_MS;
  const refreshMs = options.refreshMs ?? LOCK_REFRESH_MS;
  await checkLocks(ctx, kind, undefined, staleMs);
  const info = (): LockInfo => ({
    time: new Date().toISOString(),
    hostname: ctx.hostname,
    pid: process.pid,
    username: ctx.username,
    exclusive: kind === 'exclusive',
  });
  let name = await writeLockFile(ctx, info());
  try {
    await checkLocks(ctx, kind, name, staleMs);
  } catch (err) {
    await ctx.storage.remove({ type: 'lock', name }).catch(() => undefined);
    throw err;
  }
  let released = false;
  // Refreshes run one at a time (a timer tick and a manual refresh must not both replace the same file).
  let chain: Promise<void> = Promise.resolve();
  const refreshOnce = async (): Promise<void> => {
    if (released) return;
    const old = name;
    const fresh = await writeLockFile(ctx, info());
    if (released) {
      await ctx.storage.remove({ type: 'lock', name: fresh }).catch(() => undefined);
      return;
    }
    name = fresh;
    if (fresh !== old) {
      await ctx.storage.remove({ type: 'lock', name: old }).catch((err: unknown) => {
        if (!ctx.storage.isNotFound(err)) ctx.log.warn(`could not remove old lock file locks/${old}: ${(err as Error).message}`);
      });
    }
  };
  const refresh = (): Promise<void> => {
    const run = chain.then(refreshOnce);
    chain = run.catch(() => undefined);
    return run;
  };
  const timer = setInterval(() => {
    refresh().catch((err: unknown) => ctx.log.warn(`refreshing lock locks/${name} failed: ${(err as Error).message}`));
  }, refreshMs);
  timer.unref();
  return {
    kind,
    get name() {
      return name;
    },
    refresh,
    async release(opts: ReleaseOptions = {}) {
      if (released) return;
      released = true;
      clearInterval(timer);
      const storage = opts.attempts !== undefined ? withRetry(ctx.storage, { maxAttempts: Math.max(1, opts.attempts) }) : ctx.storage;
      // A quick release does not wait for a refresh that may be retrying: once it lands it sees
      // `released` and removes the file it wrote.
      if (opts.attempts === undefined) await chain;
      try {
        await storage.remove({ type: 'lock', name });
      } catch (err) {
        if (!storage.isNotFound(err)) throw err;
      }
    },
  };
}

export function defaultHostname(): string {
  return osHostname();
}
