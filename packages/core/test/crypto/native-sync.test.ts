/**
 * Small messages' AES-256-GCM and blob ids' HMAC on this thread through native-fs's synchronous
 * calls (native-sync.ts): taken when the addon has them (counted), the same bytes as Node's crypto
 * both ways, the same errors (only a failed tag is an AuthenticationError), and Node's crypto when
 * they are switched off. Run again with KIWI_NATIVE_FS=off by test/native-off/.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCipheriv, createDecipheriv, createHmac, randomBytes, randomInt } from 'node:crypto';
import { AuthenticationError, OVERHEAD, decrypt, decryptAsync, encrypt, encryptInto } from '../../src/crypto/aead.js';
import { MasterKeys } from '../../src/crypto/keys.js';
import { hmacSha256 } from '../../src/crypto/mac.js';
import { nativeSyncCryptoAvailable, nativeSyncCryptoStats, setNativeSyncCrypto, syncCrypto, type NativeSyncCrypto } from '../../src/crypto/native-sync.js';
import { IntegrityError } from '../../src/repository/errors.js';
import { Repository } from '../../src/repository/repository.js';
import { FAST_KDF, MapStorage, newRepo, quietLogger, random } from '../repository/helpers.js';

const KiB = 1024;
const native = nativeSyncCryptoAvailable();
/** Under CI (not Windows, not KIWI_NATIVE_FS=off) the addon's calls must be there; elsewhere the native cases are skipped. */
const requireNative = process.env.CI === 'true' && process.platform !== 'win32' && process.env.KIWI_NATIVE_FS !== 'off';

afterEach(() => setNativeSyncCrypto(undefined));

/** Node's verdict on a message: its plaintext, or undefined when it does not authenticate. */
function nodeOpen(key: Uint8Array, msg: Uint8Array): Buffer | undefined {
  const d = createDecipheriv('aes-256-gcm', key, msg.subarray(0, 12));
  d.setAuthTag(msg.subarray(msg.length - 16));
  const out = d.update(msg.subarray(12, msg.length - 16));
  try {
    return Buffer.concat([out, d.final()]);
  } catch {
    return undefined;
  }
}

function nodeSeal(key: Uint8Array, plain: Uint8Array): Buffer {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  return Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()]);
}

const randomSize = (i: number) => (i % 3 === 0 ? randomInt(100) : randomInt(200 * KiB + 1));

