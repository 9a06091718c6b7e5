/**
 * Whether a large input is worth compressing, judged from a few samples: zstd at level 1 on
 * slices spread over it. Used by every path that compresses blobs (the repository's blob
 * writer, the backup's saver workers), so the same data is stored the same way whichever path
 * saves it. Pure and synchronous: no import beyond the types, so worker bundles can take it.
 *
 * Several slices, not one from the middle: a chunk of a file that mixes compressed and plain
 * stretches (a tar of mixed members, a database file, a disk image) may have an incompressible
 * middle and compressible ends. One middle sample stored such chunks uncompressed, and the
 * bench data set (1 MiB stretches of text between random ones) came out ~3 % larger than
 * restic's, which compresses every blob.
 */

/** Inputs at least this large are probed with samples before they are compressed whole. */
export const SAMPLE_THRESHOLD = 256 * 1024;
/** Slices taken, evenly spread over the input. */
export const SAMPLES = 4;
/** Each slice's length. */
export const SAMPLE_SIZE = 16 * 1024;
/** The samples must shrink below this share of their size for the input to be compressed. */
export const SAMPLE_RATIO = 0.98;

/**
 * True when `data` should be compressed: inputs below {@link SAMPLE_THRESHOLD} always (the caller
 * keeps the compressed form only when smaller); larger ones when `compressedLength` (zstd level 1 of
 * a slice) of the {@link SAMPLES} slices together comes below {@link SAMPLE_RATIO} of their length —
 * an estimate of the whole input's ratio, so an input with a compressible quarter is compressed
 * and one that is random throughout costs four small probes instead of a whole compression.
 */
export function worthCompressing(data: Uint8Array, compressedLength: (slice: Uint8Array) => number): boolean {
  const n = data.byteLength;
  if (n < SAMPLE_THRESHOLD) return true;
  const stride = n / SAMPLES;
  let sampled = 0;
  let compressed = 0;
  for (let i = 0; i < SAMPLES; i++) {
    const start = Math.min(n - SAMPLE_SIZE, Math.floor(stride * i + (stride - SAMPLE_SIZE) / 2));
    compressed += compressedLength(data.subarray(start, start + SAMPLE_SIZE));
    sampled += SAMPLE_SIZE;
  }
  return compressed < sampled * SAMPLE_RATIO;
}
