import { describe, expect, it } from 'vitest';
import { ContentError, ContentReader, type ContentLocation, type ContentSink, type ContentSource } from '../../src/restore/content.js';

/** Blobs `p<pack>-<n>` of `size` bytes filled with a byte derived from the id. */
function blobBytes(id: string, size: number): Buffer {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) & 0xff;
  return Buffer.alloc(size, h);
}

interface FakeOptions {
  /** Blob ids whose load fails. */
  broken?: Set<string>;
  /** Blob ids loadBlobs silently skips. */
  dropped?: Set<string>;
  size?: number;
  /** Called after each blob is handed over (before loadBlobs resolves). */
  afterBlob?: (id: string) => void;
}

/** A repository stand-in: blob `pX-n` lives in pack `pX` at offset n*size. Records every loadBlobs call. */
function fakeSource(opts: FakeOptions = {}) {
  const size = opts.size ?? 100;
  const calls: string[][] = [];
  const source: ContentSource = {
    lookupBlob(_type, id): ContentLocation | undefined {
      const m = /^(p\d+)-(\d+)$/.exec(id);
      if (!m) return undefined;
      return { pack: m[1]!, offset: Number(m[2]) * size, length: size, rawLength: size };
    },
    async loadBlobs(_type, ids, onBlob) {
      calls.push([...ids]);
      await new Promise((r) => setTimeout(r, 1));
      for (const id of ids) {
        if (opts.dropped?.has(id)) continue;
        if (opts.broken?.has(id)) await onBlob(id, undefined, new Error(`blob ${id} is damaged`));
        else await onBlob(id, blobBytes(id, size));
        opts.afterBlob?.(id);
      }
      await new Promise((r) => setTimeout(r, 1));
    },
  };
  return { source, calls, size };
}

interface FakeFile {
  name: string;
  ids: string[];
}

/** A sink writing into memory; records the calls. */
function memorySink(opts: { failOn?: string } = {}) {
  const files = new Map<string, Buffer>();
  const completed = new Set<string>();
  const discarded: string[] = [];
  const sink: ContentSink<FakeFile> = {
    writeWhole(f, data) {
      if (opts.failOn === f.name) throw new Error(`disk full writing ${f.name}`);
      files.set(f.name, Buffer.from(data));
      completed.add(f.name);
    },
    async writeAt(f, data, offset) {
      await new Promise((r) => setImmediate(r));
      if (opts.failOn === f.name) throw new Error(`disk full writing ${f.name}`);
      const cur = files.get(f.name) ?? Buffer.alloc(0);
      const next = Buffer.alloc(Math.max(cur.length, offset + data.length));
      cur.copy(next);
      data.copy(next, offset);
      files.set(f.name, next);
    },
    complete(f) {
      completed.add(f.name);
    },
    discard(f) {
      discarded.push(f.name);
      files.delete(f.name);
    },
  };
  return { sink, files, completed, discarded };
}

function expected(ids: string[], size: number): Buffer {
  return Buffer.concat(ids.map((id) => blobBytes(id, size)));
}

