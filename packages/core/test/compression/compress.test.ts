import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { COMPRESS_HERE_BELOW, compress, compressIfSmaller, decompress } from '../../src/compression/zstd.js';
import { parseFrameHeader } from '../../src/compression/zstd-frame.js';

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
});
