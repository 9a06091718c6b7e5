/**
 * A Bloom filter of blob ids in shared memory: the main thread adds the ids of data blobs that
 * are stored or claimed; saver threads ask whether a chunk's id might be one of them (then they
 * do not compress and encrypt it). Bits are only ever set, so a reader can never miss an id
 * that was added before it asked; a false positive (about 1 in 1,000 at the sizes chosen) only
 * means the main thread reads that chunk itself (saver-pool.ts).
 *
 * Blob ids are HMAC-SHA-256 outputs, uniformly distributed: four 32-bit words of the id are the
 * four bit positions.
 */

const HASHES = 4;

export class BlobFilter {
  readonly words: Int32Array;
  private readonly mask: number;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
    this.mask = this.words.length * 32 - 1;
  }

  /** A filter sized for about `expected` ids (at least 2^20 bits, 16 bits per id, a power of two). */
  static create(expected: number): BlobFilter {
    let bits = 1 << 20;
    while (bits < expected * 16 && bits < 2 ** 31) bits *= 2;
    return new BlobFilter(new SharedArrayBuffer(bits / 8));
  }

  add(id: Uint8Array): void {
    for (let h = 0; h < HASHES; h++) {
      const bit = word(id, h * 4) & this.mask;
      Atomics.or(this.words, bit >>> 5, 1 << (bit & 31));
    }
  }

  mightHave(id: Uint8Array): boolean {
    for (let h = 0; h < HASHES; h++) {
      const bit = word(id, h * 4) & this.mask;
      if ((Atomics.load(this.words, bit >>> 5) & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

function word(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
