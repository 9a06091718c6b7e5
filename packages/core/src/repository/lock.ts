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
 *
 * Waiting (`retryLockMs`): while a conflicting lock is held, try again after a pause that
 * starts at 1 s and doubles up to 30 s (±20 % jitter, so two waiters that collided do not
 * collide again), with a last attempt at the deadline; then fail with every holder named.
 * Stale locks found on the way are taken over as usual, so a crashed holder does not make
 * anyone wait for long.
 */
import { hostname as osHostname } from 'node:os';
import { createHash } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import { LockHeldError, type LockHolder } from './errors.js';
import type { MAX_LOCK_FILE_SIZE } from './limits.js';
import { listFiles } from './open.js';
import type { LockInfo, LockKind, ReleaseOptions, RepoLock, RepositoryLogger } from './types.js';
import { loadWholeFile } from './whole-file.js';
import { withRetry } from '../storage/retry.js';
import { compareTimes } from '../time-order.js';

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
  /** Wait up to this long for conflicting locks to go away (default 0: fail at once). */
  retryLockMs?: number;
  /** First pause between attempts while waiting (default 1 s); it doubles up to {@link maxRetryDelayMs}. */
  retryDelayMs?: number;
  /** Longest pause between attempts (default 30 s). */
  maxRetryDelayMs?: number;
  /** Stops the waiting: the lock call rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called before each pause while waiting. */
  onWait?: (wait: LockWait) => void;
}

/** One pause while waiting for a lock. */
export interface LockWait {
  kind: LockKind;
  /** The conflicting locks of the attempt that just failed. */
  holders: LockHolder[];
  /** Attempts so far (1 after the first). */
  attempt: number;
  /** Waited so far, and still to go before giving up. */
  waitedMs: number;
  remainingMs: number;
  /** The pause before the next attempt. */
  retryInMs: number;
}

export const DEFAULT_RETRY_DELAY_MS = 1000;
export const MAX_RETRY_DELAY_MS = 30_000;

/** Write a lock file; returns its name. */
export async function writeLockFile(ctx: LockContext, info: LockInfo): Promise<string> {
  const bytes = ctx.encrypt(Buffer.from(JSON.stringify(info), 'utf8'));
  const name = createHash('sha256').update(bytes).digest('hex');
  await ctx.storage.save({ type: 'lock', name }, bytes);
  return name;
}

/**
 * Read and decrypt one lock file. Returns undefined when it vanished meanwhile. A file larger
 * than {@link MAX_LOCK_FILE_SIZE} is refused before it is read (`size`: its size from a listing,
 * else the storage is asked); the fields are checked (see {@link parseLockInfo}).
 */
export async function readLockFile(ctx: LockContext, name: string, size?: number): Promise<LockInfo | undefined> {
  let bytes: Buffer;
  try {
    bytes = await loadWholeFile(ctx.storage, { type: 'lock', name }, size);
  } catch (err) {
    if (ctx.storage.isNotFound(err)) return undefined;
    throw err;
  }
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
 * naming every one that conflicts with `kind`.
 */
async function checkLocks(ctx: LockContext, kind: LockKind, own: string | undefined, staleMs: number): Promise<void> {
  const conflicts: LockHolder[] = [];
  const files: Array<{ name: string; size: number }> = [];
  for await (const f of ctx.storage.list('lock')) if (f.name !== own) files.push({ name: f.name, size: f.size });
  for (const { name, size } of files) {
    let info: LockInfo | undefined;
    try {
      info = await readLockFile(ctx, name, size);
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
      conflicts.push({ hostname: info.hostname, pid: info.pid, username: info.username, time: info.time, exclusive: info.exclusive, file: `locks/${name}` });
    }
  }
  if (conflicts.length > 0) {
    // Exclusive holders first: they are the ones worth naming first.
    conflicts.sort((a, b) => Number(b.exclusive) - Number(a.exclusive) || compareTimes(a.time, b.time));
    throw new LockHeldError(conflicts[0]!, kind, { others: conflicts.slice(1) });
  }
}

/** Sleep `ms`, or reject with the signal's reason when it aborts first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Take a lock, waiting up to `options.retryLockMs` for conflicting locks to go away. Resolves
 * with a handle that refreshes itself until released; rejects with {@link LockHeldError}
 * (naming every holder, and how long it waited) when the wait is over.
 */
export async function acquireLock(ctx: LockContext, kind: LockKind, options: LockOptions = {}): Promise<RepoLock> {
  const budget = Math.max(0, options.retryLockMs ?? 0);
  const started = Date.now();
  let delay = Math.max(1, options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS);
  const maxDelay = Math.max(delay, options.maxRetryDelayMs ?? MAX_RETRY_DELAY_MS);
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await tryAcquireLock(ctx, kind, options);
    } catch (err) {
      if (!(err instanceof LockHeldError)) throw err;
      const waited = Date.now() - started;
      const remaining = budget - waited;
      if (remaining <= 0) {
        if (budget === 0) throw err;
        throw new LockHeldError(err.holder, kind, { others: err.holders.slice(1), waitedMs: waited });
      }
      const retryInMs = Math.min(remaining, Math.round(delay * (0.8 + Math.random() * 0.4)));
      options.onWait?.({ kind, holders: err.holders, attempt, waitedMs: waited, remainingMs: remaining, retryInMs });
      await pause(retryInMs, options.signal);
      delay = Math.min(delay * 2, maxDelay);
    }
  }
}

