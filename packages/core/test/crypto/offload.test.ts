/**
 * MasterKeys.decryptAsync and blobIdBytesAsync: the same results and errors as the synchronous
 * calls, on the threadpool (native-fs) from the offload threshold on, on this thread below it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { AuthenticationError, OVERHEAD, decrypt, decryptAsync, encrypt } from '../../src/crypto/aead.js';
import { MasterKeys } from '../../src/crypto/keys.js';
import { DEFAULT_OFFLOAD_MIN, cryptoOffloadAvailable, cryptoOffloadStats, setCryptoOffloadThreshold } from '../../src/crypto/offload.js';

const KiB = 1024;
/** Under CI (not Windows) the addon and its OpenSSL must be there; elsewhere the native cases are skipped. */
const native = cryptoOffloadAvailable();
const requireNative = process.env.CI === 'true' && process.platform !== 'win32' && process.env.KIWI_NATIVE_FS !== 'off';

afterEach(() => setCryptoOffloadThreshold(undefined));

describe('crypto offload', () => {
  it('is available under CI', () => {
    if (requireNative) expect(native).toBe(true);
    expect(DEFAULT_OFFLOAD_MIN).toBe(64 * KiB);
  });

  it.skipIf(!native)('decryptAsync goes to the threadpool from the threshold on, and stays on this thread below it', async () => {
    const keys = MasterKeys.generate();
    const small = keys.encrypt(randomBytes(DEFAULT_OFFLOAD_MIN - 1));
    const large = keys.encrypt(randomBytes(DEFAULT_OFFLOAD_MIN));
    let before = cryptoOffloadStats();
    expect((await keys.decryptAsync(small)).equals(keys.decrypt(small))).toBe(true);
    expect(cryptoOffloadStats().decrypts).toBe(before.decrypts);
    expect((await keys.decryptAsync(large)).equals(keys.decrypt(large))).toBe(true);
    expect(cryptoOffloadStats().decrypts).toBe(before.decrypts + 1);
    before = cryptoOffloadStats();
    const data = randomBytes(DEFAULT_OFFLOAD_MIN);
    expect((await keys.blobIdBytesAsync(data.subarray(1))).equals(keys.blobIdBytes(data.subarray(1)))).toBe(true);
    expect(cryptoOffloadStats().macs).toBe(before.macs);
    expect((await keys.blobIdBytesAsync(data)).equals(keys.blobIdBytes(data))).toBe(true);
    expect(cryptoOffloadStats().macs).toBe(before.macs + 1);
  });

  for (const threshold of [0, Infinity]) {
    const path = threshold === 0 ? 'threadpool' : 'this thread';
    describe.skipIf(threshold === 0 && !native)(`on ${path}`, () => {
      it('decrypts like decrypt for many sizes: into a new buffer, into `out`, and in place', async () => {
        setCryptoOffloadThreshold(threshold);
        const keys = MasterKeys.generate();
        for (const size of [0, 1, 16, 17, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 1024 * KiB + 3]) {
          const plain = randomBytes(size);
          const msg = keys.encrypt(plain);
          expect((await keys.decryptAsync(msg)).equals(plain), `size ${size}`).toBe(true);
          const out = Buffer.alloc(size + 10, 1);
          const view = await keys.decryptAsync(msg, out);
          expect(view.buffer).toBe(out.buffer);
          expect(view.byteLength).toBe(size);
          expect(view.equals(plain)).toBe(true);
          // `out` too short: a new buffer, `out` untouched.
          if (size > 0) {
            const short = Buffer.alloc(size - 1, 2);
            expect((await keys.decryptAsync(msg, short)).equals(plain)).toBe(true);
            expect(short.equals(Buffer.alloc(size - 1, 2))).toBe(true);
          }
          // In place, as the restore's reads do: the plaintext starts where the nonce was.
          const copy = Buffer.from(msg);
          const inPlace = await keys.decryptAsync(copy, copy);
          expect(inPlace.byteOffset).toBe(copy.byteOffset);
          expect(inPlace.equals(plain)).toBe(true);
        }
      });

      it('throws AuthenticationError for tampering, truncation and a wrong key, leaving the target zeroed', async () => {
        setCryptoOffloadThreshold(threshold);
        const keys = MasterKeys.generate();
        for (const size of [0, 100, 64 * KiB, 200 * KiB + 5]) {
          const plain = randomBytes(size);
          const msg = keys.encrypt(plain);
          const positions = [0, 11, msg.length - 16, msg.length - 1, ...(size > 0 ? [12, 12 + (size >> 1), 12 + size - 1] : [])];
          for (const pos of positions) {
            const t = Buffer.from(msg);
            t[pos]! ^= 0x10;
            const out = Buffer.alloc(size, 0x77);
            await expect(keys.decryptAsync(t, out), `size ${size}, byte ${pos}`).rejects.toBeInstanceOf(AuthenticationError);
            expect(out.equals(Buffer.alloc(size)), 'zeroed').toBe(true);
            await expect(keys.decryptAsync(t, t)).rejects.toBeInstanceOf(AuthenticationError);
            expect(t.subarray(0, size).equals(Buffer.alloc(size)), 'zeroed in place').toBe(true);
          }
          await expect(keys.decryptAsync(msg.subarray(0, msg.length - 1))).rejects.toBeInstanceOf(AuthenticationError);
          await expect(keys.decryptAsync(msg.subarray(0, OVERHEAD - 1))).rejects.toThrow(/message too short/);
          await expect(MasterKeys.generate().decryptAsync(msg)).rejects.toBeInstanceOf(AuthenticationError);
          await expect(decryptAsync(randomBytes(31), msg)).rejects.toThrow(TypeError);
          // The synchronous call agrees on each.
          expect(() => decrypt(keys.encKey, msg.subarray(0, msg.length - 1))).toThrow(AuthenticationError);
        }
      });

      it('computes blob ids like blobIdBytes, for many sizes and for views at an offset', async () => {
        setCryptoOffloadThreshold(threshold);
        const keys = MasterKeys.generate();
        for (const size of [0, 1, 64 * KiB - 1, 64 * KiB, 1024 * KiB + 3]) {
          const whole = randomBytes(size + 7);
          const data = whole.subarray(7);
          const id = await keys.blobIdBytesAsync(data);
          expect(id.byteLength).toBe(32);
          expect(id.equals(createHmac('sha256', keys.idKey).update(data).digest()), `size ${size}`).toBe(true);
          expect(id.equals(keys.blobIdBytes(data))).toBe(true);
        }
      });
    });
  }

  it.skipIf(!native)('uses the keys as they were when called (zeroing the keys meanwhile changes nothing)', async () => {
    setCryptoOffloadThreshold(0);
    const keys = MasterKeys.generate();
    const plain = randomBytes(512 * KiB);
    const msg = encrypt(keys.encKey, plain);
    const expectedId = keys.blobIdBytes(plain);
    const d = keys.decryptAsync(msg);
    const m = keys.blobIdBytesAsync(plain);
    keys.zero();
    expect((await d).equals(plain)).toBe(true);
    expect((await m).equals(expectedId)).toBe(true);
  });

  it.skipIf(!native)('runs many at once on the threadpool, good and forged, each with its own answer', async () => {
    setCryptoOffloadThreshold(0);
    const keys = MasterKeys.generate();
    const items = Array.from({ length: 48 }, (_, i) => {
      const plain = randomBytes((i % 7) * 50 * KiB + i);
      const msg = keys.encrypt(plain);
      const forged = i % 4 === 1;
      if (forged) msg[msg.length - 1 - (i % 30)]! ^= 1;
      return { plain, msg, forged };
    });
    const results = await Promise.allSettled(items.map((it, i) => (i % 2 ? keys.decryptAsync(it.msg, it.msg) : keys.decryptAsync(it.msg))));
    items.forEach((it, i) => {
      const r = results[i]!;
      if (it.forged) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(AuthenticationError);
      } else {
        expect(r.status).toBe('fulfilled');
        expect((r as PromiseFulfilledResult<Buffer>).value.equals(it.plain)).toBe(true);
      }
    });
  });

  it('refuses a negative threshold', () => {
    expect(() => setCryptoOffloadThreshold(-1)).toThrow(RangeError);
    expect(() => setCryptoOffloadThreshold(Number.NaN)).toThrow(RangeError);
  });
});
