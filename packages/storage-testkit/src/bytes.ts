import { createCipheriv, createHash } from 'node:crypto';

/**
 * `n` pseudo-random bytes that depend only on `seed`: the same call gives the
 * same bytes on every machine and run (AES-128-CTR keystream keyed by a hash of
 * the seed). Fast enough for tens of MiB; use it for test data whose every
 * byte you compare.
 */
export function deterministicBytes(n: number, seed: string | number = 0): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`deterministicBytes: n must be a non-negative integer, got ${n}`);
  const key = createHash('sha256').update(`kiwi-testkit:${String(seed)}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const out = cipher.update(Buffer.alloc(n));
  cipher.final();
  return out;
}

/** The lowercase hex SHA-256 of `data`: the file name Kiwi gives stored bytes. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
