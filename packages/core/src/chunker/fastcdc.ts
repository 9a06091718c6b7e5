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
   * Pure and allocation-free.
   */
  findBoundary(buf: Uint8Array, start: number, end: number): number {
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
    for (; i < mid; i++) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & maskS) === 0) return i + 1;
    }
    for (; i < lim; i++) {
      h = ((h << 1) + g[buf[i]!]!) | 0;
      if ((h & maskL) === 0) return i + 1;
    }
    return full ? lim : -1;
  }
}
