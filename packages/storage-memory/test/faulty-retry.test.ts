/**
 * The shared retry layer (core's withRetry) against the memory adapter behind
 * the testkit's fault injector, and the fault injector itself.
 */
import { describe, expect, it, vi } from 'vitest';
import { StorageError, withRetry, type FileInfo, type RetryInfo } from '@kiwi-backup/core';
import { createFaultyStorage, deterministicBytes, describeStorageConformance, sha256Hex } from '@kiwi-backup/storage-testkit';
import { createMemoryStorage, memoryAdapter } from '../src/index.js';

const fast = { baseDelayMs: 1, maxDelayMs: 5 };

async function names(it: AsyncIterable<FileInfo>): Promise<string[]> {
  const out: string[] = [];
  for await (const f of it) out.push(f.name);
  return out;
}

describe('createFaultyStorage', () => {
  it('injects faults per call and counts them', async () => {
    const faulty = createFaultyStorage(createMemoryStorage(), {
      save: ['transient', null, 'permission'],
      load: (call) => (call.n === 1 ? { fail: { error: new TypeError('custom') } } : null),
    });
    const h = { type: 'key' as const, name: 'k1' };
    const err = (await faulty.save(h, Buffer.from('a')).catch((e: unknown) => e)) as StorageError;
    expect(err).toBeInstanceOf(StorageError);
    expect(err.kind).toBe('transient');
    expect(err.message).toBe('injected transient fault: save keys/k1');
    await faulty.save(h, Buffer.from('b'));
    await expect(faulty.save(h, Buffer.from('c'))).rejects.toMatchObject({ kind: 'permission' });
    await faulty.save(h, Buffer.from('d'));
    expect((await faulty.load(h)).toString()).toBe('d');
    await expect(faulty.load(h)).rejects.toThrow(TypeError);
    expect(faulty.calls.save).toBe(4);
    expect(faulty.calls.load).toBe(2);
    expect(faulty.injected).toBe(3);
  });

  it('can fail after the real call, delay, and fail a listing part-way', async () => {
    const inner = createMemoryStorage();
    const faulty = createFaultyStorage(inner, {
      save: [{ fail: 'transient', afterCall: true }],
      stat: [{ delayMs: 40 }],
      list: [{ fail: 'transient', afterItems: 2 }],
      remove: ['not-found'],
    });
    const h = { type: 'index' as const, name: 'i1' };
    await expect(faulty.save(h, Buffer.from('landed'))).rejects.toThrow(/injected/);
    expect((await inner.load(h)).toString()).toBe('landed');
    const t0 = Date.now();
    await faulty.stat(h);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(35);
    for (const n of ['i2', 'i3']) await inner.save({ type: 'index', name: n }, Buffer.from(n));
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const f of faulty.list('index')) seen.push(f.name);
      })(),
    ).rejects.toThrow(/list index/);
    expect(seen).toHaveLength(2);
    const nf = await faulty.remove(h).catch((e: unknown) => e);
    expect(faulty.isNotFound(nf)).toBe(true);
    expect((await inner.load(h)).toString()).toBe('landed');
  });
});

