import { parseLockWait, type LockOptions, type LockWait } from '@kiwi-backup/core';
import type { ArgsDef } from 'citty';
import { stringArg } from './args.js';
import { UsageError } from './exit-codes.js';
import { formatDuration } from './output.js';
import type { Session } from './session.js';

/**
 * How long a command that locks the repository waits, by default, for another process's
 * conflicting lock: a nightly backup that meets a prune (or a forget that meets a backup)
 * waits for it rather than fail; past this, exit 11 names the holders.
 */
export const DEFAULT_RETRY_LOCK = '5m';

/** `--retry-lock`, for every command that takes a lock. */
export const retryLockArgs = {
  'retry-lock': {
    type: 'string',
    description: `Wait up to this long for another process's conflicting lock, retrying with backoff (e.g. 30s, 5m, 1h; 0: fail at once; default ${DEFAULT_RETRY_LOCK})`,
  },
} as const satisfies ArgsDef;

/** Lock options from `--retry-lock`: the wait, the command's abort signal, and messages while waiting. */
export function lockOptionsFor(args: { 'retry-lock'?: unknown }, session: Session, signal?: AbortSignal): LockOptions {
  const text = stringArg(args['retry-lock']) ?? DEFAULT_RETRY_LOCK;
  let retryLockMs: number;
  try {
    retryLockMs = parseLockWait(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const out = session.out;
  let shown = '';
  return {
    retryLockMs,
    ...(signal ? { signal } : {}),
    onWait: (w: LockWait) => {
      const holders = w.holders.map((h) => `pid ${h.pid} on ${h.hostname} (${h.exclusive ? 'exclusive' : 'shared'}, user ${h.username}, since ${h.time})`);
      out.emit('status', {
        action: 'lock_wait',
        lock: w.kind,
        holders: w.holders,
        attempt: w.attempt,
        seconds_waited: Math.round(w.waitedMs / 1000),
        seconds_left: Math.round(w.remainingMs / 1000),
      });
      const key = holders.join('; ');
      if (key === shown) return;
      shown = key;
      out.info(
        `repository ${session.printableRepo()} is locked by ${key}; waiting up to ${formatDuration(w.remainingMs)} more for ${w.kind === 'exclusive' ? 'an exclusive' : 'a shared'} lock (--retry-lock)`,
      );
    },
  };
}
