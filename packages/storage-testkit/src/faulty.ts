import { setTimeout as sleep } from 'node:timers/promises';
import {
  StorageError,
  handlePath,
  type FileInfo,
  type FileType,
  type Handle,
  type LoadOptions,
  type SaveSource,
  type Storage,
  type StorageErrorKind,
} from '@kiwi-backup/core';

/** The storage operations a {@link FaultPlan} can target. */
export type FaultOperation = 'create' | 'save' | 'load' | 'stat' | 'list' | 'remove' | 'close';

/** A fault by name: thrown as a `StorageError` of that kind (`transient` is retried by `withRetry`). */
export type FaultKind = StorageErrorKind;

/** What happens on one call. */
export interface FaultStep {
  /** Wait this long before anything else. */
  delayMs?: number;
  /** Fail with a `StorageError` of this kind, or throw this exact value. Omit to only delay. */
  fail?: FaultKind | { error: unknown };
  /** Fail only after the real operation ran (a save that landed but whose reply was lost). */
  afterCall?: boolean;
  /** `list` only: yield this many files from the real listing, then fail. */
  afterItems?: number;
}

/** One call's fault: a step, a kind name as shorthand for `{ fail: kind }`, or `null` for "no fault". */
export type FaultEntry = FaultStep | FaultKind | null | undefined;

/** Details of one call, given to a schedule function. */
export interface FaultCall {
  operation: FaultOperation;
  /** 0-based count of earlier calls of this operation. */
  n: number;
  handle?: Handle;
  type?: FileType;
}

/**
 * Faults per operation: an array is consumed one entry per call (calls past its
 * end run normally); a function decides for each call.
 */
export type FaultPlan = Partial<Record<FaultOperation, FaultEntry[] | ((call: FaultCall) => FaultEntry)>>;

/** A storage that injects faults, and counts calls and injected faults. */
export interface FaultyStorage extends Storage {
  readonly inner: Storage;
  /** Calls per operation (including failed ones). */
  readonly calls: Record<FaultOperation, number>;
  /** Faults injected so far. */
  readonly injected: number;
  /** Replace the plan (call counters keep counting). */
  setPlan(plan: FaultPlan): void;
}

/**
 * Wrap `inner` so its operations fail or stall as `plan` says: transient errors
 * to test retries, not-found or permission errors to test that they are *not*
 * retried, delays to test timeouts and concurrency. `isNotFound` recognises both
 * the inner storage's not-found errors and injected ones.
 *
 * ```ts
 * const faulty = createFaultyStorage(createMemoryStorage(), { load: ['transient', 'transient'] });
 * ```
 */
export function createFaultyStorage(inner: Storage, plan: FaultPlan = {}): FaultyStorage {
  let current = plan;
  let injected = 0;
  const calls: Record<FaultOperation, number> = { create: 0, save: 0, load: 0, stat: 0, list: 0, remove: 0, close: 0 };

  const stepFor = (call: Omit<FaultCall, 'n'>): FaultStep => {
    const n = calls[call.operation]++;
    const sched = current[call.operation];
    const entry = typeof sched === 'function' ? sched({ ...call, n }) : sched?.[n];
    if (entry === null || entry === undefined) return {};
    return typeof entry === 'string' ? { fail: entry } : entry;
  };

  const failure = (step: FaultStep, what: string): unknown => {
    injected++;
    const f = step.fail!;
    if (typeof f === 'object') return f.error;
    return new StorageError(`injected ${f} fault: ${what}`, { kind: f, location: `${inner.location} ${what}` });
  };

  async function run<T>(call: Omit<FaultCall, 'n'>, what: string, fn: () => Promise<T>): Promise<T> {
    const step = stepFor(call);
    if (step.delayMs) await sleep(step.delayMs);
    if (step.fail !== undefined && !step.afterCall) throw failure(step, what);
    const result = await fn();
    if (step.fail !== undefined) throw failure(step, what);
    return result;
  }

  const storage: FaultyStorage = {
    inner,
    calls,
    get injected() {
      return injected;
    },
    get location() {
      return inner.location;
    },
    get preferredReadSize() {
      return inner.preferredReadSize;
    },
    setPlan(plan: FaultPlan) {
      current = plan;
    },
    create: () => run({ operation: 'create' }, 'create', () => inner.create()),
    save: (handle: Handle, data: Uint8Array) =>
      run({ operation: 'save', handle }, `save ${handlePath(handle)}`, () => inner.save(handle, data)),
    // saveFrom counts as a save: a plan for `save` targets both.
    ...(inner.saveFrom
      ? {
          saveFrom: (handle: Handle, source: SaveSource) =>
            run({ operation: 'save', handle }, `save ${handlePath(handle)}`, () => inner.saveFrom!(handle, source)),
        }
      : {}),
    load: (handle: Handle, options?: LoadOptions) =>
      run({ operation: 'load', handle }, `load ${handlePath(handle)}`, () => inner.load(handle, options)),
    stat: (handle: Handle) => run({ operation: 'stat', handle }, `stat ${handlePath(handle)}`, () => inner.stat(handle)),
    remove: (handle: Handle) =>
      run({ operation: 'remove', handle }, `remove ${handlePath(handle)}`, () => inner.remove(handle)),
    close: () => run({ operation: 'close' }, 'close', () => inner.close()),
    list(type: FileType): AsyncIterable<FileInfo> {
      return {
        [Symbol.asyncIterator]: async function* () {
          const step = stepFor({ operation: 'list', type });
          if (step.delayMs) await sleep(step.delayMs);
          const what = `list ${type}`;
          if (step.fail !== undefined && step.afterItems === undefined && !step.afterCall) throw failure(step, what);
          let yielded = 0;
          for await (const info of inner.list(type)) {
            if (step.fail !== undefined && step.afterItems !== undefined && yielded >= step.afterItems) {
              throw failure(step, what);
            }
            yield info;
            yielded++;
          }
          if (step.fail !== undefined) throw failure(step, what);
        },
      };
    },
    isNotFound(err: unknown): boolean {
      return (err instanceof StorageError && err.kind === 'not-found') || inner.isNotFound(err);
    },
  };
  return storage;
}
