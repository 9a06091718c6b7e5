import { deriveGearTable } from './gear.js';
import { validateChunkerParams, type ChunkerParams } from './params.js';

/** A mask of the `bits` most significant bits of a 32-bit word, as an int32. */
function highMask(bits: number): number {
  const n = Math.max(1, Math.min(32, bits));
  return (-1 << (32 - n)) | 0;
}

/**
 * FastCDC content-defined chunker (normalized chunking, level 2) over a 32-bit
 * gear hash `h = (h << 1) + G[byte]` with a secret, seed-derived gear table G.
 *
 * For a chunk starting at `s`: the first `minSize` bytes are not hashed; from
 * `s + minSize` to `s + avgSize` a cut is made after byte `i` when the top
 * `log2(avg) + 2` bits of `h` are zero (hard mask), from there on when the top
 * `log2(avg) - 2` bits are zero (easy mask); at `s + maxSize` the chunk is cut
 * unconditionally. A cut depends only on the bytes before it, so boundaries do
 * not depend on how the input was buffered.
 */
export class Chunker {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
  private readonly gear: Int32Array;
  private readonly maskS: number;
  private readonly maskL: number;

  constructor(params: ChunkerParams) {
    validateChunkerParams(params);
    this.minSize = params.minSize;
    this.avgSize = params.avgSize;
    this.maxSize = params.maxSize;
    this.gear = deriveGearTable(params.seed);
    const bits = Math.round(Math.log2(params.avgSize));
    this.maskS = highMask(bits + 2);
    this.maskL = highMask(bits - 2);
  }

  /**
   * Finds the end of the chunk that starts at `buf[start]`, looking at
   * `buf[start, end)` only. Returns the cut offset `c` (the chunk is
   * `buf[start, c)`, `start + minSize < c ≤ start + maxSize`), or -1 when no
   * cut lies in the window and it is shorter than `maxSize`: then more data is
   * needed, or, at end of input, `buf[start, end)` is the last chunk.
   *
   * `resumeFrom`: after a call with the same `start` returned -1 for a window
   * ending at `e`, pass `e` here with a longer window; the scan restarts at
   * `e` (rehashing only the 32 bytes before it, all the gear hash depends on)
   * instead of `start + minSize`. Same result as without it.
   * Pure and allocation-free.
   */
  findBoundary(buf: Uint8Array, start: number, end: number, resumeFrom: number = start): number {
    let n = end - start;
    if (n <= this.minSize) return -1;
    const full = n >= this.maxSize;
    if (full) n = this.maxSize;
    const g = this.gear;
    const maskS = this.maskS;
    const maskL = this.maskL;
    const mid = start + (n < this.avgSize ? n : this.avgSize);
    const lim = start + n;
    let i = start + this.minSize;
    let h = 0;
    if (resumeFrom > i) {
      // Positions before resumeFrom were checked by an earlier call: only
      // rebuild the hash (its value depends on the last 32 bytes alone).
      const resume = resumeFrom < lim ? resumeFrom : lim;
      if (resume - 32 > i) i = resume - 32;
      for (; i < resume; i++) h = ((h << 1) + g[buf[i]!]!) | 0;
    }
    // Unrolled by four (≈40% faster than the plain loop on V8); the tails
    // finish byte by byte. Identical results to the plain loop.
    const mid4 = mid - 3;
    for (; i < mid4; i += 4) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & maskS) === 0) return i + 1;
      h = ((h << 1) + g[buf[i + 1]!]!) | 0;
      if ((h & maskS) === 0) return i + 2;
      h = ((h << 1) + g[buf[i + 2]!]!) | 0;
      if ((h & maskS) === 0) return i + 3;
      h = ((h << 1) + g[buf[i + 3]!]!) | 0;
      if ((h & maskS) === 0) return i + 4;
    }
    for (; i < mid; i++) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & maskS) === 0) return i + 1;
    }
    const lim4 = lim - 3;
    for (; i < lim4; i += 4) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & maskL) === 0) return i + 1;
      h = ((h << 1) + g[buf[i + 1]!]!) | 0;
      if ((h & maskL) === 0) return i + 2;
      h = ((h << 1) + g[buf[i + 2]!]!) | 0;
      if ((h & maskL) === 0) return i + 3;
      h = ((h << 1) + g[buf[i + 3]!]!) | 0;
      if ((h & maskL) === 0) return i + 4;
    }
    for (; i < lim; i++) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & maskL) === 0) return i + 1;
    }
    return full ? lim : -1;
  }
}
