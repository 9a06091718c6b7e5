import { describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { nfs as n, skipNative } from './load.js';
import { NONCE, TAG, nodeOpen, nodeSeal as seal } from './node-gcm.js';

const KiB = 1024;
const MiB = 1024 * 1024;

/** Outside CI a build without OpenSSL found skips these (with the reason); under CI=true they must run. */
const skip = skipNative || (n?.aeadAvailable !== true && process.env.CI !== 'true');
if (n && !n.aeadAvailable && skip && !skipNative) console.warn(`\n*** native-fs: gcmOpen/hmacSha256 unavailable (${n.aeadUnavailableReason}); tests skipped. ***\n`);

const gcmOpen = (key: Uint8Array, src: Uint8Array, dst: Uint8Array) => n!.gcmOpen!(key, src, dst);
const hmac = (key: Uint8Array, data: Uint8Array, out: Uint8Array) => n!.hmacSha256!(key, data, out);



/** Plaintext with a recognisable pattern (so that a shifted or stale byte shows). */
function pattern(len: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const SIZES = [0, 1, 15, 16, 17, 32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 100_003, MiB - 1, MiB, MiB + 3, 8 * MiB];

describe.skipIf(skip)('@kiwi-backup/native-fs: gcmOpen', () => {
  it('is available (under CI the process must have a usable OpenSSL)', () => {
    expect(n!.aeadUnavailableReason).toBeUndefined();
    expect(n!.aeadAvailable).toBe(true);
    expect(typeof n!.gcmOpen).toBe('function');
    expect(typeof n!.hmacSha256).toBe('function');
  });

  it('decrypts what Node encrypted, for many sizes, into a separate buffer (bytes past the plaintext untouched)', async () => {
    const key = randomBytes(32);
    for (const size of SIZES) {
      const plain = pattern(size, size + 7);
      const msg = seal(key, plain);
      const dst = Buffer.alloc(size + 5, 0xa5);
      expect(await gcmOpen(key, msg, dst), `size ${size}`).toBe(true);
      expect(dst.subarray(0, size).equals(plain), `size ${size}`).toBe(true);
      expect(dst.subarray(size).equals(Buffer.alloc(5, 0xa5))).toBe(true);
      expect(msg.equals(seal(key, plain, msg.subarray(0, NONCE))), 'src unchanged').toBe(true);
    }
  });

  it('decrypts in place: dst the same object, the same memory through another view, the ciphertext start, or in between', async () => {
    const key = randomBytes(32);
    for (const size of SIZES) {
      const plain = pattern(size, size + 11);
      for (const at of ['same', 'view', 0, 1, 5, 11, 12] as const) {
        const msg = seal(key, plain);
        let dst: Uint8Array;
        if (at === 'same') dst = msg;
        else if (at === 'view') dst = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
        else dst = msg.subarray(at);
        expect(await gcmOpen(key, msg, dst), `size ${size} at ${at}`).toBe(true);
        expect(Buffer.from(dst.buffer, dst.byteOffset, size).equals(plain), `size ${size} at ${at}`).toBe(true);
      }
    }
  });

  it('decrypts into memory that starts before src and overlaps it, and into memory just after src', async () => {
    const key = randomBytes(32);
    for (const size of [1, 17, 64 * KiB + 1, MiB + 3]) {
      const plain = pattern(size, 3);
      const msg = seal(key, plain);
      for (const before of [1, 7, 12, 40]) {
        const whole = Buffer.alloc(before + msg.length);
        msg.copy(whole, before);
        const src = whole.subarray(before);
        expect(await gcmOpen(key, src, whole), `size ${size} before ${before}`).toBe(true);
        expect(whole.subarray(0, size).equals(plain)).toBe(true);
      }
      const whole = Buffer.alloc(msg.length + size);
      msg.copy(whole);
      expect(await gcmOpen(key, whole.subarray(0, msg.length), whole.subarray(msg.length))).toBe(true);
      expect(whole.subarray(msg.length).equals(plain)).toBe(true);
      expect(whole.subarray(0, msg.length).equals(msg)).toBe(true);
    }
  });

  it('refuses dst overlapping src but starting after the ciphertext start (TypeError, nothing written)', async () => {
    const key = randomBytes(32);
    const msg = seal(key, pattern(1000));
    const copy = Buffer.from(msg);
    for (const at of [13, 20, 28, 500, msg.length - 1]) {
      // From offset 13 to 28 dst is long enough and refused for the overlap; further on it is also too short.
      const dst = msg.subarray(at);
      const err = await gcmOpen(key, msg, dst).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TypeError);
      expect(msg.equals(copy)).toBe(true);
    }
    // Long enough and overlapping from offset 13: refused for the overlap itself.
    const whole = Buffer.alloc(msg.length + 64);
    msg.copy(whole);
    const err = await gcmOpen(key, whole.subarray(0, msg.length), whole.subarray(13)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toMatch(/overlaps/);
    expect(whole.subarray(0, msg.length).equals(msg)).toBe(true);
  });

  it('refuses tampered ciphertext, tag or nonce, a wrong key, and a shortened or lengthened message; the plaintext bytes of dst are zeroed', async () => {
    const key = randomBytes(32);
    for (const size of [0, 1, 16, 17, 64 * KiB, 64 * KiB + 1, MiB + 3]) {
      const plain = pattern(size, 5);
      const good = seal(key, plain);
      const cases: Array<[string, Buffer, Buffer]> = [];
      const flip = (pos: number, bit = 1) => {
        const m = Buffer.from(good);
        m[pos]! ^= bit;
        return m;
      };
      if (size > 0) {
        cases.push(['first ciphertext byte', flip(NONCE), key]);
        cases.push(['middle ciphertext byte', flip(NONCE + (size >> 1), 0x80), key]);
        cases.push(['last ciphertext byte', flip(NONCE + size - 1), key]);
      }
      cases.push(['first tag byte', flip(good.length - TAG), key]);
      cases.push(['last tag byte', flip(good.length - 1, 0x80), key]);
      cases.push(['first nonce byte', flip(0), key]);
      cases.push(['last nonce byte', flip(NONCE - 1, 0x40), key]);
      const wrongKey = Buffer.from(key);
      wrongKey[31]! ^= 1;
      cases.push(['wrong key', Buffer.from(good), wrongKey]);
      if (good.length > 28) cases.push(['one byte dropped', Buffer.concat([good.subarray(0, NONCE), good.subarray(NONCE + 1)]), key]);
      cases.push(['one byte added', Buffer.concat([good.subarray(0, good.length - TAG), Buffer.from([0]), good.subarray(good.length - TAG)]), key]);
      cases.push(['tag zeroed', Buffer.concat([good.subarray(0, good.length - TAG), Buffer.alloc(TAG)]), key]);
      for (const [what, msg, k] of cases) {
        expect(nodeOpen(k, msg), `Node refuses: ${what}`).toBeUndefined();
        const plen = msg.length - 28;
        const dst = Buffer.alloc(plen + 3, 0xee);
        expect(await gcmOpen(k, msg, dst), `${what}, size ${size}`).toBe(false);
        expect(dst.subarray(0, plen).equals(Buffer.alloc(plen)), `${what}: zeroed`).toBe(true);
        expect(dst.subarray(plen).equals(Buffer.alloc(3, 0xee)), `${what}: beyond untouched`).toBe(true);
        // In place too: the bytes where the plaintext went are zeroed.
        const inPlace = Buffer.from(msg);
        expect(await gcmOpen(k, inPlace, inPlace), `${what} in place, size ${size}`).toBe(false);
        expect(inPlace.subarray(0, plen).equals(Buffer.alloc(plen)), `${what} in place: zeroed`).toBe(true);
      }
    }
  });

  it('agrees with Node on random messages with random single-bit damage (never accepts what Node refuses)', async () => {
    const key = randomBytes(32);
    for (let i = 0; i < 300; i++) {
      const size = i % 3 === 0 ? Math.floor(Math.random() * 64) : Math.floor(Math.random() * 200 * KiB);
      const plain = randomBytes(size);
      const msg = seal(key, plain);
      const damaged = i % 4 !== 0;
      if (damaged) msg[Math.floor(Math.random() * msg.length)]! ^= 1 << Math.floor(Math.random() * 8);
      const expected = nodeOpen(key, msg);
      expect(expected === undefined).toBe(damaged);
      const dst = i % 2 === 0 ? Buffer.alloc(size) : msg;
      const ok = await gcmOpen(key, msg, dst);
      expect(ok, `message ${i} (${size} bytes, damaged ${damaged})`).toBe(expected !== undefined);
      const got = Buffer.from(dst.buffer, dst.byteOffset, size);
      expect(got.equals(expected ?? Buffer.alloc(size))).toBe(true);
    }
  });

  it('accepts the empty message (28 bytes) and rejects shorter ones, a short dst, a bad key and non-Uint8Array arguments', async () => {
    const key = randomBytes(32);
    const empty = seal(key, Buffer.alloc(0));
    expect(empty.length).toBe(28);
    expect(await gcmOpen(key, empty, Buffer.alloc(0))).toBe(true);
    for (const len of [0, 1, 12, 27]) {
      const err = await gcmOpen(key, empty.subarray(0, len), Buffer.alloc(64)).catch((e: unknown) => e);
      expect(err, `src of ${len} bytes`).toBeInstanceOf(TypeError);
      expect((err as Error).message).toMatch(/shorter than nonce and tag/);
    }
    const msg = seal(key, pattern(100));
    const short = Buffer.alloc(99, 7);
    await expect(gcmOpen(key, msg, short)).rejects.toThrow(/dst is shorter/);
    expect(short.equals(Buffer.alloc(99, 7))).toBe(true);
    await expect(gcmOpen(key.subarray(0, 31), msg, Buffer.alloc(100))).rejects.toThrow(TypeError);
    await expect(gcmOpen(Buffer.concat([key, Buffer.alloc(1)]), msg, Buffer.alloc(100))).rejects.toThrow(/key must be/);
    const bad: unknown[] = ['text', 5, null, undefined, {}, new Float64Array(16), new DataView(new ArrayBuffer(200)), new Uint16Array(100)];
    for (const b of bad) {
      await expect(gcmOpen(b as Uint8Array, msg, Buffer.alloc(100))).rejects.toThrow(TypeError);
      await expect(gcmOpen(key, b as Uint8Array, Buffer.alloc(100))).rejects.toThrow(TypeError);
      await expect(gcmOpen(key, msg, b as Uint8Array)).rejects.toThrow(TypeError);
    }
    await expect((n!.gcmOpen as unknown as (...a: unknown[]) => Promise<boolean>)(key, msg)).rejects.toThrow(TypeError);
    // A plain Uint8Array (not a Buffer) is fine, and so is an ArrayBuffer-backed view at an offset.
    const plainArr = new Uint8Array(msg.length + 9);
    plainArr.set(msg, 9);
    expect(await gcmOpen(new Uint8Array(key), plainArr.subarray(9), new Uint8Array(100))).toBe(true);
  });

  it('copies the key at the call: zeroing the caller\'s key at once does not change the result', async () => {
    const key = randomBytes(32);
    const plain = pattern(MiB, 9);
    const msg = seal(key, plain);
    const k = Buffer.from(key);
    const dst = Buffer.alloc(MiB);
    const p = gcmOpen(k, msg, dst);
    k.fill(0);
    expect(await p).toBe(true);
    expect(dst.equals(plain)).toBe(true);
  });

  it('runs 64 calls at once, good and forged, in place and not, each with the right answer', async () => {
    const key = randomBytes(32);
    const jobs = Array.from({ length: 64 }, (_, i) => {
      const size = [0, 100, 64 * KiB, 64 * KiB + 1, 300 * KiB + 7, MiB + 3][i % 6]!;
      const plain = pattern(size, i + 100);
      const msg = seal(key, plain);
      const forged = i % 5 === 2;
      if (forged) msg[msg.length - 1 - (i % 40)]! ^= 4;
      const dst = i % 2 === 0 ? msg : Buffer.alloc(size);
      return { plain, msg, dst, forged, size };
    });
    const results = await Promise.all(jobs.map((j) => gcmOpen(key, j.msg, j.dst)));
    jobs.forEach((j, i) => {
      expect(results[i], `job ${i}`).toBe(!j.forged);
      const got = Buffer.from(j.dst.buffer, j.dst.byteOffset, j.size);
      expect(got.equals(j.forged ? Buffer.alloc(j.size) : j.plain), `job ${i} bytes`).toBe(true);
    });
  });
});

describe.skipIf(skip)('@kiwi-backup/native-fs: hmacSha256', () => {
  it('equals Node\'s createHmac for many sizes, writing only the first 32 bytes of out', async () => {
    const key = randomBytes(32);
    for (const size of SIZES) {
      const data = pattern(size, size + 3);
      const out = Buffer.alloc(40, 0x5a);
      await hmac(key, data, out);
      expect(out.subarray(0, 32).equals(createHmac('sha256', key).update(data).digest()), `size ${size}`).toBe(true);
      expect(out.subarray(32).equals(Buffer.alloc(8, 0x5a))).toBe(true);
    }
  });

  it('works on views at offsets, into a view at an offset, and on a plain Uint8Array', async () => {
    const key = randomBytes(32);
    const whole = randomBytes(70_000);
    const data = new Uint8Array(whole.buffer, whole.byteOffset + 13, 65_537);
    const outWhole = Buffer.alloc(64);
    await hmac(new Uint8Array(key), data, outWhole.subarray(16, 48));
    expect(outWhole.subarray(16, 48).equals(createHmac('sha256', key).update(data).digest())).toBe(true);
    expect(outWhole.subarray(0, 16).equals(Buffer.alloc(16))).toBe(true);
    expect(outWhole.subarray(48).equals(Buffer.alloc(16))).toBe(true);
  });

  it('differs for another key and for one flipped bit', async () => {
    const key = randomBytes(32);
    const data = pattern(100_000);
    const a = Buffer.alloc(32);
    const b = Buffer.alloc(32);
    const c = Buffer.alloc(32);
    const other = Buffer.from(key);
    other[0]! ^= 1;
    const flipped = Buffer.from(data);
    flipped[77_777]! ^= 2;
    await Promise.all([hmac(key, data, a), hmac(other, data, b), hmac(key, flipped, c)]);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(c)).toBe(false);
    expect(b.equals(createHmac('sha256', other).update(data).digest())).toBe(true);
    expect(c.equals(createHmac('sha256', key).update(flipped).digest())).toBe(true);
  });

  it('rejects a bad key, a short out and non-Uint8Array arguments', async () => {
    const key = randomBytes(32);
    const data = Buffer.from('x');
    await expect(hmac(key.subarray(0, 16), data, Buffer.alloc(32))).rejects.toThrow(/key must be/);
    await expect(hmac(key, data, Buffer.alloc(31))).rejects.toThrow(/out must be/);
    await expect(hmac(key, 'x' as unknown as Uint8Array, Buffer.alloc(32))).rejects.toThrow(TypeError);
    await expect(hmac(key, data, new Uint32Array(8) as unknown as Uint8Array)).rejects.toThrow(TypeError);
  });

  it('runs 64 calls at once, each with the right MAC', async () => {
    const key = randomBytes(32);
    const items = Array.from({ length: 64 }, (_, i) => ({ data: pattern([0, 1, 64 * KiB, 64 * KiB + 1, 500_000, MiB + 3][i % 6]!, i), out: Buffer.alloc(32) }));
    await Promise.all(items.map((it) => hmac(key, it.data, it.out)));
    for (const it of items) expect(it.out.equals(createHmac('sha256', key).update(it.data).digest())).toBe(true);
  });
});