describe('withRetry over a faulty memory storage', () => {
  it('rides out transient faults on every operation', async () => {
    const infos: RetryInfo[] = [];
    const faulty = createFaultyStorage(createMemoryStorage(), {
      create: ['transient'],
      save: ['transient', 'transient', { fail: 'transient', afterCall: true }],
      load: ['transient'],
      stat: [{ fail: { error: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) } }],
      remove: [{ fail: 'transient', afterCall: true }],
    });
    const s = withRetry(faulty, { ...fast, onRetry: (i) => infos.push(i) });
    const data = deterministicBytes(5000, 'retry');
    const h = { type: 'data' as const, name: sha256Hex(data) };
    await s.create();
    await s.save(h, data);
    expect((await s.load(h)).equals(data)).toBe(true);
    expect((await s.stat(h)).size).toBe(5000);
    await s.remove(h); // the first attempt removed it, the retry sees not-found: success
    await expect(s.stat(h)).rejects.toSatisfy((e) => s.isNotFound(e));
    expect(faulty.calls.save).toBe(4);
    expect(infos.map((i) => i.operation)).toEqual(['create', 'save', 'save', 'save', 'load', 'stat', 'remove']);
    expect(infos.find((i) => i.operation === 'stat')!.error).toBe('socket hang up (ECONNRESET)');
  });

  it('retries a failed saveFrom, reading the source again from its start; a storage without saveFrom gets none', async () => {
    const faulty = createFaultyStorage(createMemoryStorage(), { save: ['transient', { fail: 'transient', afterCall: true }] });
    const s = withRetry(faulty, fast);
    const data = deterministicBytes(300_000, 'retry-save-from');
    let opens = 0;
    const source = {
      size: data.byteLength,
      async *open() {
        opens++;
        for (let i = 0; i < data.byteLength; i += 65_536) yield data.subarray(i, i + 65_536);
      },
    };
    const h = { type: 'data' as const, name: sha256Hex(data) };
    await s.saveFrom!(h, source);
    expect((await s.load(h)).equals(data)).toBe(true);
    expect(faulty.calls.save).toBe(3);
    expect(opens).toBe(2); // the first attempt failed before reading; the second read it and its reply was lost
    // The wrapper offers saveFrom only where the storage has it.
    expect(withRetry({ ...createMemoryStorage(), saveFrom: undefined } as never, fast).saveFrom).toBeUndefined();
  });

  it('never retries not-found, permission, auth or config faults', async () => {
    for (const kind of ['not-found', 'permission', 'auth', 'config'] as const) {
      const faulty = createFaultyStorage(createMemoryStorage(), { load: [kind, kind] });
      const s = withRetry(faulty, fast);
      await expect(s.load({ type: 'key', name: 'x' })).rejects.toMatchObject({ kind });
      expect(faulty.calls.load).toBe(1);
    }
  });

  it('a listing of 1100 files interrupted three times yields each name once', async () => {
    const inner = createMemoryStorage();
    const expected: string[] = [];
    for (let i = 0; i < 1100; i++) {
      const d = deterministicBytes(8, `l${i}`);
      expected.push(sha256Hex(d));
      await inner.save({ type: 'data', name: sha256Hex(d) }, d);
    }
    const faulty = createFaultyStorage(inner, {
      list: [
        { fail: 'transient', afterItems: 300 },
        { fail: 'transient', afterItems: 0 },
        { fail: 'transient', afterItems: 700 },
        { fail: 'transient', afterItems: 1099 },
      ],
    });
    const got = await names(withRetry(faulty, { ...fast, maxAttempts: 3 }).list('data'));
    expect(got).toHaveLength(1100);
    expect(new Set(got)).toEqual(new Set(expected));
    expect(faulty.calls.list).toBe(5);
  });

  it('gives up with a transient StorageError after the configured attempts', async () => {
    const faulty = createFaultyStorage(createMemoryStorage(), { save: () => 'transient' });
    const s = withRetry(faulty, { ...fast, maxAttempts: 4 });
    const err = (await s.save({ type: 'lock', name: 'l' }, Buffer.from('x')).catch((e: unknown) => e)) as StorageError;
    expect(err.kind).toBe('transient');
    expect(err.message).toBe('save locks/l on memory:memory failed after 4 attempts: injected transient fault: save locks/l');
    expect(faulty.calls.save).toBe(4);
  });
});