/** One attempt: check, write our lock file, check again. */
async function tryAcquireLock(ctx: LockContext, kind: LockKind, options: LockOptions): Promise<RepoLock> {
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

/** A lock file as `kiwi unlock` sees it. */
export interface LockEntry {
  /** `locks/<name>` */
  file: string;
  name: string;
  /** The decrypted lock, or undefined when it could not be read (`error` says why). */
  info?: LockInfo;
  error?: string;
  /** Why the lock is stale (undefined: it is live, or unreadable). */
  stale?: string;
}

/** Every lock file, decrypted, with its staleness. */
export async function listLocks(ctx: LockContext, options: { staleMs?: number; now?: number } = {}): Promise<LockEntry[]> {
  const out: LockEntry[] = [];
  for (const { name, size } of await listFiles(ctx.storage, 'lock')) {
    const file = `locks/${name}`;
    try {
      const info = await readLockFile(ctx, name, size);
      if (!info) continue; // released meanwhile
      const stale = staleReason(info, ctx.hostname, options.staleMs ?? LOCK_STALE_MS, options.now);
      out.push({ file, name, info, ...(stale ? { stale } : {}) });
    } catch (err) {
      out.push({ file, name, error: (err as Error).message });
    }
  }
  return out;
}

export interface UnlockResult {
  /** Locks removed (stale ones; with `removeAll`, every one). */
  removed: LockEntry[];
  /** Locks left in place: live ones, and unreadable ones (without `removeAll`). */
  kept: LockEntry[];
}

/**
 * Remove stale locks (the owner process is gone from this host, or the lock was not refreshed
 * within the stale timeout), or with `removeAll` every lock. A lock that vanished meanwhile
 * counts as removed.
 */
export async function removeLocks(ctx: LockContext, options: { removeAll?: boolean; staleMs?: number } = {}): Promise<UnlockResult> {
  const result: UnlockResult = { removed: [], kept: [] };
  for (const entry of await listLocks(ctx, options.staleMs !== undefined ? { staleMs: options.staleMs } : {})) {
    if (!options.removeAll && !entry.stale) {
      result.kept.push(entry);
      continue;
    }
    try {
      await ctx.storage.remove({ type: 'lock', name: entry.name });
    } catch (err) {
      if (!ctx.storage.isNotFound(err)) throw err;
    }
    result.removed.push(entry);
  }
  return result;
}

/**
 * Parse a wait such as `30s`, `5m`, `1h30m`, `90` (seconds) or `0` for `--retry-lock`.
 * Returns milliseconds; throws a RangeError naming the text when it is not one.
 */
export function parseLockWait(text: string, option = '--retry-lock'): number {
  const s = text.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = s;
  if (rest === '') throw new RangeError(`${option} needs a duration such as 30s, 5m or 1h (0: do not wait)`);
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) throw new RangeError(`${option} ${JSON.stringify(text)} is not a duration: use e.g. 30s, 5m, 1h30m (units ms, s, m, h; 0: do not wait)`);
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  if (!Number.isFinite(total) || total > 7 * 24 * 3_600_000) throw new RangeError(`${option} ${JSON.stringify(text)} is too long (at most a week)`);
  return Math.round(total);
}
