/**
 * Authenticated encryption of every encrypted repository file and blob:
 * AES-256-GCM, laid out as `nonce(12) ‖ ciphertext ‖ tag(16)`, with a fresh random
 * nonce for each message. No associated data. Through native-fs's synchronous calls when the addon
 * has them (`native-sync.ts`), else Node's crypto; large blobs' decryption through the threadpool
 * (`offload.ts`).
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { offloadFor } from './offload.js';
import { nativeSyncCounts, syncCrypto } from './native-sync.js';

export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
/** Bytes added by {@link encrypt}: nonce + tag. */
export const OVERHEAD = NONCE_SIZE + TAG_SIZE;
export const KEY_SIZE = 32;

const CIPHER = 'aes-256-gcm';
/**
 * Without the addon's synchronous calls (`native-sync.ts`, which write straight into the output and
 * allocate nothing), messages are en- and decrypted with Node's crypto in slices of this size, each
 * copied into the output, because Node's cipher `update` allocates a new buffer for every call. At
 * 64 KiB those buffers stay below the allocator's mmap threshold and are reused once collected (and
 * a slice is still in the CPU's cache when it is copied); at 256 KiB a restore over S3 took ~70,000
 * page faults in them and was ~0.15 s slower.
 */
const SLICE = 64 * 1024;

/** Thrown when a message fails authentication (wrong key, tampered or truncated bytes). */
export class AuthenticationError extends Error {
  constructor(message = 'message authentication failed') {
    super(message);
    this.name = 'AuthenticationError';
  }
}

/**
 * Random bytes for nonces, drawn from the CSPRNG in bulk: one `randomFillSync` per
 * {@link NONCES_PER_FILL} messages instead of one per message (a call costs a few µs, which added up
 * to ~0.5 s per saver thread on a backup of 100,000 small files). Every byte is handed out once and
 * never reused; each thread (the saver workers) has its own pool.
 */
const NONCES_PER_FILL = 256;
const noncePool = Buffer.allocUnsafe(NONCE_SIZE * NONCES_PER_FILL);
let noncePos = noncePool.length;

/** The nonce handed to the native seal, which copies it into the message. */
const nonceScratch = Buffer.alloc(NONCE_SIZE);

/** Writes a fresh random nonce into `dst` at `at` (NONCE_SIZE bytes), allocating nothing. */
function fillNonce(dst: Uint8Array, at: number): void {
  if (noncePos === noncePool.length) {
    randomFillSync(noncePool);
    noncePos = 0;
  }
  for (let i = 0; i < NONCE_SIZE; i++) {
    dst[at + i] = noncePool[noncePos + i]!;
    // Wipe what was handed out, so that the pool never holds a nonce already in use.
    noncePool[noncePos + i] = 0;
  }
  noncePos += NONCE_SIZE;
}

function checkKey(key: Uint8Array): void {
  if (key.byteLength !== KEY_SIZE) throw new TypeError(`encryption key must be ${KEY_SIZE} bytes`);
}

/**
 * Encrypt `plaintext` into `out` at `offset` (needs `plaintext.length + OVERHEAD` bytes).
 * Returns the number of bytes written. With the addon's synchronous seal (`native-sync.ts`) this
 * allocates nothing, and `plaintext` may even lie in `out` (e.g. at `offset + NONCE_SIZE`, then
 * encrypted in place); with Node's crypto the two must not overlap.
 */
