/**
 * Small messages' AES-256-GCM and HMAC-SHA-256 on this thread through `@kiwi-backup/native-fs`'s
 * synchronous calls (`gcmSealSync`, `gcmOpenSync`, `hmacSha256Sync`), when the addon has them: no
 * allocation per message and well under a microsecond of overhead, where Node's `createCipheriv`,
 * `createDecipheriv` and `createHmac` cost several µs each and allocate a buffer per `update`
 * (garbage that the allocator holds until the collector frees it, which inflated a prune's peak
 * RSS). Large blobs still go to the threadpool (`offload.ts`); this is what stays on the thread.
 * Without the calls (Windows, no compiler at install, an addon built before them, no usable
 * OpenSSL, or `KIWI_NATIVE_FS=off`) callers use Node's crypto: the same bytes, the same errors.
 */
import { nativeFs, type NativeFs } from '../native/native-fs.js';

export type NativeSyncCrypto = Required<Pick<NativeFs, 'gcmSealSync' | 'gcmOpenSync' | 'hmacSha256Sync'>>;

let native: NativeSyncCrypto | null | undefined;

/** @internal How many seals, opens and MACs the native calls did in this thread (tests). */
export const nativeSyncCounts = { seals: 0, opens: 0, macs: 0 };

/** The native calls, or null: take Node's crypto. */
export function syncCrypto(): NativeSyncCrypto | null {
  if (native === undefined) {
    const n = nativeFs();
    native =
      n && n.aeadAvailable === true && typeof n.gcmSealSync === 'function' && typeof n.gcmOpenSync === 'function' && typeof n.hmacSha256Sync === 'function'
        ? { gcmSealSync: n.gcmSealSync, gcmOpenSync: n.gcmOpenSync, hmacSha256Sync: n.hmacSha256Sync }
        : null;
  }
  return native;
}

/** @internal For tests: whether the native calls are there at all. */
export function nativeSyncCryptoAvailable(): boolean {
  return syncCrypto() !== null;
}

/** @internal For tests: a copy of {@link nativeSyncCounts}. */
export function nativeSyncCryptoStats(): { seals: number; opens: number; macs: number } {
  return { ...nativeSyncCounts };
}

/**
 * @internal For tests: null takes Node's crypto (as without the addon), an object stands in for the
 * addon's calls (e.g. one that fails), undefined goes back to the addon's when it has them.
 */
export function setNativeSyncCrypto(impl: NativeSyncCrypto | null | undefined): void {
  native = impl;
}
