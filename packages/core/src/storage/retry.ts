/**
 * The one shared retry layer for storage (architecture brief, section 3).
 * Adapters never retry on their own: they throw, and {@link withRetry} decides
 * whether the error may go away (see `isTransientError`) and tries again with
 * exponential backoff and full jitter.
 */
import { StorageError, isTransientError } from './errors.js';
import { redactUrl } from './redact.js';
import { handlePath, type FileInfo, type FileType, type Handle, type LoadOptions, type SaveSource, type Storage } from './types.js';

/** The storage operations the retry layer retries (`close` is never retried). */
export type RetryOperation = 'create' | 'save' | 'load' | 'stat' | 'list' | 'remove';

/** What {@link RetryOptions.onRetry} is told before each wait. Holds no secret. */
export interface RetryInfo {
  operation: RetryOperation;
  /** The file, for per-file operations. */
  handle?: Handle;
  /** The listed type, for `list`. */
  type?: FileType;
  /** Printable: `data/ab/ab12...`, `list snapshot`, `create`. */
  target: string;
  /** The storage's printable location. */
  location: string;
  /** The attempt that just failed, from 1. */
  attempt: number;
  maxAttempts: number;
  /** How long the layer waits before the next attempt. */
  delayMs: number;
  /** The failed attempt's error message. */
  error: string;
}

export interface RetryOptions {
  /** Attempts per operation, the first included (default 6). 1 disables retries. */
  maxAttempts?: number;
  /** Backoff base: the wait before attempt n+1 is random in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))) (default 200). */
  baseDelayMs?: number;
  /** Upper bound of one wait (default 15 000). */
  maxDelayMs?: number;
  /** Called before each wait, e.g. to log "retrying load data/ab/... in 1.2 s (attempt 2 of 6): ...". */
  onRetry?: (info: RetryInfo) => void;
  /**
   * Stops waiting: once aborted, a pending wait ends and no further attempt
   * starts; the operation rejects with the last attempt's error. The first
   * attempt always runs (so cleanup after an abort, such as removing a lock,
   * still works).
   */
  signal?: AbortSignal;
  /** Which errors to retry (default `isTransientError`). Not-found errors are never retried. */
  isRetryable?: (err: unknown) => boolean;
  /** Random source in [0, 1) for the jitter (default `Math.random`; tests pin it). */
  random?: () => number;
}

const INNER = Symbol('kiwi.retry.inner');

interface RetryingStorage extends Storage {
  readonly [INNER]: Storage;
}

/**
 * Wrap `storage` so transient failures are retried with exponential backoff and
 * full jitter. Not-found, permission, auth, config and integrity errors fail at
 * once, unchanged. When every attempt failed, the operation rejects with a
 * `StorageError` of kind `transient` that names the operation, the file and the
 * number of attempts, with the last error as `cause`.
 *
 * - `list` restarts the listing after a failure but never yields a name twice.
 * - A retried `remove` whose earlier attempt may have landed treats not-found as success.
 * - Wrapping a storage returned by `withRetry` replaces its options instead of nesting.
 */
