import { describe, expect, it } from 'vitest';
import { BlobFetcher, type FetchSource } from '../../src/restore/fetcher.js';

const KiB = 1024;

/** A fake repository: blob `id` has content `id` repeated; sizes from `sizes`. Records batch calls. */
function fakeSource(sizes: Record<string, number>, opts: { fail?: Set<string>; batched?: boolean } = {}) {
  const batches: string[][] = [];
  const singles: string[] = [];
  let loadedNotTaken = 0;
  const source: FetchSource = {
    loadBlob: async (_type, id) => {
      singles.push(id);
      await new Promise((r) => setImmediate(r));
      if (opts.fail?.has(id)) throw new Error(`blob ${id} is damaged`);
      return Buffer.from(id);
    },
    lookupBlob: (_type, id) => (sizes[id] === undefined ? undefined : { length: sizes[id]! }),
  };
  if (opts.batched !== false) {
    source.loadBlobs = async (_type, ids, onBlob) => {
      batches.push([...ids]);
      await new Promise((r) => setImmediate(r));
      for (const id of ids) {
        loadedNotTaken++;
        if (opts.fail?.has(id)) onBlob(id, undefined, new Error(`blob ${id} is damaged`));
        else onBlob(id, Buffer.from(id));
      }
    };
  }
  return { source, batches, singles, loaded: () => loadedNotTaken };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('BlobFetcher', () => {
  it('loads planned single-blob files ahead in batches and hands each its content', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `b${i}`);
    const { source, batches, singles } = fakeSource(Object.fromEntries(ids.map((id) => [id, 4 * KiB])));
    const f = new BlobFetcher(source, 1024 * KiB);
    const claims = ids.map((id) => f.plan([id]));
    for (const [i, c] of claims.entries()) expect((await c.take(0)).toString()).toBe(ids[i]);
    expect(singles).toEqual([]);
    expect(batches.length).toBeLessThanOrEqual(2);
    expect(batches.flat().sort()).toEqual([...ids].sort());
  });

  it('keeps loaded-but-untaken bytes within the budget', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
    const { source, batches } = fakeSource(Object.fromEntries(ids.map((id) => [id, 100 * KiB])));
    const f = new BlobFetcher(source, 500 * KiB);
    const claims = ids.map((id) => f.plan([id]));
    await tick();
    await tick();
    // Nothing taken yet: at most the budget (5 blobs) was started.
    expect(batches.flat().length).toBeLessThanOrEqual(5);
    for (const c of claims) await c.take(0);
    expect(batches.flat().length).toBe(40);
  });

  it('loads a blob planned twice once, and serves both files', async () => {
    const { source, batches } = fakeSource({ x: 10, y: 10 });
    const f = new BlobFetcher(source, 1024 * KiB);
    const a = f.plan(['x']);
    const b = f.plan(['y']);
    const c = f.plan(['x']);
    expect((await a.take(0)).toString()).toBe('x');
    expect((await b.take(0)).toString()).toBe('y');
    expect((await c.take(0)).toString()).toBe('x');
    expect(batches.flat().filter((id) => id === 'x').length).toBe(1);
  });

  it('a file that takes before the read-ahead reaches it still gets its blob (no deadlock past the budget)', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `d${i}`);
    const { source } = fakeSource(Object.fromEntries(ids.map((id) => [id, 100 * KiB])));
    const f = new BlobFetcher(source, 150 * KiB);
    const claims = ids.map((id) => f.plan([id]));
    // take the last ones first while the earlier ones hold the budget
    expect((await claims[19]!.take(0)).toString()).toBe('d19');
    expect((await claims[10]!.take(0)).toString()).toBe('d10');
    for (const [i, c] of claims.entries()) if (i !== 19 && i !== 10) expect((await c.take(0)).toString()).toBe(ids[i]);
  });

  it('released claims free their budget so later files load ahead', async () => {
    const { source, batches } = fakeSource({ e0: 300 * KiB, e1: 300 * KiB, e2: 300 * KiB });
    const f = new BlobFetcher(source, 300 * KiB);
    const c0 = f.plan(['e0']);
    f.plan(['e1']).release(); // e.g. the file failed before reading
    const c2 = f.plan(['e2']);
    await c0.take(0);
    await c2.take(0);
    expect(batches.flat()).not.toContain('e1');
  });

  it('streams a multi-blob file in order with a bounded window, and reports a damaged blob', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `m${i}`);
    const { source, batches } = fakeSource(Object.fromEntries(ids.map((id) => [id, 1024 * KiB])), { fail: new Set(['m7']) });
    const f = new BlobFetcher(source, 1024 * KiB);
    const claim = f.plan(ids);
    for (let i = 0; i < 7; i++) {
      expect((await claim.take(i)).toString()).toBe(ids[i]);
      // never more than two windows (2 × 4 MiB) requested beyond what was taken
      expect(batches.flat().length - (i + 1)).toBeLessThanOrEqual(8);
    }
    await expect(claim.take(7)).rejects.toThrow(/m7 is damaged/);
    expect(() => claim.take(9)).toThrow(/out of order/);
    claim.release();
  });

  it('serves a multi-blob file that repeats one blob (runs of zeros), with and without loadBlobs', async () => {
    for (const batched of [true, false]) {
      const ids = ['z', 'z', 'q', 'z', 'z', 'z'];
      const { source } = fakeSource({ z: 1024 * KiB, q: 1024 * KiB }, { batched });
      const f = new BlobFetcher(source, 1024 * KiB);
      const claim = f.plan(ids);
      for (let i = 0; i < ids.length; i++) expect((await claim.take(i)).toString()).toBe(ids[i]);
      claim.release();
    }
  });

  it('works with a repository that has no loadBlobs (one load per blob)', async () => {
    const { source, singles } = fakeSource({ s1: 10, s2: 10 }, { batched: false, fail: new Set(['s2']) });
    const f = new BlobFetcher(source, 1024 * KiB);
    const a = f.plan(['s1']);
    const b = f.plan(['s2']);
    expect((await a.take(0)).toString()).toBe('s1');
    await expect(b.take(0)).rejects.toThrow(/s2 is damaged/);
    expect(singles.sort()).toEqual(['s1', 's2']);
  });
});
