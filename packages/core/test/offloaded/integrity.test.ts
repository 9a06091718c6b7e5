/**
 * The integrity and tamper tests (damaged packs and trees, repair, check, prune) once more,
 * with every blob decrypted and verified on the threadpool
 * (native-fs gcmOpen/hmacSha256): the offload threshold forced to 0, where its default (64 KiB)
 * keeps these tests' small blobs on the main thread. Each test file runs in a module context of
 * its own, so the forced threshold applies to the tests imported here only.
 */
import { afterAll, expect } from 'vitest';
import { cryptoOffloadAvailable, cryptoOffloadStats, setCryptoOffloadThreshold } from '../../src/crypto/offload.js';

setCryptoOffloadThreshold(0);
if (process.env.CI === 'true' && process.platform !== 'win32' && !cryptoOffloadAvailable()) throw new Error('under CI the native crypto offload must be available');

await import('../integrity/damaged-repository.test.js');
await import('../integrity/repair.test.js');
await import('../maintenance/check-subset.test.js');
await import('../maintenance/prune.test.js');

afterAll(() => {
  // The imported tests did read blobs through the native calls (not the main-thread fallback).
  if (cryptoOffloadAvailable()) {
    const s = cryptoOffloadStats();
    expect(s.decrypts).toBeGreaterThan(0);
    expect(s.macs).toBeGreaterThan(0);
  }
});
