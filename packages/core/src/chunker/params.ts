/**
 * Content-defined chunking parameters. The sizes are stored in the repository
 * config; the seed is a per-repository secret (never stored in plaintext).
 */
export interface ChunkerParams {
  /** No chunk (except a file's last) is smaller than this. Default 512 KiB. */
  minSize: number;
  /** Target average chunk size; must be a power of two. Default 1 MiB. */
  avgSize: number;
  /** No chunk is larger than this. Default 8 MiB. */
  maxSize: number;
  /** 32-byte per-repository secret that seeds the gear table. */
  seed: Uint8Array;
}

/** Default sizes from the architecture brief: min 512 KiB, avg 1 MiB, max 8 MiB. */
export const DEFAULT_CHUNKER_PARAMS: Readonly<Omit<ChunkerParams, 'seed'>> = Object.freeze({
  minSize: 512 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
});

/** Length in bytes of {@link ChunkerParams.seed}. */
export const CHUNKER_SEED_LENGTH = 32;

/** Hard limits on chunk sizes accepted by {@link validateChunkerParams}. */
const MIN_ALLOWED = 64;
const MAX_ALLOWED = 1024 * 1024 * 1024;

/**
 * Throws a `RangeError` naming the offending field unless `p` is usable:
 * integer sizes with 64 B ≤ min ≤ avg ≤ max ≤ 1 GiB, avg a power of two
 * between 256 B and 2^30, and a 32-byte seed.
 */
export function validateChunkerParams(p: ChunkerParams): void {
  for (const key of ['minSize', 'avgSize', 'maxSize'] as const) {
    const v = p[key];
    if (!Number.isSafeInteger(v) || v < MIN_ALLOWED || v > MAX_ALLOWED) {
      throw new RangeError(`chunker params: ${key} must be an integer in [${MIN_ALLOWED}, ${MAX_ALLOWED}], got ${String(v)}`);
    }
  }
  if (p.minSize > p.avgSize || p.avgSize > p.maxSize) {
    throw new RangeError(
      `chunker params: need minSize ≤ avgSize ≤ maxSize, got ${p.minSize} / ${p.avgSize} / ${p.maxSize}`,
    );
  }
  if ((p.avgSize & (p.avgSize - 1)) !== 0 || p.avgSize < 256) {
    throw new RangeError(`chunker params: avgSize must be a power of two ≥ 256, got ${p.avgSize}`);
  }
  if (!(p.seed instanceof Uint8Array) || p.seed.length !== CHUNKER_SEED_LENGTH) {
    throw new RangeError(`chunker params: seed must be a ${CHUNKER_SEED_LENGTH}-byte Uint8Array`);
  }
}
