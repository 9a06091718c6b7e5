/**
 * zstd compression of blobs and metadata files, on libuv's threadpool
 * (`@mongodb-js/zstd`), so several blobs can compress at once.
 */
import { createRequire } from 'node:module';

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
/** The magic number that starts every zstd frame (little endian 0xFD2FB528). */
const ZSTD_MAGIC = 0xfd2fb528;

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Compress `data` with zstd at `level`. */
export async function compress(data: Uint8Array, level = DEFAULT_COMPRESSION_LEVEL): Promise<Buffer> {
  if (!Number.isInteger(level) || level < -7 || level > 22) throw new RangeError(`zstd level must be an integer in -7..22, got ${level}`);
  try {
    return await zstd().compress(asBuffer(data), level);
  } catch (err) {
    throw new Error(`zstd compression failed: ${(err as Error).message}`, { cause: err });
  }
}

/** Inputs at least this large are first probed with a sample (see {@link compressIfSmaller}). */
export const SAMPLE_THRESHOLD = 256 * 1024;
const SAMPLE_SIZE = 64 * 1024;
/** A sample that does not shrink below this ratio marks the input as incompressible. */
const SAMPLE_RATIO = 0.98;

/**
 * Compress `data`, returning the compressed form only when it is smaller than the input;
 * `null` means "store it uncompressed". Inputs under 64 bytes are not compressed.
 * Inputs of {@link SAMPLE_THRESHOLD} bytes or more are probed first: a 64 KiB sample from
 * their middle is compressed at level 1, and when it does not shrink by at least 2 % the
 * input is taken as incompressible (already compressed or encrypted data) and not compressed
 * at all — this saves most of zstd's cost on such data.
 */
export async function compressIfSmaller(data: Uint8Array, level = DEFAULT_COMPRESSION_LEVEL): Promise<Buffer | null> {
  if (data.byteLength < 64) return null;
  if (data.byteLength >= SAMPLE_THRESHOLD) {
    const start = Math.floor((data.byteLength - SAMPLE_SIZE) / 2);
    const probe = await compress(data.subarray(start, start + SAMPLE_SIZE), 1);
    if (probe.byteLength >= SAMPLE_SIZE * SAMPLE_RATIO) return null;
  }
  const c = await compress(data, level);
  return c.byteLength < data.byteLength ? c : null;
}

/**
 * Decompress one zstd frame. When `expectedLength` is given, a different result length
 * is an error.
 */
export async function decompress(data: Uint8Array, expectedLength?: number): Promise<Buffer> {
  if (data.byteLength < 4 || asBuffer(data).readUInt32LE(0) !== ZSTD_MAGIC) throw new Error('zstd decompression failed: not a zstd frame');
  let out: Buffer;
  try {
    out = await zstd().decompress(asBuffer(data));
  } catch (err) {
    throw new Error(`zstd decompression failed: ${(err as Error).message}`, { cause: err });
  }
  if (expectedLength !== undefined && out.byteLength !== expectedLength) {
    throw new Error(`zstd decompression produced ${out.byteLength} bytes, expected ${expectedLength}`);
  }
  return out;
}
