/**
 * The blob-reading tests (loadBlobs, the cache, restore and its verification, a round trip)
 * once more, with every blob decrypted and verified on the threadpool
 * (native-fs gcmOpen/hmacSha256): the offload threshold forced to 0, where its default (64 KiB)
 * keeps these tests' small blobs on the main thread. Each test file runs in a module context of
 * its own, so the forced threshold applies to the tests imported here only.
 */
import { afterAll, expect } from 'vitest';
import { cryptoOffloadAvailable, cryptoOffloadStats, setCryptoOffloadThreshold } from '../../src/crypto/offload.js';

setCryptoOffloadThreshold(0);
if (process.env.CI === 'true' && process.platform !== 'win32' && !cryptoOffloadAvailable()) throw new Error('under CI the native crypto offload must be available');

await import('../repository/load-blobs.test.js');
await import('../cache/cache.test.js');
await import('../restore/verify.test.js');
await import('../restore/restore-safety.test.js');
await import('../restore/content-reader.test.js');
await import('../restore/batched-restore.test.js');
await import('../e2e-core/roundtrip.test.js');

afterAll(() => {
  // The imported tests did read blobs through the native calls (not the main-thread fallback).
  if (cryptoOffloadAvailable()) {
    const s = cryptoOffloadStats();
    expect(s.decrypts).toBeGreaterThan(0);
    expect(s.macs).toBeGreaterThan(0);
  }
});