export function encryptInto(key: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): number {
  checkKey(key);
  const total = plaintext.byteLength + OVERHEAD;
  if (!Number.isInteger(offset) || offset < 0 || offset + total > out.byteLength) {
    throw new RangeError(`encryptInto: ${total} bytes do not fit at offset ${offset} of a ${out.byteLength}-byte buffer`);
  }
  const native = syncCrypto();
  if (native !== null) {
    fillNonce(nonceScratch, 0);
    const written = native.gcmSealSync(key, nonceScratch, plaintext, out, offset);
    nativeSyncCounts.seals++;
    return written;
  }
  fillNonce(out, offset);
  const nonce = out.subarray(offset, offset + NONCE_SIZE);
  const cipher = createCipheriv(CIPHER, key, nonce);
  let pos = offset + NONCE_SIZE;
  for (let i = 0; i < plaintext.byteLength; i += SLICE) {
    const part = cipher.update(plaintext.subarray(i, Math.min(i + SLICE, plaintext.byteLength)));
    out.set(part, pos);
    pos += part.byteLength;
  }
  const fin = cipher.final();
  out.set(fin, pos);
  pos += fin.byteLength;
  out.set(cipher.getAuthTag(), pos);
  pos += TAG_SIZE;
  return pos - offset;
}

/** Encrypt into a new buffer: `nonce ‖ ciphertext ‖ tag`. */
export function encrypt(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(plaintext.byteLength + OVERHEAD);
  encryptInto(key, plaintext, out, 0);
  return out;
}

/**
 * Decrypt and authenticate `message` (`nonce ‖ ciphertext ‖ tag`). The plaintext is written
 * into `out` when given and large enough (the result is then a view of it), else into a new buffer;
 * `out` may be `message` itself (the plaintext then starts where the nonce was).
 * Throws {@link AuthenticationError} if the message is not authentic (the target's plaintext bytes
 * are then zeroed); any other error is a failure of the decryption itself.
 */
export function decrypt(key: Uint8Array, message: Uint8Array, out?: Uint8Array): Buffer {
  checkKey(key);
  if (message.byteLength < OVERHEAD) throw new AuthenticationError(`message too short (${message.byteLength} bytes)`);
  const len = message.byteLength - OVERHEAD;
  const target = targetFor(len, out);
  const native = syncCrypto();
  if (native !== null) {
    // False only for a failed tag (the target zeroed); a failure of the call itself throws its own error.
    const authentic = native.gcmOpenSync(key, message, target);
    nativeSyncCounts.opens++;
    if (!authentic) throw new AuthenticationError();
    return target;
  }
  const nonce = message.subarray(0, NONCE_SIZE);
  const tag = message.subarray(message.byteLength - TAG_SIZE);
  const decipher = createDecipheriv(CIPHER, key, nonce);
  decipher.setAuthTag(tag);
  let pos = 0;
  const end = NONCE_SIZE + len;
  for (let i = NONCE_SIZE; i < end; i += SLICE) {
    const part = decipher.update(message.subarray(i, Math.min(i + SLICE, end)));
    target.set(part, pos);
    pos += part.byteLength;
  }
  try {
    const fin = decipher.final();
    target.set(fin, pos);
  } catch {
    target.fill(0);
    throw new AuthenticationError();
  }
  return target;
}

function targetFor(len: number, out: Uint8Array | undefined): Buffer {
  return out && out.byteLength >= len ? Buffer.from(out.buffer, out.byteOffset, len) : Buffer.allocUnsafe(len);
}

/**
 * {@link decrypt}, with the same results and errors, on libuv's threadpool when the message is
 * large (see `offload.ts`), else on this thread. `out` may be `message` itself (the plaintext then
 * starts where the nonce was), or lie anywhere that starts at or before the ciphertext. `message`
 * and `out` must not be changed or reused by anyone until the promise settles. On an
 * {@link AuthenticationError} the plaintext bytes of the target are zeroed, as with {@link decrypt}.
 */
export async function decryptAsync(key: Uint8Array, message: Uint8Array, out?: Uint8Array): Promise<Buffer> {
  const native = message.byteLength >= OVERHEAD ? offloadFor(message.byteLength - OVERHEAD, 'decrypt') : null;
  if (!native) return decrypt(key, message, out);
  checkKey(key);
  const target = targetFor(message.byteLength - OVERHEAD, out);
  if ((await native.gcmOpen(key, message, target)) !== true) throw new AuthenticationError();
  return target;
}
