import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BufferPool,
  Chunker,
  DEFAULT_CHUNKER_PARAMS,
  chunkFile,
  chunkStream,
  deriveGearTable,
  type ChunkerParams,
} from '../../src/index.js';

/** Deterministic pseudo-random bytes (xorshift32 seeded from the label), so failures reproduce. */
function prng(len: number, label: string): Buffer {
  const out = Buffer.allocUnsafe(len + 3);
  let x = createHash('sha256').update(label).digest().readUInt32LE(0) | 1;
  for (let off = 0; off < len; off += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, off);
  }
  return out.subarray(0, len);
}

const seedA = Buffer.alloc(32, 1);
const seedB = Buffer.alloc(32, 2);
/** Small sizes keep the tests fast; the algorithm is the same. */
const small = (seed: Uint8Array): ChunkerParams => ({ minSize: 4096, avgSize: 16384, maxSize: 65536, seed });

function cutAll(c: Chunker, buf: Uint8Array): number[] {
  const sizes: number[] = [];
  let s = 0;
  while (s < buf.length) {
    let cut = c.findBoundary(buf, s, buf.length);
    if (cut < 0) cut = buf.length;
    sizes.push(cut - s);
    s = cut;
  }
  return sizes;
}

async function collect(gen: AsyncGenerator<Buffer, unknown>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of gen) out.push(Buffer.from(c)); // copy: views are only valid until resumed
  return out;
}

async function* pieces(buf: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, Math.min(buf.length, i + size));
}

/** Chunk sizes of prng(12 MiB, 'golden') with default sizes and seedA; changing them changes the repository format. */
const GOLDEN_SIZES = [1115302, 1452930, 1875223, 1164321, 871853, 1059327, 2442477, 1165606, 1106127, 329746];

const data = prng(3 * 1024 * 1024, 'data');

describe('Chunker.findBoundary', () => {
  it('is deterministic for a seed and respects min/max', () => {
    const a = cutAll(new Chunker(small(seedA)), data);
    const b = cutAll(new Chunker(small(Buffer.from(seedA))), data);
    expect(a).toEqual(b);
    expect(a.reduce((x, y) => x + y, 0)).toBe(data.length);
    for (const s of a.slice(0, -1)) {
      expect(s).toBeGreaterThan(4096);
      expect(s).toBeLessThanOrEqual(65536);
    }
    const mean = data.length / a.length;
    expect(mean).toBeGreaterThan(12_000);
    expect(mean).toBeLessThan(30_000);
  });

  it('gives different boundaries for different seeds', () => {
    const a = cutAll(new Chunker(small(seedA)), data);
    const b = cutAll(new Chunker(small(seedB)), data);
    expect(a).not.toEqual(b);
    expect(deriveGearTable(seedA)).not.toEqual(deriveGearTable(seedB));
  });

  it('returns -1 when no cut fits in a window shorter than max, and max on a full window of zeros', () => {
    const c = new Chunker(small(seedA));
    expect(c.findBoundary(data, 0, 4096)).toBe(-1);
    expect(c.findBoundary(data, 10, 10)).toBe(-1);
    const zeros = Buffer.alloc(200_000);
    // All-zero input: h converges to a constant; either it always matches or never.
    const cut = c.findBoundary(zeros, 0, zeros.length);
    expect(cut === 65536 || (cut > 4096 && cut <= 65536)).toBe(true);
  });

  it('cuts do not depend on buffering (window end), and resuming a scan gives the same cut', () => {
    const c = new Chunker(small(seedA));
    const full = c.findBoundary(data, 1000, data.length);
    expect(full).toBeGreaterThan(0);
    expect(c.findBoundary(data, 1000, full)).toBe(full);
    expect(c.findBoundary(data, 1000, full - 1)).toBe(-1);
    for (let start = 0; start < 500_000; start += 7919) {
      const cut = c.findBoundary(data, start, data.length);
      for (const e of [start + 4097, start + 4100, start + 4130, start + 16390, cut - 40, cut - 31, cut - 1]) {
        if (e <= start || e >= cut) continue;
        expect(c.findBoundary(data, start, e)).toBe(-1);
        expect(c.findBoundary(data, start, data.length, e)).toBe(cut);
        expect(c.findBoundary(data, start, cut, e)).toBe(cut);
      }
    }
  });

  it('matches a plain reference implementation of the documented algorithm at every alignment', () => {
    const p = small(seedA);
    const c = new Chunker(p);
    const g = deriveGearTable(p.seed);
    const hard = (-1 << (32 - 16)) | 0; // log2(16 KiB) + 2 top bits
    const easy = (-1 << (32 - 12)) | 0; // log2(16 KiB) - 2 top bits
    const reference = (buf: Uint8Array, start: number, end: number): number => {
      const n = Math.min(end - start, p.maxSize);
      if (end - start <= p.minSize) return -1;
      let h = 0;
      for (let i = start + p.minSize; i < start + n; i++) {
        h = ((h << 1) + g[buf[i]!]!) | 0;
        if ((h & (i < start + p.avgSize ? hard : easy)) === 0) return i + 1;
      }
      return end - start >= p.maxSize ? start + p.maxSize : -1;
    };
    const input = data.subarray(0, 600_000);
    for (let start = 0; start < 200_000; start += 9973) {
      for (const len of [4096, 4097, 4100, 16383, 16384, 16387, 30_001, 65535, 65536, 65539, 400_000]) {
        const end = Math.min(input.length, start + len);
        expect(c.findBoundary(input, start, end)).toBe(reference(input, start, end));
      }
    }
  });

  it('boundaries are stable across versions (repository format)', () => {
    const c = new Chunker({ ...DEFAULT_CHUNKER_PARAMS, seed: seedA });
    const golden = prng(12 * 1024 * 1024, 'golden');
    expect(cutAll(c, golden)).toEqual(GOLDEN_SIZES);
  });

  it('validates params', () => {
    expect(() => new Chunker({ ...small(seedA), avgSize: 15000 })).toThrow(/power of two/);
    expect(() => new Chunker({ ...small(seedA), minSize: 1 << 20 })).toThrow(/minSize ≤ avgSize/);
    expect(() => new Chunker({ ...small(seedA), seed: new Uint8Array(16) })).toThrow(/32-byte/);
  });

  it('resists shifts: an insertion changes at most 3 chunks', () => {
    const c = new Chunker(small(seedA));
    const ins = Buffer.concat([data.subarray(0, 1_500_000), prng(777, 'ins'), data.subarray(1_500_000)]);
    const hashes = (buf: Buffer) => {
      const out: string[] = [];
      let s = 0;
      for (const size of cutAll(c, buf)) {
        out.push(createHash('sha256').update(buf.subarray(s, s + size)).digest('hex'));
        s += size;
      }
      return out;
    };
    const before = new Set(hashes(data));
    const after = hashes(ins);
    const fresh = after.filter((h) => !before.has(h));
    expect(fresh.length).toBeGreaterThan(0);
    expect(fresh.length).toBeLessThanOrEqual(3);
  });
});

