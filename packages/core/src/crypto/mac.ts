/**
 * HMAC-SHA-256 with a 32-byte key (blob ids): the addon's synchronous call when it is there
 * (`native-sync.ts`: a kept context, no allocation but the result's 32 bytes), else Node's
 * `createHmac`. The same bytes either way.
 */
import { createHmac } from 'node:crypto';
import { nativeSyncCounts, syncCrypto } from './native-sync.js';

/** HMAC-SHA-256(key, data) into a new 32-byte buffer. `key` must be 32 bytes. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Buffer {
  const native = syncCrypto();
  if (native !== null && key.byteLength === 32) {
    const out = Buffer.allocUnsafe(32);
    native.hmacSha256Sync(key, data, out);
    nativeSyncCounts.macs++;
    return out;
  }
  return createHmac('sha256', key).update(data).digest();
}
