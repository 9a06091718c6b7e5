import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { COMPRESS_HERE_BELOW, compress, compressIfSmaller, decompress } from '../../src/compression/zstd.js';
import { parseFrameHeader } from '../../src/compression/zstd-frame.js';
import { SAMPLES, SAMPLE_SIZE, SAMPLE_THRESHOLD, worthCompressing } from '../../src/compression/probe.js';

/** Compressible bytes: words from a small vocabulary in a pseudo-random order. */
function text(size: number, seed: number): Buffer {
  let x = seed * 2654435761 + 1;
  let s = '';
  while (s.length < size) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    s += `w${x % 5000} `;
  }
  return Buffer.from(s.slice(0, size));
}

describe('zstd compression on either side of the on-thread limit', () => {
  it('round-trips inputs compressed on this thread and on the threadpool', async () => {
    for (const size of [200, 1000, COMPRESS_HERE_BELOW - 1, COMPRESS_HERE_BELOW, COMPRESS_HERE_BELOW * 3]) {
      const plain = text(size, size);
      const c = await compress(plain);
      expect(c.byteLength).toBeLessThan(size);
      // On this thread the frame declares its size (decompression then allocates exactly that).
      if (size < COMPRESS_HERE_BELOW) expect(parseFrameHeader(c).contentSize).toBe(size);
      expect((await decompress(c, { exact: size })).equals(plain)).toBe(true);
    }
  });

  it('on-thread results do not share memory (the scratch buffer is reused, the results are copies)', async () => {
    const a = text(5000, 1);
    const b = text(5000, 2);
    const ca = await compress(a);
    const copy = Buffer.from(ca);
    const cb = await compress(b);
    expect(ca.equals(copy)).toBe(true);
    expect((await decompress(ca, { exact: 5000 })).equals(a)).toBe(true);
    expect((await decompress(cb, { exact: 5000 })).equals(b)).toBe(true);
  });

  it('honours the level on this thread, and compressIfSmaller declines incompressible small inputs', async () => {
    const plain = text(40_000, 3);
    const fast = await compress(plain, -7);
    const strong = await compress(plain, 19);
    expect(strong.byteLength).toBeLessThan(fast.byteLength);
    expect(await compressIfSmaller(randomBytes(10_000))).toBeNull();
    await expect(compress(plain, 99)).rejects.toThrow(RangeError);
  });

  it('probes large inputs with slices spread over them: a compressible quarter is enough, random throughout is not', async () => {
    const size = 1024 * 1024;
    const random = randomBytes(size);
    const probed: number[] = [];
    const level1 = (slice: Uint8Array): number => {
      probed.push(slice.byteLength);
      return zstdLevel1Length(slice);
    };
    expect(worthCompressing(random, level1)).toBe(false);
    expect(probed).toEqual(new Array(SAMPLES).fill(SAMPLE_SIZE));
    const lastQuarterText = Buffer.concat([random.subarray(0, (size * 3) / 4), text(size / 4, 9)]);
    expect(worthCompressing(lastQuarterText, level1)).toBe(true);
    expect(await compressIfSmaller(lastQuarterText)).not.toBeNull();
    expect(await compressIfSmaller(random)).toBeNull();
    // Below the threshold there is no probe: the caller compresses and keeps the smaller form.
    probed.length = 0;
    expect(worthCompressing(random.subarray(0, SAMPLE_THRESHOLD - 1), level1)).toBe(true);
    expect(probed).toEqual([]);
  });
});

interface CCtx {
  compress(dst: Uint8Array, src: Uint8Array, level: number): number;
}
const napi = createRequire(import.meta.url)('zstd-napi/binding') as { CCtx: new () => CCtx; compressBound(n: number): number };
const cctx = new napi.CCtx();
/** zstd level 1's output length for a slice, synchronously (as the probe needs). */
function zstdLevel1Length(slice: Uint8Array): number {
  return cctx.compress(Buffer.allocUnsafe(napi.compressBound(slice.byteLength)), slice, 1);
}