export function withRetry(storage: Storage, options: RetryOptions = {}): Storage {
  const inner = (storage as Partial<RetryingStorage>)[INNER] ?? storage;
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 6));
  const baseDelayMs = Math.max(0, options.baseDelayMs ?? 200);
  const maxDelayMs = Math.max(0, options.maxDelayMs ?? 15_000);
  const isRetryable = options.isRetryable ?? isTransientError;
  const random = options.random ?? Math.random;
  const { signal, onRetry } = options;

  /**
   * Called after attempt `attempt` failed with `err`: throws if the error is
   * final, else waits the backoff delay.
   */
  async function afterFailure(
    err: unknown,
    attempt: number,
    op: RetryOperation,
    target: string,
    extra: { handle?: Handle; type?: FileType },
  ): Promise<void> {
    if (inner.isNotFound(err) || !isRetryable(err)) throw err;
    if (signal?.aborted) throw err;
    if (attempt >= maxAttempts) {
      const what = op === 'list' || op === 'create' ? target : `${op} ${target}`;
      throw new StorageError(
        `${what} on ${redactUrl(inner.location)} failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${messageOf(err)}`,
        { kind: 'transient', location: `${redactUrl(inner.location)} ${target}`, cause: err },
      );
    }
    const delayMs = Math.floor(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
    if (onRetry) {
      try {
        onRetry({ operation: op, ...extra, target, location: redactUrl(inner.location), attempt, maxAttempts, delayMs, error: messageOf(err) });
      } catch {
        // A failing logger must not change the outcome of the operation.
      }
    }
    if (!(await wait(delayMs, signal))) throw err;
  }

  async function retry<T>(
    op: RetryOperation,
    target: string,
    extra: { handle?: Handle; type?: FileType },
    fn: (attempt: number) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (err) {
        await afterFailure(err, attempt, op, target, extra);
      }
    }
  }

  const wrapped: RetryingStorage = {
    [INNER]: inner,
    // Printed in messages, logs and plug-in contexts: never with a password or credential from the URL,
    // whatever the adapter (a custom one may return its URL as given).
    get location() {
      return redactUrl(inner.location);
    },
    get preferredReadSize() {
      return inner.preferredReadSize;
    },
    create: () => retry('create', 'create', {}, () => inner.create()),
    save: (handle: Handle, data: Uint8Array) =>
      retry('save', handlePath(handle), { handle }, () => inner.save(handle, data)),
    ...(inner.saveFrom
      ? {
          // Every attempt reads the source afresh (the adapter calls its open()).
          saveFrom: (handle: Handle, source: SaveSource) =>
            retry('save', handlePath(handle), { handle }, () => inner.saveFrom!(handle, source)),
        }
      : {}),
    load: (handle: Handle, opts?: LoadOptions) =>
      retry('load', handlePath(handle), { handle }, () => inner.load(handle, opts)),
    stat: (handle: Handle) => retry('stat', handlePath(handle), { handle }, () => inner.stat(handle)),
    remove: (handle: Handle) =>
      retry('remove', handlePath(handle), { handle }, async (attempt) => {
        try {
          await inner.remove(handle);
        } catch (err) {
          // An earlier attempt may have removed the file before its reply was lost.
          if (attempt > 1 && inner.isNotFound(err)) return;
          throw err;
        }
      }),
    ...(inner.removeMany
      ? {
          // Missing files are fine for removeMany, so a retried batch is idempotent.
          removeMany: (handles: Iterable<Handle>) => {
            const list = [...handles];
            return retry('remove', `${list.length} files`, {}, () => inner.removeMany!(list));
          },
        }
      : {}),
    ...(inner.removeTemporaries
      ? { removeTemporaries: (olderThanMs: number) => retry('remove', 'temporary files', {}, () => inner.removeTemporaries!(olderThanMs)) }
      : {}),
    list(type: FileType): AsyncIterable<FileInfo> {
      return {
        [Symbol.asyncIterator]: async function* () {
          const seen = new Set<string>();
          // Failures in a row without progress; a listing that moved on starts counting again.
          let failures = 0;
          for (;;) {
            let progressed = false;
            try {
              for await (const info of inner.list(type)) {
                if (seen.has(info.name)) continue;
                seen.add(info.name);
                progressed = true;
                yield info;
              }
              return;
            } catch (err) {
              failures = progressed ? 1 : failures + 1;
              await afterFailure(err, failures, 'list', `list ${type}`, { type });
            }
          }
        },
      };
    },
    isNotFound: (err: unknown) => inner.isNotFound(err),
    close: () => inner.close(),
  };
  return wrapped;
}

/** The storage under a {@link withRetry} wrapper (or `storage` itself). */
export function unwrapRetry(storage: Storage): Storage {
  return (storage as Partial<RetryingStorage>)[INNER] ?? storage;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** Sleep `ms`; resolves false at once if `signal` aborts first. */
function wait(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