describe('native synchronous crypto', () => {
  it('is there under CI', () => {
    if (requireNative) expect(native).toBe(true);
    if (process.env.KIWI_NATIVE_FS === 'off') expect(native).toBe(false);
  });

  it.skipIf(!native)('is what encryptInto, encrypt, decrypt, small decryptAsync and blob ids take (counted)', async () => {
    const keys = MasterKeys.generate();
    const plain = randomBytes(1000);
    let before = nativeSyncCryptoStats();
    const msg = keys.encrypt(plain);
    const out = Buffer.alloc(2000);
    encryptInto(keys.encKey, plain, out, 7);
    expect(nativeSyncCryptoStats().seals).toBe(before.seals + 2);
    expect(nodeOpen(keys.encKey, msg)!.equals(plain)).toBe(true);
    expect(nodeOpen(keys.encKey, out.subarray(7, 7 + 1000 + OVERHEAD))!.equals(plain)).toBe(true);
    before = nativeSyncCryptoStats();
    expect(keys.decrypt(msg).equals(plain)).toBe(true);
    expect((await keys.decryptAsync(msg)).equals(plain)).toBe(true);
    expect(nativeSyncCryptoStats().opens).toBe(before.opens + 2);
    before = nativeSyncCryptoStats();
    const id = keys.blobIdBytes(plain);
    expect(keys.blobId(plain)).toBe(id.toString('hex'));
    expect((await keys.blobIdBytesAsync(plain)).equals(id)).toBe(true);
    expect(id.equals(createHmac('sha256', keys.idKey).update(plain).digest())).toBe(true);
    expect(nativeSyncCryptoStats().macs).toBe(before.macs + 3);
  });

  it('with the native calls off, takes Node\'s crypto (nothing counted) and reads and writes the same messages', () => {
    const withNative = syncCrypto();
    for (let i = 0; i < 100; i++) {
      const key = randomBytes(32);
      const plain = randomBytes(randomSize(i));
      setNativeSyncCrypto(null);
      const before = nativeSyncCryptoStats();
      const viaNode = encrypt(key, plain);
      const macNode = hmacSha256(key, plain);
      setNativeSyncCrypto(withNative ?? null);
      const viaNative = encrypt(key, plain);
      expect(decrypt(key, viaNode).equals(plain), `size ${plain.length}`).toBe(true);
      expect(hmacSha256(key, plain).equals(macNode)).toBe(true);
      setNativeSyncCrypto(null);
      expect(decrypt(key, viaNative).equals(plain), `size ${plain.length}`).toBe(true);
      expect(nodeOpen(key, viaNative)!.equals(plain)).toBe(true);
      expect(decrypt(key, nodeSeal(key, plain)).equals(plain)).toBe(true);
      expect(macNode.equals(createHmac('sha256', key).update(plain).digest())).toBe(true);
      const after = nativeSyncCryptoStats();
      expect(after.seals + after.opens + after.macs).toBe(before.seals + before.opens + before.macs + (withNative ? 3 : 0));
    }
  });

  for (const mode of ['native', 'node'] as const) {
    describe.skipIf(mode === 'native' && !native)(`through ${mode === 'native' ? 'the native calls' : 'Node\'s crypto'}`, () => {
      const use = () => {
        if (mode === 'node') setNativeSyncCrypto(null);
      };

      it('decrypts into a new buffer, into `out` (a view of it), past a short `out`, and in place', () => {
        use();
        const key = randomBytes(32);
        for (let i = 0; i < 60; i++) {
          const plain = randomBytes(randomSize(i));
          const msg = encrypt(key, plain);
          expect(decrypt(key, msg).equals(plain)).toBe(true);
          const out = Buffer.alloc(plain.length + 3, 1);
          const view = decrypt(key, msg, out);
          expect(view.buffer).toBe(out.buffer);
          expect(view.byteOffset).toBe(out.byteOffset);
          expect(view.equals(plain)).toBe(true);
          expect(out.subarray(plain.length).equals(Buffer.alloc(3, 1))).toBe(true);
          if (plain.length > 0) {
            const short = Buffer.alloc(plain.length - 1, 2);
            expect(decrypt(key, msg, short).equals(plain)).toBe(true);
            expect(short.equals(Buffer.alloc(plain.length - 1, 2))).toBe(true);
          }
          const copy = Buffer.from(msg);
          const inPlace = decrypt(key, copy, copy);
          expect(inPlace.byteOffset).toBe(copy.byteOffset);
          expect(inPlace.equals(plain)).toBe(true);
        }
      });

      it('only a failed tag is an AuthenticationError (target zeroed); a short message too; a bad key a TypeError; no room a RangeError', async () => {
        use();
        const key = randomBytes(32);
        for (const size of [0, 1, 100, 4 * KiB, 64 * KiB - 1]) {
          const plain = randomBytes(size);
          const msg = encrypt(key, plain);
          const positions = [0, 11, msg.length - 16, msg.length - 1, ...(size > 0 ? [12, 12 + (size >> 1), 12 + size - 1] : [])];
          for (const pos of positions) {
            const t = Buffer.from(msg);
            t[pos]! ^= 1 << randomInt(8);
            const out = Buffer.alloc(size, 0x77);
            expect(() => decrypt(key, t, out), `size ${size}, byte ${pos}`).toThrow(AuthenticationError);
            expect(out.equals(Buffer.alloc(size)), 'zeroed').toBe(true);
            // The in-place attempt zeroes the plaintext's place, which starts at the nonce: when the
            // flipped byte is there and was 0, `t` would be the authentic message again.
            const tampered = Buffer.from(t);
            expect(() => decrypt(key, t, t)).toThrow(AuthenticationError);
            expect(t.subarray(0, size).equals(Buffer.alloc(size)), 'zeroed in place').toBe(true);
            await expect(decryptAsync(key, tampered)).rejects.toBeInstanceOf(AuthenticationError);
          }
          expect(() => decrypt(key, msg.subarray(0, msg.length - 1))).toThrow(AuthenticationError);
          expect(() => decrypt(randomBytes(32), msg)).toThrow(AuthenticationError);
          expect(() => decrypt(key.subarray(1), msg)).toThrow(TypeError);
        }
        for (const len of [0, 1, 27]) expect(() => decrypt(key, Buffer.alloc(len))).toThrow(/message too short/);
        expect(() => decrypt(key, Buffer.alloc(27))).toThrow(AuthenticationError);
        const buf = Buffer.alloc(50, 3);
        expect(() => encryptInto(key, Buffer.alloc(23), buf, 0)).toThrow(RangeError);
        expect(() => encryptInto(key, Buffer.alloc(10), buf, 13)).toThrow(RangeError);
        expect(() => encryptInto(key, Buffer.alloc(10), buf, -1)).toThrow(RangeError);
        expect(() => encryptInto(key, Buffer.alloc(10), buf, 1.5)).toThrow(RangeError);
        expect(() => encryptInto(key.subarray(0, 16), Buffer.alloc(10), buf, 0)).toThrow(TypeError);
        expect(buf.equals(Buffer.alloc(50, 3))).toBe(true);
        expect(encryptInto(key, Buffer.alloc(10), buf, 12)).toBe(38);
      });

      it('never repeats a nonce (the pool refilled across messages)', () => {
        use();
        const key = randomBytes(32);
        const seen = new Set<string>();
        const out = Buffer.alloc(40);
        for (let i = 0; i < 1000; i++) {
          encryptInto(key, Buffer.from([i & 0xff]), out, 11);
          const nonce = out.subarray(11, 23).toString('hex');
          expect(nonce).not.toBe('0'.repeat(24));
          seen.add(nonce);
        }
        expect(seen.size).toBe(1000);
      });
    });
  }

  it.skipIf(!native)('encryptInto takes a plaintext already in `out` (where its ciphertext goes, or elsewhere in it)', () => {
    const key = randomBytes(32);
    for (const size of [1, 100, 5000]) {
      const plain = randomBytes(size);
      for (const at of [12, 0, 30, 12 + size]) {
        const out = Buffer.alloc(2 * size + 100);
        plain.copy(out, at);
        const n = encryptInto(key, out.subarray(at, at + size), out, 0);
        expect(nodeOpen(key, out.subarray(0, n))!.equals(plain), `size ${size}, plaintext at ${at}`).toBe(true);
      }
    }
  });

  it('a failure of the native call itself is its own error, not an AuthenticationError, and a blob read says so without marking the pack damaged', async () => {
    const failing: NativeSyncCrypto = {
      gcmSealSync: () => {
        throw new Error("native-fs: gcmSealSync: OpenSSL's EVP_EncryptUpdate failed");
      },
      gcmOpenSync: () => {
        throw new Error("native-fs: gcmOpenSync: OpenSSL's EVP_DecryptUpdate failed");
      },
      hmacSha256Sync: () => {
        throw new Error("native-fs: hmacSha256Sync: OpenSSL's HMAC failed");
      },
    };
    const key = randomBytes(32);
    const msg = encrypt(key, randomBytes(100));
    setNativeSyncCrypto(failing);
    const err = (() => {
      try {
        decrypt(key, msg);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(AuthenticationError);
    expect(err!.message).toMatch(/EVP_DecryptUpdate failed/);
    expect(() => encrypt(key, Buffer.from('x'))).toThrow(/EVP_EncryptUpdate failed/);
    setNativeSyncCrypto(undefined);

    // A repository read of a small data blob (decrypted on this thread): an error naming the blob, not damage.
    const storage = new MapStorage();
    const { repo: writer } = await newRepo({}, storage);
    const blob = random(3000);
    const { id } = await writer.saveBlob('data', blob);
    await writer.flush();
    await writer.close();
    const repo = await Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
    await repo.loadIndex();
    const open = failing.gcmOpenSync;
    setNativeSyncCrypto({ ...(syncCrypto() ?? failing), gcmOpenSync: open });
    const readErr = await repo.loadBlob('data', id).then(() => undefined, (e: unknown) => e as Error);
    expect(readErr).toBeInstanceOf(Error);
    expect(readErr).not.toBeInstanceOf(IntegrityError);
    expect(readErr!.message).toContain(id);
    expect(readErr!.message).toMatch(/decryption failed: native-fs: gcmOpenSync: OpenSSL's EVP_DecryptUpdate failed/);
    setNativeSyncCrypto(undefined);
    expect((await repo.loadBlob('data', id)).equals(blob)).toBe(true);
    await repo.close();
  });
});