describe('loads into a caller buffer (LoadOptions.into)', () => {
  it('the memory adapter copies into into and returns a view of it; a short into is ignored', async () => {
    const storage = createMemoryStorage();
    const data = deterministicBytes(4000, 'mem-into');
    const h = { type: 'data' as const, name: sha256Hex(data) };
    await storage.save(h, data);
    const into = Buffer.alloc(3000, 0xab);
    const got = await storage.load(h, { offset: 100, length: 2000, into });
    expect(got.buffer).toBe(into.buffer);
    expect(got.byteOffset).toBe(into.byteOffset);
    expect(got.equals(data.subarray(100, 2100))).toBe(true);
    expect(into.subarray(2000).every((b) => b === 0xab)).toBe(true);
    const short = Buffer.alloc(10, 0xab);
    const own = await storage.load(h, { offset: 0, length: 11, into: short });
    expect(own.buffer).not.toBe(short.buffer);
    expect(own.equals(data.subarray(0, 11))).toBe(true);
    expect(short.every((b) => b === 0xab)).toBe(true);
  });

  it('withRetry and the fault injector pass into to every attempt; the retry overwrites the failed one', async () => {
    const inner = createMemoryStorage();
    // The first attempt reads into the buffer, then its reply is "lost" (a transient fault after the call).
    const faulty = createFaultyStorage(inner, { load: [{ fail: 'transient', afterCall: true }, 'transient'] });
    const storage = withRetry(faulty, fast);
    const a = deterministicBytes(5000, 'retry-into-a');
    const b = deterministicBytes(5000, 'retry-into-b');
    const ha = { type: 'data' as const, name: sha256Hex(a) };
    const hb = { type: 'data' as const, name: sha256Hex(b) };
    await inner.save(ha, a);
    await inner.save(hb, b);
    const into = Buffer.alloc(4096);
    // Stale bytes of another file are in the buffer before the retried load.
    expect((await inner.load(hb, { offset: 0, length: 4096, into })).equals(b.subarray(0, 4096))).toBe(true);
    const spy = vi.spyOn(inner, 'load');
    const got = await storage.load(ha, { offset: 10, length: 4000, into });
    expect(got.equals(a.subarray(10, 4010))).toBe(true);
    expect(got.buffer).toBe(into.buffer);
    expect(faulty.calls.load).toBe(3);
    // The second attempt failed before reaching the adapter; the first and the third got the same buffer.
    expect(spy.mock.calls.map((c) => c[1]?.into)).toHaveLength(2);
    expect(spy.mock.calls.every((c) => c[1]?.into === into)).toBe(true);
    spy.mockRestore();
  });
});

describe('memory adapter', () => {
  it('memory:NAME URLs share a store within the process', async () => {
    const a = await memoryAdapter.open('memory:shared-test', {}, {});
    const b = await memoryAdapter.open('memory:shared-test', {}, {});
    await a.save({ type: 'key', name: 'k' }, Buffer.from('v'));
    expect((await b.load({ type: 'key', name: 'k' })).toString()).toBe('v');
    const other = await memoryAdapter.open('memory:other-test', {}, {});
    await expect(other.load({ type: 'key', name: 'k' })).rejects.toSatisfy((e) => other.isNotFound(e));
  });

  it('a closed storage rejects further use', async () => {
    const s = createMemoryStorage();
    await s.close();
    expect(s.closed).toBe(true);
    await expect(s.save({ type: 'key', name: 'k' }, Buffer.from('v'))).rejects.toThrow(/memory:memory is closed/);
  });
});

// The kit also passes through the retry layer with faults injected on every other call.
describeStorageConformance('memory behind withRetry with injected transient faults', {
  open: async () =>
    withRetry(
      createFaultyStorage(createMemoryStorage(), {
        save: (c) => (c.n % 3 === 1 ? 'transient' : null),
        load: (c) => (c.n % 4 === 2 ? 'transient' : null),
        stat: (c) => (c.n % 5 === 3 ? 'transient' : null),
        list: (c) => (c.n % 2 === 1 ? { fail: 'transient', afterItems: 1 } : null),
      }),
      { ...fast, maxAttempts: 10 },
    ),
  options: { bigFileSize: 1024 * 1024, manyFiles: 200 },
});
