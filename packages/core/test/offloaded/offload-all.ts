/**
 * For the test files of this folder: every blob decrypted and verified on the threadpool
 * (native-fs gcmOpen/hmacSha256), the offload threshold forced to 0 where its default (64 KiB) keeps
 * the imported tests' small blobs on the main thread. Each test file runs in a module context of its
 * own, so the forced threshold applies to the tests it imports only. Under CI the native calls must
 * be there; afterwards the imported tests must have gone through them (not the main-thread fallback).
 */
import { afterAll, expect } from 'vitest';
import { cryptoOffloadAvailable, cryptoOffloadStats, setCryptoOffloadThreshold } from '../../src/crypto/offload.js';

export function offloadEverything(): void {
  setCryptoOffloadThreshold(0);
  if (process.env.CI === 'true' && process.platform !== 'win32' && !cryptoOffloadAvailable()) throw new Error('under CI the native crypto offload must be available');
  afterAll(() => {
    if (!cryptoOffloadAvailable()) return;
    const s = cryptoOffloadStats();
    expect(s.decrypts).toBeGreaterThan(0);
    expect(s.macs).toBeGreaterThan(0);
  });
}