describe('ContentReader', () => {
  it('reads each pack once per window and writes each blob to every file and offset that uses it', async () => {
    const { source, calls, size } = fakeSource();
    const { sink, files, completed } = memorySink();
    const reader = new ContentReader(source, sink);
    const plan: FakeFile[] = [
      { name: 'a', ids: ['p1-0', 'p2-0', 'p1-1'] },
      { name: 'b', ids: ['p2-1'] },
      { name: 'copy-of-a', ids: ['p1-0', 'p2-0', 'p1-1'] },
      { name: 'zeros', ids: ['p3-0', 'p3-0', 'p3-0'] },
      { name: 'c', ids: ['p1-2'] },
    ];
    const dones = plan.map((f) => reader.add(f, f.ids).done);
    await reader.finish();
    await Promise.all(dones);
    for (const f of plan) {
      expect(completed.has(f.name), f.name).toBe(true);
      expect(files.get(f.name)!.equals(expected(f.ids, size)), f.name).toBe(true);
    }
    // One window: one read per pack, each blob asked for once.
    const asked = calls.flat();
    expect(new Set(asked).size).toBe(asked.length);
    expect(calls.map((c) => c[0]!.split('-')[0]).sort()).toEqual(['p1', 'p2', 'p3']);
  });

  it('splits the plan into windows and still delivers every file (small windows, few reads in flight)', async () => {
    const { source, size } = fakeSource();
    const { sink, files } = memorySink();
    const reader = new ContentReader(source, sink, { maxFiles: 3, maxUses: 5, readsInFlight: 1 });
    const plan: FakeFile[] = [];
    for (let i = 0; i < 40; i++) plan.push({ name: `f${i}`, ids: [`p${i % 4}-${i % 7}`, `p${(i + 1) % 5}-${i % 3}`] });
    let waits = 0;
    const dones: Array<Promise<void>> = [];
    for (const f of plan) {
      const { done, wait } = reader.add(f, f.ids);
      dones.push(done);
      if (wait) {
        waits++;
        await wait;
      }
    }
    await reader.finish();
    await Promise.all(dones);
    expect(waits).toBeGreaterThan(0); // the traversal was held back
    for (const f of plan) expect(files.get(f.name)!.equals(expected(f.ids, size)), f.name).toBe(true);
  });

  it('a blob planned again after it was delivered is read again for the later file (not failed as undelivered)', async () => {
    let reader!: ContentReader<FakeFile>;
    let late: Promise<void> | undefined;
    const { source, calls, size } = fakeSource({
      afterBlob: (id) => {
        // The traversal meets a copy of the file while the read that delivered its blob is still running.
        if (id === 'p1-0' && !late) late = reader.add({ name: 'late', ids: ['p1-0'] }, ['p1-0']).done;
      },
    });
    const { sink, files } = memorySink();
    reader = new ContentReader(source, sink);
    const first = reader.add({ name: 'first', ids: ['p1-0', 'p1-1'] }, ['p1-0', 'p1-1']).done;
    await new Promise((r) => setTimeout(r, 20));
    await reader.finish();
    await first;
    await late;
    expect(files.get('late')!.equals(expected(['p1-0'], size))).toBe(true);
    expect(calls.flat().filter((id) => id === 'p1-0')).toHaveLength(2);
  });

  it('a blob planned while its read is pending is delivered to the later file by that read', async () => {
    const { source, calls, size } = fakeSource();
    const { sink, files } = memorySink();
    const reader = new ContentReader(source, sink, { readsInFlight: 1 });
    const a = reader.add({ name: 'a', ids: ['p1-0', 'p2-0'] }, ['p1-0', 'p2-0']).done;
    await new Promise((r) => setImmediate(r)); // the first window is sealed and its reads start
    const b = reader.add({ name: 'b', ids: ['p2-0', 'p3-0'] }, ['p2-0', 'p3-0']).done;
    await reader.finish();
    await Promise.all([a, b]);
    expect(files.get('b')!.equals(expected(['p2-0', 'p3-0'], size))).toBe(true);
    expect(calls.flat().filter((id) => id === 'p2-0')).toHaveLength(1);
  });

  it('fails only the files using a damaged blob, and discards what was written of them', async () => {
    const { source, size } = fakeSource({ broken: new Set(['p2-0']) });
    const { sink, files, discarded } = memorySink();
    const reader = new ContentReader(source, sink);
    const good = reader.add({ name: 'good', ids: ['p1-0', 'p1-1'] }, ['p1-0', 'p1-1']).done;
    const bad = reader.add({ name: 'bad', ids: ['p1-0', 'p2-0'] }, ['p1-0', 'p2-0']).done;
    const bad2 = reader.add({ name: 'bad2', ids: ['p2-0'] }, ['p2-0']).done;
    await reader.finish();
    await good;
    expect(files.get('good')!.equals(expected(['p1-0', 'p1-1'], size))).toBe(true);
    const err = await bad.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ContentError);
    expect((err as ContentError).blobId).toBe('p2-0');
    expect((err as ContentError).message).toContain('damaged');
    await expect(bad2).rejects.toBeInstanceOf(ContentError);
    expect(files.has('bad')).toBe(false);
    expect(discarded).not.toContain('good');
  });

  it('fails a file whose blob is not in the index at once, and one whose blob is never delivered', async () => {
    const { source } = fakeSource({ dropped: new Set(['p1-1']) });
    const { sink } = memorySink();
    const reader = new ContentReader(source, sink);
    const unknown = reader.add({ name: 'u', ids: ['nope'] }, ['nope']).done;
    const lost = reader.add({ name: 'l', ids: ['p1-0', 'p1-1'] }, ['p1-0', 'p1-1']).done;
    await reader.finish();
    await expect(unknown).rejects.toThrow(/nope is not in the repository index/);
    await expect(lost).rejects.toThrow(/p1-1 was not delivered/);
  });

  it('a failing sink fails that file only', async () => {
    const { source, size } = fakeSource();
    const { sink, files } = memorySink({ failOn: 'x' });
    const reader = new ContentReader(source, sink);
    const x = reader.add({ name: 'x', ids: ['p1-0', 'p1-1'] }, ['p1-0', 'p1-1']).done;
    const y = reader.add({ name: 'y', ids: ['p1-0', 'p1-1'] }, ['p1-0', 'p1-1']).done;
    await reader.finish();
    await expect(x).rejects.toThrow(/disk full writing x/);
    await y;
    expect(files.get('y')!.equals(expected(['p1-0', 'p1-1'], size))).toBe(true);
  });

  it('stop waits for the reads in flight, which end at their next blob', async () => {
    let handedOver = 0;
    let readsRunning = 0;
    let gate!: () => void;
    const opened = new Promise<void>((r) => (gate = r));
    const source: ContentSource = {
      lookupBlob: (_type, id) => ({ pack: 'p1', offset: Number(id.slice(3)) * 10, length: 10, rawLength: 10 }),
      async loadBlobs(_type, ids, onBlob) {
        readsRunning++;
        try {
          for (const id of ids) {
            gate();
            await new Promise((r) => setTimeout(r, 5)); // a slow storage
            await onBlob(id, Buffer.alloc(10, 1));
            handedOver++;
          }
        } finally {
          readsRunning--;
        }
      },
    };
    const { sink } = memorySink();
    const reader = new ContentReader(source, sink);
    const ids = Array.from({ length: 50 }, (_, i) => `p1-${i}`);
    const dones = ids.map((id) => reader.add({ name: id, ids: [id] }, [id]).done);
    await opened; // a read of the pack is under way
    await reader.stop(new Error('interrupted'));
    expect(readsRunning).toBe(0); // no read outlives the stop (the caller may close the repository now)
    expect(handedOver).toBeLessThan(5); // and the read ended at its next blob, not after all 50
    const results = await Promise.allSettled(dones);
    expect(results.filter((r) => r.status === 'rejected').length).toBeGreaterThanOrEqual(45);
  });

  it('stop fails every file not written yet with the reason and discards partial files', async () => {
    const { source } = fakeSource();
    const { sink, discarded } = memorySink();
    const reader = new ContentReader(source, sink);
    const dones = [];
    for (let i = 0; i < 20; i++) dones.push(reader.add({ name: `f${i}`, ids: [`p${i}-0`, `p${i + 1}-1`] }, [`p${i}-0`, `p${i + 1}-1`]).done);
    const reason = new Error('interrupted');
    await new Promise((r) => setTimeout(r, 2));
    await reader.stop(reason);
    const results = await Promise.allSettled(dones);
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) expect(((r as PromiseRejectedResult).reason as ContentError).reason).toBe(reason);
    // Partly written files were discarded.
    for (const [i, r] of results.entries()) if (r.status === 'rejected' && discarded.includes(`f${i}`)) expect(discarded.filter((d) => d === `f${i}`)).toHaveLength(1);
    // After a stop, new files fail at once.
    await expect(reader.add({ name: 'late', ids: ['p1-0'] }, ['p1-0']).done).rejects.toBeInstanceOf(ContentError);
  });
});
