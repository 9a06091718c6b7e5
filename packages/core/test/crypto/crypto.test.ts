import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { AuthenticationError, OVERHEAD, decrypt, encrypt, encryptInto } from '../../src/crypto/aead.js';
import { MasterKeys, createKeyFile, openKeyFile, parseKeyFile } from '../../src/crypto/keys.js';
import { compressIfSmaller, decompress } from '../../src/compression/zstd.js';

const key = randomBytes(32);

describe('AES-256-GCM messages', () => {
  it('round-trips with a fresh nonce each time and the nonce ‖ ciphertext ‖ tag layout', () => {
    const plain = randomBytes(200_000);
    const a = encrypt(key, plain);
    const b = encrypt(key, plain);
    expect(a.length).toBe(plain.length + OVERHEAD);
    expect(a.subarray(0, 12).equals(b.subarray(0, 12))).toBe(false);
    expect(decrypt(key, a).equals(plain)).toBe(true);
    const out = Buffer.alloc(300_000);
    const view = decrypt(key, b, out);
    expect(view.buffer).toBe(out.buffer);
    expect(view.equals(plain)).toBe(true);
  });

  it('never repeats a nonce across many messages (the pool is refilled, each nonce handed out once)', () => {
    const seen = new Set<string>();
    const plain = Buffer.from('x');
    for (let i = 0; i < 2000; i++) {
      const m = encrypt(key, plain);
      const nonce = m.subarray(0, 12);
      expect(nonce.equals(Buffer.alloc(12))).toBe(false);
      seen.add(nonce.toString('hex'));
      expect(decrypt(key, m).equals(plain)).toBe(true);
    }
    expect(seen.size).toBe(2000);
  });

  it('encrypts into a buffer at an offset', () => {
    const buf = Buffer.alloc(100);
    const n = encryptInto(key, Buffer.from('hello'), buf, 10);
    expect(n).toBe(5 + OVERHEAD);
    expect(decrypt(key, buf.subarray(10, 10 + n)).toString()).toBe('hello');
    expect(() => encryptInto(key, Buffer.alloc(90), buf, 0)).toThrow(RangeError);
  });

  it('rejects tampering, truncation and a wrong key', () => {
    const m = encrypt(key, Buffer.from('attack at dawn'));
    for (const i of [0, 12, m.length - 1]) {
      const t = Buffer.from(m);
      t[i]! ^= 1;
      expect(() => decrypt(key, t)).toThrow(AuthenticationError);
    }
    expect(() => decrypt(key, m.subarray(0, m.length - 1))).toThrow(AuthenticationError);
    expect(() => decrypt(key, m.subarray(0, 10))).toThrow(AuthenticationError);
    expect(() => decrypt(randomBytes(32), m)).toThrow(AuthenticationError);
  });
});

describe('key files', () => {
  const kdf = { N: 1024, r: 8, p: 1 };
  it('wraps the master keys with a password and opens them again', async () => {
    const master = MasterKeys.generate();
    const { id, bytes, file } = await createKeyFile(master, 'pw', { kdf, hostname: 'h', username: 'u' });
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const parsed = parseKeyFile(bytes, 'keys/x');
    expect(parsed).toEqual(file);
    const opened = await openKeyFile(parsed, 'pw');
    expect(opened!.encKey.equals(master.encKey)).toBe(true);
    expect(opened!.idKey.equals(master.idKey)).toBe(true);
    expect(await openKeyFile(parsed, 'PW')).toBeNull();
    expect(bytes.toString()).not.toContain(master.encKey.toString('base64'));
    opened!.zero();
    expect(opened!.encKey.every((b) => b === 0)).toBe(true);
  });

  it('names what is wrong with a malformed key file', () => {
    expect(() => parseKeyFile(Buffer.from('{'), 'keys/abc')).toThrow(/keys\/abc: not valid JSON/);
    expect(() => parseKeyFile(Buffer.from('{"version":1,"kdf":"argon9"}'), 'keys/abc')).toThrow(/unsupported kdf/);
    expect(() => parseKeyFile(Buffer.from('{"version":1,"kdf":"scrypt","N":1000,"r":8,"p":1,"salt":"","data":""}'), 'keys/abc')).toThrow(/power of two/);
  });

  it('computes keyed blob ids', () => {
    const a = MasterKeys.generate();
    const b = MasterKeys.generate();
    const d = Buffer.from('same content');
    expect(a.blobId(d)).toMatch(/^[0-9a-f]{64}$/);
    expect(a.blobId(d)).toBe(a.blobId(Buffer.from(d)));
    expect(a.blobId(d)).not.toBe(b.blobId(d));
  });
});

describe('zstd', () => {
  it('keeps the compressed form only when smaller', async () => {
    const text = Buffer.from('abc'.repeat(10000));
    const c = await compressIfSmaller(text);
    expect(c!.length).toBeLessThan(text.length);
    expect((await decompress(c!, text.length)).equals(text)).toBe(true);
    expect(await compressIfSmaller(randomBytes(10000))).toBeNull();
    expect(await compressIfSmaller(Buffer.from('tiny'))).toBeNull();
    await expect(decompress(c!, text.length + 1)).rejects.toThrow(/expected/);
    await expect(decompress(Buffer.from('not zstd at all'), { max: 100 })).rejects.toThrow(/not a zstd frame/);
  });

  it('honours the level', async () => {
    const text = Buffer.from(Array.from({ length: 20000 }, (_, i) => `line ${i % 977} of ${(i * 31) % 101}\n`).join(''));
    const fast = await compressIfSmaller(text, 1);
    const strong = await compressIfSmaller(text, 9);
    expect(strong!.length).toBeLessThan(fast!.length);
  });
});
