/**
 * zstd compression of blobs and metadata files, on libuv's threadpool (`@mongodb-js/zstd`), so
 * several blobs can compress at once; and bounded decompression (`zstd-napi` in worker threads,
 * see decompress-pool.ts): `@mongodb-js/zstd` can only decompress a whole buffer into an output
 * that grows without limit, so a small hostile frame made it allocate gigabytes and crash.
 */
import { createRequire } from 'node:module';
import { decompressAttempt } from './decompress-pool.js';
import { worthCompressing } from './probe.js';
import { parseFrameHeader } from './zstd-frame.js';

interface ZstdBinding {
  compress(data: Buffer, level?: number | null): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

const require = createRequire(import.meta.url);

function loadBinding(): ZstdBinding {
  // The package's JS wrapper (1.2.x) drops the `level` argument; the native binding honours it.
  try {
    return require('@mongodb-js/zstd/bindings.js') as ZstdBinding;
  } catch {
    return require('@mongodb-js/zstd') as ZstdBinding;
  }
}

let binding: ZstdBinding | undefined;
function zstd(): ZstdBinding {
  return (binding ??= loadBinding());
}

export const DEFAULT_COMPRESSION_LEVEL = 3;

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Inputs below this size are compressed on the calling thread (zstd-napi's CCtx, as the saver
 * workers do) instead of on the threadpool: handing a job to the pool and back costs more than
 * compressing a few KiB, and a big backup compresses one tree per directory (on a 2-vCPU VM the
 * round trip measured 15–80 µs of the main thread, 0.9 s over 12,000 trees).
 */
export const COMPRESS_HERE_BELOW = 64 * 1024;

interface CCtx {
  compress(dst: Uint8Array, src: Uint8Array, level: number): number;
}
interface ZstdNapiCompress {
  CCtx: new () => CCtx;
  compressBound(size: number): number;
}
let cctx: CCtx | undefined;
let napiCompress: ZstdNapiCompress | undefined;
/** The output of on-thread compression, reused (the result is copied out of it). */
let compressScratch: Buffer | undefined;

/** Compress on this thread; `copy: false` returns a view of the scratch buffer, valid until the next call. */
function compressHere(data: Uint8Array, level: number, copy = true): Buffer {
  napiCompress ??= require('zstd-napi/binding') as ZstdNapiCompress;
  cctx ??= new napiCompress.CCtx();
  const bound = napiCompress.compressBound(data.byteLength);
  if (compressScratch === undefined || compressScratch.byteLength < bound) compressScratch = Buffer.allocUnsafeSlow(Math.max(bound, 128 * 1024));
  const n = cctx.compress(compressScratch, data, level);
  return copy ? Buffer.from(compressScratch.subarray(0, n)) : compressScratch.subarray(0, n);
}

/** Compress `data` with zstd at `level`. */
export async function compress(data: Uint8Array, level = DEFAULT_COMPRESSION_LEVEL): Promise<Buffer> {
  if (!Number.isInteger(level) || level < -7 || level > 22) throw new RangeError(`zstd level must be an integer in -7..22, got ${level}`);
  try {
    if (data.byteLength < COMPRESS_HERE_BELOW) return compressHere(data, level);
    return await zstd().compress(asBuffer(data), level);
  } catch (err) {
    throw new Error(`zstd compression failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Compress `data`, returning the compressed form only when it is smaller than the input;
 * `null` means "store it uncompressed". Inputs under 64 bytes are not compressed. Inputs of
 * 256 KiB or more are probed first (see probe.ts): when slices spread over
 * them do not shrink at level 1, the input is taken as incompressible (already compressed or
 * encrypted data) and not compressed at all — this saves most of zstd's cost on such data.
 */
export async function compressIfSmaller(data: Uint8Array, level = DEFAULT_COMPRESSION_LEVEL): Promise<Buffer | null> {
  if (data.byteLength < 64) return null;
  if (!worthCompressing(data, (slice) => compressHere(slice, 1, false).byteLength)) return null;
  const c = await compress(data, level);
  return c.byteLength < data.byteLength ? c : null;
}

/**
 * How much a decompression may produce: `exact` — the content must be exactly this many bytes
 * (a blob's recorded raw length); `max` — at most this many (a metadata file's cap). Either is
 * a hard limit: no more than it is ever allocated or produced. `here`: decompress on the calling
 * thread whatever the size (metadata and trees: small, and read where nothing else would run
 * meanwhile; a worker thread's start and memory cost more than it saves).
 */
export type DecompressBound = ({ exact: number } | { max: number }) & { here?: boolean };

/** A zstd frame that is damaged, or larger than its bound. */
export class DecompressError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DecompressError';
  }
}

/** With `max` and no declared size, the first attempt's output size: this many times the input, at least 64 KiB. */
const FIRST_GUESS_RATIO = 8;
/** Each further attempt (after "too small") is this many times larger, up to `max`. */
const GROWTH = 4;

/**
 * Decompress one zstd frame (RFC 8878) within `bound`, off the main thread. A frame header that
 * declares more than the bound (or, with `exact`, another size), a dictionary, or data after the
 * frame is refused before anything is allocated; a frame that does not declare its size is
 * decompressed into a buffer of the bound (`exact`), or of a guess that grows ×4 per attempt up
 * to `max` — a bomb fails once its output reaches the bound. Fails with {@link DecompressError}.
 * A number as `bound` means `{ exact: n }`. `reuse`: the output may live in a pooled buffer;
 * the caller gives it back with `releaseOutput` (decompress-pool.ts) when done with the bytes.
 */
export async function decompress(data: Uint8Array, bound: DecompressBound | number, opts: { reuse?: boolean } = {}): Promise<Buffer> {
  if (typeof bound === 'number') bound = { exact: bound };
  const limit = 'exact' in bound ? bound.exact : bound.max;
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`invalid decompression bound ${limit}`);
  let header;
  try {
    header = parseFrameHeader(data);
  } catch (err) {
    throw new DecompressError(`zstd decompression failed: ${(err as Error).message}`, { cause: err });
  }
  if (header.dictionaryId !== 0) throw new DecompressError('zstd decompression failed: the frame needs a dictionary');
  const declared = header.contentSize;
  if (declared !== undefined) {
    if ('exact' in bound && declared !== bound.exact) {
      throw new DecompressError(`zstd frame declares ${declared} bytes of content, expected ${bound.exact}`);
    }
    if (declared > limit) throw new DecompressError(`zstd frame declares ${declared} bytes of content, more than the limit of ${limit}`);
  }
  let size = declared ?? ('exact' in bound ? bound.exact : Math.min(limit, Math.max(64 * 1024, data.byteLength * FIRST_GUESS_RATIO)));
  for (;;) {
    let attempt;
    try {
      attempt = await decompressAttempt(data, size, bound.here === true, opts.reuse === true);
    } catch (err) {
      throw new DecompressError(`zstd decompression failed: ${(err as Error).message}`, { cause: err });
    }
    if (attempt.ok) {
      const out = attempt.data;
      if ('exact' in bound && out.byteLength !== bound.exact) {
        throw new DecompressError(`zstd decompression produced ${out.byteLength} bytes, expected ${bound.exact}`);
      }
      return out;
    }
    if (size >= limit) {
      throw new DecompressError(
        'exact' in bound
          ? `zstd frame decompresses to more than the expected ${bound.exact} bytes`
          : `zstd frame decompresses to more than the limit of ${limit} bytes`,
      );
    }
    size = Math.min(limit, size * GROWTH);
  }
}
