/**
 * For the test files of this folder: every message through Node's crypto on this thread, the
 * fallback of native-sync.ts and offload.ts. {@link nativeOff}: Kiwi as with `KIWI_NATIVE_FS=off`
 * (as without the addon), for tests that need nothing else of it; {@link nodeCryptoOnly}: only the
 * addon's crypto switched off, for tests that also need its nanosecond times (a restore's
 * comparisons under CI). Each test file has a module context of its own, so this applies to the
 * tests it imports only; afterwards they must not have used the addon's crypto at all.
 */
import { afterAll, expect } from 'vitest';
import { cryptoOffloadAvailable, cryptoOffloadStats, setCryptoOffloadThreshold } from '../../src/crypto/offload.js';
import { nativeSyncCryptoAvailable, nativeSyncCryptoStats, setNativeSyncCrypto } from '../../src/crypto/native-sync.js';
import { nativeFs, nativeFsUnavailableReason } from '../../src/native/native-fs.js';

function noneUsed(): void {
  expect(nativeSyncCryptoStats()).toEqual({ seals: 0, opens: 0, macs: 0 });
  expect(cryptoOffloadStats()).toEqual({ decrypts: 0, macs: 0 });
}

/** `KIWI_NATIVE_FS=off`, set before anything in the file's context loads the addon (`nativeFs()` reads it once, at its first call), put back afterwards. */
export function nativeOff(): void {
  const before = process.env.KIWI_NATIVE_FS;
  process.env.KIWI_NATIVE_FS = 'off';
  expect(nativeFs()).toBeNull();
  expect(nativeFsUnavailableReason()).toMatch(/KIWI_NATIVE_FS=off/);
  afterAll(() => {
    if (before === undefined) delete process.env.KIWI_NATIVE_FS;
    else process.env.KIWI_NATIVE_FS = before;
    expect(nativeSyncCryptoAvailable()).toBe(false);
    expect(cryptoOffloadAvailable()).toBe(false);
    noneUsed();
  });
}

/** The addon's synchronous crypto off and nothing offloaded, on this thread (a backup's saver threads keep theirs); its other calls stay. */
export function nodeCryptoOnly(): void {
  setNativeSyncCrypto(null);
  setCryptoOffloadThreshold(Infinity);
  afterAll(noneUsed);
}
