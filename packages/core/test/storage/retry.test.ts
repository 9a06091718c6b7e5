import { describe, expect, it } from 'vitest';
import { StorageError, withRetry, unwrapRetry, type FileInfo, type RetryInfo } from '../../src/index.js';
import { fakeStorage, transient } from './fake-storage.js';

const h = { type: 'data' as const, name: 'abcdef' };
const fast = { baseDelayMs: 1, maxDelayMs: 4 };

async function all(it: AsyncIterable<FileInfo>): Promise<string[]> {
  const out: string[] = [];
  for await (const f of it) out.push(f.name);
  return out;
}

describe('withRetry', () => {
  it('passes the storage\'s location and preferred read size through', () => {
    const { storage } = fakeStorage();
    expect(withRetry(storage).preferredReadSize).toBeUndefined();
    const hinted = Object.assign(Object.create(storage) as typeof storage, { preferredReadSize: 8 << 20 });
    const r = withRetry(hinted);
    expect(r.preferredReadSize).toBe(8 << 20);
    expect(r.location).toBe('fake:test');
  });

  it('retries transient errors with backoff and tells onRetry', async () => {
    const { storage, calls, failures } = fakeStorage();
    await storage.save(h, Buffer.from('hello'));
    failures.load = [transient(), new StorageError('503 Slow Down', { kind: 'transient' })];
    const infos: RetryInfo[] = [];
    const r = withRetry(storage, { baseDelayMs: 10, maxDelayMs: 1000, random: () => 0.5, onRetry: (i) => infos.push(i) });
    expect((await r.load(h)).toString()).toBe('hello');
    expect(calls.load).toBe(3);
    expect(infos.map((i) => [i.operation, i.target, i.attempt, i.delayMs])).toEqual([
      ['load', 'data/ab/abcdef', 1, 5],
      ['load', 'data/ab/abcdef', 2, 10],
    ]);
    expect(infos[0]!.error).toContain('connection reset');
    expect(infos[0]!.error).toContain('ECONNRESET');
    expect(infos[1]!.maxAttempts).toBe(6);
    expect(infos[1]!.handle).toEqual(h);
    expect(infos[1]!.location).toBe('fake:test');
  });

  it('caps each wait at maxDelayMs (exponential, full jitter)', async () => {
    const { storage, failures } = fakeStorage();
    failures.create = Array.from({ length: 7 }, () => transient());
    const delays: number[] = [];
    const r = withRetry(storage, { maxAttempts: 8, baseDelayMs: 2, maxDelayMs: 20, random: () => 0.999, onRetry: (i) => delays.push(i.delayMs) });
    await r.create();
    expect(delays).toEqual([1, 3, 7, 15, 19, 19, 19]);
  });

  it('gives up after maxAttempts with a transient StorageError naming the operation', async () => {
    const { storage, calls, failures } = fakeStorage();
    const last = transient('timed out at the end');
    failures.stat = [transient(), transient(), last];
    const r = withRetry(storage, { ...fast, maxAttempts: 3 });
    const err = (await r.stat(h).catch((e: unknown) => e)) as StorageError;
    expect(calls.stat).toBe(3);
    expect(err).toBeInstanceOf(StorageError);
    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/^stat data\/ab\/abcdef on fake:test failed after 3 attempts: timed out at the end/);
    expect(err.cause).toBe(last);
  });

  it.each([
    ['not-found', new StorageError('gone', { kind: 'not-found' })],
    ['permission', new StorageError('denied', { kind: 'permission' })],
    ['auth', new StorageError('bad key', { kind: 'auth' })],
    ['config', new StorageError('no bucket', { kind: 'config' })],
    ['integrity', new StorageError('short', { kind: 'integrity' })],
    ['a plain Error', new Error('boom')],
    ['a TypeError', new TypeError('bad handle')],
    ['an HTTP 403', Object.assign(new Error('Forbidden'), { $metadata: { httpStatusCode: 403 } })],
    ['a permission error wrapping a reset', new StorageError('denied', { kind: 'permission', cause: transient() })],
  ])('never retries %s', async (_what, error) => {
    const { storage, calls, failures } = fakeStorage();
    failures.save = [error];
    const r = withRetry(storage, fast);
    await expect(r.save(h, Buffer.from('x'))).rejects.toBe(error);
    expect(calls.save).toBe(1);
  });

  it('passes load options (into included) unchanged to every attempt', async () => {
    const { storage, calls, failures } = fakeStorage();
    await storage.save(h, Buffer.from('hello world'));
    const seen: unknown[] = [];
    const load = storage.load.bind(storage);
    storage.load = (handle, opts) => {
      seen.push(opts);
      return load(handle, opts);
    };
    failures.load = [transient(), transient()];
    const opts = { offset: 1, length: 4, into: Buffer.alloc(16) };
    await withRetry(storage, fast).load(h, opts);
    expect(calls.load).toBe(3);
    expect(seen).toHaveLength(3);
    for (const o of seen) expect(o).toBe(opts);
    expect(opts.into.equals(Buffer.alloc(16))).toBe(true); // the options themselves are not changed
  });

  it('does not retry a missing file', async () => {
    const { storage, calls } = fakeStorage();
    const r = withRetry(storage, fast);
    const err = await r.load(h).catch((e: unknown) => e);
    expect(r.isNotFound(err)).toBe(true);
    expect(calls.load).toBe(1);
  });

  it.each([
    ['an HTTP 503', Object.assign(new Error('unavailable'), { $metadata: { httpStatusCode: 503 } })],
    ['a 429', Object.assign(new Error('too many'), { statusCode: 429 })],
    ['ETIMEDOUT', Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })],
    ['a throttling name', Object.assign(new Error('slow down'), { name: 'SlowDown' })],
  ])('retries %s', async (_what, error) => {
    const { storage, calls, failures } = fakeStorage();
    failures.create = [error];
    await withRetry(storage, fast).create();
    expect(calls.create).toBe(2);
  });

  it('a retried remove whose first attempt landed succeeds', async () => {
    const { storage, files, failures } = fakeStorage();
    await storage.save(h, Buffer.from('x'));
    // The first call removes the file, then its reply is "lost".
    const inner = storage.remove.bind(storage);
    let first = true;
    storage.remove = async (handle) => {
      await inner(handle);
      if (first) {
        first = false;
        throw transient();
      }
    };
    await withRetry(storage, fast).remove(h);
    expect(files.size).toBe(0);
    // But a first-attempt not-found is still an error.
    await expect(withRetry(storage, fast).remove(h)).rejects.toThrow(/does not exist/);
  });

  describe('list', () => {
    async function withFiles(n: number) {
      const f = fakeStorage();
      for (let i = 0; i < n; i++) await f.storage.save({ type: 'index', name: `f${i}` }, Buffer.alloc(i));
      return f;
    }

    it('restarts after a failure without yielding a name twice', async () => {
      const { storage, calls, failures } = await withFiles(10);
      failures.list = [{ after: 3, error: transient() }, { after: 7, error: transient() }];
      const names = await all(withRetry(storage, fast).list('index'));
      expect(calls.list).toBe(3);
      expect(names).toHaveLength(10);
      expect(new Set(names).size).toBe(10);
    });

    it('retries a listing that fails before its first item', async () => {
      const { storage, calls, failures } = await withFiles(4);
      failures.list = [transient(), transient()];
      expect((await all(withRetry(storage, fast).list('index'))).sort()).toEqual(['f0', 'f1', 'f2', 'f3']);
      expect(calls.list).toBe(3);
    });

    it('gives up after maxAttempts failures in a row without progress', async () => {
      const { storage, calls, failures } = await withFiles(4);
      failures.list = [{ after: 2, error: transient() }, ...Array.from({ length: 5 }, () => ({ after: 2, error: transient() }))];
      const seen: string[] = [];
      const err = await (async () => {
        for await (const f of withRetry(storage, { ...fast, maxAttempts: 3 }).list('index')) seen.push(f.name);
      })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as Error).message).toMatch(/^list index on fake:test failed after 3 attempts: connection reset/);
      expect(seen).toEqual(['f0', 'f1']);
      expect(calls.list).toBe(3);
    });

    it('keeps going while each restart makes progress', async () => {
      const { storage, failures } = await withFiles(8);
      failures.list = Array.from({ length: 7 }, (_, i) => ({ after: i + 1, error: transient() }));
      const names = await all(withRetry(storage, { ...fast, maxAttempts: 2 }).list('index'));
      expect(names.sort()).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7']);
    });

    it('does not retry a permanent listing error', async () => {
      const { storage, calls, failures } = await withFiles(2);
      const denied = new StorageError('denied', { kind: 'permission' });
      failures.list = [{ after: 1, error: denied }];
      await expect(all(withRetry(storage, fast).list('index'))).rejects.toBe(denied);
      expect(calls.list).toBe(1);
    });

    it('stops the inner listing when the caller breaks out', async () => {
      const { storage } = await withFiles(5);
      let closed = false;
      const inner = storage.list.bind(storage);
      storage.list = (type) =>
        (async function* () {
          try {
            yield* inner(type);
          } finally {
            closed = true;
          }
        })();
      for await (const _ of withRetry(storage, fast).list('index')) break;
      expect(closed).toBe(true);
    });
  });

  describe('AbortSignal', () => {
    it('an abort during the wait rejects at once with the last error', async () => {
      const { storage, calls, failures } = fakeStorage();
      const err = transient('the last one');
      failures.load = [err, transient()];
      const ac = new AbortController();
      const r = withRetry(storage, { baseDelayMs: 10_000, maxDelayMs: 10_000, random: () => 1, signal: ac.signal });
      const started = Date.now();
      setTimeout(() => ac.abort(), 30);
      await expect(r.load(h)).rejects.toBe(err);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(calls.load).toBe(1);
    });

    it('an aborted signal still runs the first attempt but no retry', async () => {
      const { storage, calls, failures } = fakeStorage();
      const ac = new AbortController();
      ac.abort();
      const r = withRetry(storage, { ...fast, signal: ac.signal });
      await r.save(h, Buffer.from('cleanup works'));
      expect(calls.save).toBe(1);
      const err = transient();
      failures.save = [err];
      await expect(r.save(h, Buffer.from('x'))).rejects.toBe(err);
      expect(calls.save).toBe(2);
    });
  });

  it('re-wrapping replaces the options instead of nesting', async () => {
    const { storage, calls, failures } = fakeStorage();
    failures.create = Array.from({ length: 10 }, () => transient());
    const twice = withRetry(withRetry(storage, { ...fast, maxAttempts: 5 }), { ...fast, maxAttempts: 2 });
    await expect(twice.create()).rejects.toThrow(/after 2 attempts/);
    expect(calls.create).toBe(2);
    expect(unwrapRetry(twice)).toBe(storage);
  });

  it('a throwing onRetry does not change the outcome; close is not retried', async () => {
    const { storage, calls, failures } = fakeStorage();
    failures.create = [transient()];
    const r = withRetry(storage, {
      ...fast,
      onRetry: () => {
        throw new Error('logger broke');
      },
    });
    await r.create();
    expect(calls.create).toBe(2);
    await r.close();
    expect(calls.close).toBe(1);
    expect(r.location).toBe('fake:test');
  });
});