describe('chunk readers (default sizes)', () => {
  let dir: string;
  const params: ChunkerParams = { ...DEFAULT_CHUNKER_PARAMS, seed: seedA };
  const big = prng(40 * 1024 * 1024, 'big');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiwi-chunker-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('defaults are 512 KiB / 1 MiB / 8 MiB', () => {
    expect(DEFAULT_CHUNKER_PARAMS).toEqual({ minSize: 524288, avgSize: 1048576, maxSize: 8388608 });
  });

  it('file chunks concatenate to the input, agree with findBoundary and chunkStream, count bytes', async () => {
    const f = join(dir, 'big');
    await writeFile(f, big);
    const chunker = new Chunker(params);
    const expected = cutAll(chunker, big);
    const fh = await open(f, 'r');
    const stats = { bytesRead: 0, chunks: 0 };
    let reads = 0;
    const fromFile = await collect(chunkFile(fh, chunker, undefined, { stats, onRead: () => reads++ }));
    await fh.close();
    expect(fromFile.map((c) => c.length)).toEqual(expected);
    expect(Buffer.concat(fromFile).equals(big)).toBe(true);
    expect(stats).toEqual({ bytesRead: big.length, chunks: expected.length });
    expect(reads).toBeGreaterThan(1);
    for (const c of fromFile.slice(0, -1)) {
      expect(c.length).toBeGreaterThan(params.minSize);
      expect(c.length).toBeLessThanOrEqual(params.maxSize);
    }
    for (const size of [65536, 3_000_001, 20_000_000]) {
      const fromStream = await collect(chunkStream(pieces(big, size), params));
      expect(fromStream.map((c) => c.length)).toEqual(expected);
    }
    // Small and odd read sizes: many resumed scans and compactions.
    for (const readSize of [100_000, 1_234_567]) {
      const fh2 = await open(f, 'r');
      const got = await collect(chunkFile(fh2, chunker, undefined, { readSize }));
      await fh2.close();
      expect(got.map((c) => c.length)).toEqual(expected);
    }
  });

  it('chunkStream copes with tiny pieces and a reused producer buffer', async () => {
    const p = small(seedA);
    const input = data.subarray(0, 300_000);
    const expected = cutAll(new Chunker(p), input);
    async function* reusing(): AsyncGenerator<Uint8Array> {
      const scratch = Buffer.alloc(7);
      for (let i = 0; i < input.length; i += 7) {
        const n = input.copy(scratch, 0, i, i + 7);
        yield scratch.subarray(0, n);
        scratch.fill(0xee); // producer scribbles over its buffer after the consumer copied it
      }
    }
    const out = await collect(chunkStream(reusing(), p));
    expect(out.map((c) => c.length)).toEqual(expected);
    expect(Buffer.concat(out).equals(input)).toBe(true);
  });

  it('a numeric fd and the length option work; the fd offset is not used', async () => {
    const f = join(dir, 'fd');
    const content = big.subarray(0, 5_000_000);
    await writeFile(f, content);
    const fd = openSync(f, 'r');
    try {
      const all = await collect(chunkFile(fd, params));
      expect(Buffer.concat(all).equals(content)).toBe(true);
      const stats = { bytesRead: 0, chunks: 0 };
      const part = await collect(chunkFile(fd, params, undefined, { length: 2_000_000, stats }));
      expect(Buffer.concat(part).equals(content.subarray(0, 2_000_000))).toBe(true);
      expect(stats.bytesRead).toBe(2_000_000);
    } finally {
      closeSync(fd);
    }
  });

  it('a file up to minSize is one chunk; an empty file none', async () => {
    const small1 = join(dir, 'small');
    await writeFile(small1, big.subarray(0, 1000));
    const exactMin = join(dir, 'min');
    await writeFile(exactMin, big.subarray(0, params.minSize));
    const empty = join(dir, 'empty');
    await writeFile(empty, '');
    for (const [f, len] of [
      [small1, 1000],
      [exactMin, params.minSize],
    ] as const) {
      const fh = await open(f, 'r');
      const chunks = await collect(chunkFile(fh, params));
      await fh.close();
      expect(chunks.map((c) => c.length)).toEqual([len]);
    }
    const fh = await open(empty, 'r');
    const stats = { bytesRead: 0, chunks: 0 };
    expect(await collect(chunkFile(fh, params, undefined, { stats }))).toEqual([]);
    await fh.close();
    expect(stats).toEqual({ bytesRead: 0, chunks: 0 });
    expect(await collect(chunkStream(pieces(Buffer.alloc(0), 10), params))).toEqual([]);
  });

  it('a 1 MiB change in the middle changes only a few chunks', async () => {
    const changed = Buffer.from(big);
    prng(1024 * 1024, 'patch').copy(changed, 20 * 1024 * 1024);
    const chunker = new Chunker(params);
    const ids = (b: Buffer) => {
      const out: string[] = [];
      let s = 0;
      for (const size of cutAll(chunker, b)) {
        out.push(createHash('sha256').update(b.subarray(s, s + size)).digest('hex'));
        s += size;
      }
      return out;
    };
    const before = new Set(ids(big));
    const fresh = ids(changed).filter((h) => !before.has(h));
    expect(fresh.length).toBeGreaterThan(0);
    expect(fresh.length).toBeLessThanOrEqual(3);
  });

  it('reuses pooled buffers and returns them when a consumer stops early', async () => {
    const pool = new BufferPool({ maxIdle: 1 });
    const f = join(dir, 'pool');
    await writeFile(f, big.subarray(0, 10_000_000));
    const fh = await open(f, 'r');
    for await (const c of chunkFile(fh, params, pool)) {
      expect(c.length).toBeGreaterThan(0);
      expect(pool.idle).toBe(0);
      break;
    }
    expect(pool.idle).toBe(1);
    const first: Buffer[] = [];
    for await (const c of chunkFile(fh, params, pool)) first.push(c);
    await fh.close();
    // Views into one working buffer: all chunks share the same backing memory.
    expect(new Set(first.map((c) => c.buffer)).size).toBe(1);
    expect(pool.idle).toBe(1);
  });

  it('a read error is thrown from the generator, also when it happens while a chunk is out', async () => {
    const f = join(dir, 'readerr');
    await writeFile(f, big.subarray(0, 12_000_000));
    const fh = await open(f, 'r');
    let calls = 0;
    const failing = {
      read: (b: Buffer, off: number, len: number, pos: number) => {
        if (++calls === 3) return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
        return fh.read(b, off, len, pos);
      },
    } as unknown as import('node:fs/promises').FileHandle;
    const pool = new BufferPool();
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const c of chunkFile(failing, params, pool)) {
          seen.push(c.length);
          await new Promise((r) => setTimeout(r, 20)); // the failed read-ahead sits unawaited meanwhile
        }
      })(),
    ).rejects.toThrow('EIO');
    await fh.close();
    expect(seen.length).toBeGreaterThan(0);
    expect(pool.idle).toBe(1);
  });

  it('aborts between reads', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop now'));
    const f = join(dir, 'abort');
    await writeFile(f, big.subarray(0, 1000));
    const fh = await open(f, 'r');
    await expect(collect(chunkFile(fh, params, undefined, { signal: ac.signal }))).rejects.toThrow('stop now');
    await fh.close();
  });

  it('random seeds of real repositories give distinct tables', () => {
    const t1 = deriveGearTable(randomBytes(32));
    const t2 = deriveGearTable(randomBytes(32));
    expect(t1.length).toBe(256);
    expect(t1).not.toEqual(t2);
  });
});
