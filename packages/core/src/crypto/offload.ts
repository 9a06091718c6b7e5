/**
 * Large blobs' AES-256-GCM decryption and HMAC-SHA-256 off the main thread: through
 * `@kiwi-backup/native-fs`'s `gcmOpen` and `hmacSha256`, each a job on libuv's threadpool, when the
 * addon has them (it found a working OpenSSL in the process). A restore, a prune or a check read
 * blobs of up to a few MiB; decrypting and hashing them on the main thread kept it busy all the
 * time (and Node's `decipher.update` allocates a buffer per slice, which the collector then frees).
 * Inputs below {@link DEFAULT_OFFLOAD_MIN} stay on the main thread (a threadpool hop costs more
 * than it saves there), and so does everything without the addon (`KIWI_NATIVE_FS=off` too).
 */
import { nativeFs, type NativeFs } from '../native/native-fs.js';

/** Inputs of at least this many bytes are offloaded by default. */
export const DEFAULT_OFFLOAD_MIN = 64 * 1024;

export type NativeCrypto = Required<Pick<NativeFs, 'gcmOpen' | 'hmacSha256'>>;

let min: number | undefined;
let native: NativeCrypto | null | undefined;
const stats = { decrypts: 0, macs: 0 };

/**
 * `KIWI_CRYPTO_OFFLOAD_MIN` (bytes, a non-negative integer), read once: for tests and measurements
 * only (0 sends every blob to the threadpool, a huge value none). Anything else: the default.
 */
function threshold(): number {
  if (min === undefined) {
    const env = process.env.KIWI_CRYPTO_OFFLOAD_MIN;
    min = env !== undefined && /^\d+$/.test(env.trim()) ? Number(env.trim()) : DEFAULT_OFFLOAD_MIN;
  }
  return min;
}

/**
 * @internal For tests: the size from which inputs are offloaded (0: all of them, Infinity: none);
 * undefined goes back to the default (or `KIWI_CRYPTO_OFFLOAD_MIN`).
 */
export function setCryptoOffloadThreshold(bytes: number | undefined): void {
  if (bytes !== undefined && !(bytes >= 0)) throw new RangeError(`offload threshold must be >= 0, got ${bytes}`);
  min = bytes;
}

/** @internal For tests: how many decryptions and MACs went to the threadpool in this process. */
export function cryptoOffloadStats(): { decrypts: number; macs: number } {
  return { ...stats };
}

function load(): NativeCrypto | null {
  if (native === undefined) {
    const n = nativeFs();
    native = n && n.aeadAvailable === true && typeof n.gcmOpen === 'function' && typeof n.hmacSha256 === 'function' ? (n as NativeCrypto) : null;
  }
  return native;
}

/** Whether the native calls are there at all (tests). */
export function cryptoOffloadAvailable(): boolean {
  return load() !== null;
}

/** The native calls for an input of `bytes`, or null: take the main-thread path. */
export function offloadFor(bytes: number, kind: 'decrypt' | 'mac'): NativeCrypto | null {
  if (bytes < threshold()) return null;
  const n = load();
  if (n) stats[kind === 'decrypt' ? 'decrypts' : 'macs']++;
  return n;
}
