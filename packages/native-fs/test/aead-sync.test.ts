/**
 * gcmSealSync, gcmOpenSync and hmacSha256Sync: the calling thread's AES-256-GCM and HMAC-SHA-256,
 * checked against Node's crypto (random sizes, keys and nonces; damage; every kind of overlap), their
 * argument checks, key changes on the kept contexts, and worker threads (a context set per thread).
 */
import { describe, expect, it } from 'vitest';
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { nfs as n, skipNative } from './load.js';
import { NONCE, TAG, nodeOpen, nodeSeal } from './node-gcm.js';

const KiB = 1024;
const MiB = 1024 * 1024;

const skip = skipNative || (n?.aeadAvailable !== true && process.env.CI !== 'true');

const seal = (key: Uint8Array, nonce: Uint8Array, src: Uint8Array, dst: Uint8Array, off?: number) => n!.gcmSealSync!(key, nonce, src, dst, off);
const open = (key: Uint8Array, src: Uint8Array, dst: Uint8Array) => n!.gcmOpenSync!(key, src, dst);
const mac = (key: Uint8Array, data: Uint8Array, out: Uint8Array) => n!.hmacSha256Sync!(key, data, out);



const nodeMac = (key: Uint8Array, data: Uint8Array) => createHmac('sha256', key).update(data).digest();

/** A random size up to 200 KiB, a third of them below 100 bytes. */
function randomSize(i: number): number {
  return i % 3 === 0 ? randomInt(100) : randomInt(200 * KiB + 1);
}

const view = (u: Uint8Array, at: number, len: number) => Buffer.from(u.buffer, u.byteOffset + at, len);

describe.skipIf(skip)('@kiwi-backup/native-fs: gcmSealSync, gcmOpenSync, hmacSha256Sync', () => {
  it('are there with aeadAvailable (under CI the process must have a usable OpenSSL)', () => {
    expect(n!.aeadAvailable).toBe(true);
    expect(typeof n!.gcmSealSync).toBe('function');
    expect(typeof n!.gcmOpenSync).toBe('function');
    expect(typeof n!.hmacSha256Sync).toBe('function');
  });

  it('seal: equals Node for random sizes (0..200 KiB), keys and nonces, at random offsets, touching nothing else', () => {
    for (let i = 0; i < 300; i++) {
      const key = randomBytes(32);
      const nonce = randomBytes(NONCE);
      const size = randomSize(i);
      const plain = randomBytes(size);
      const off = randomInt(40);
      const dst = Buffer.alloc(off + size + 28 + 7, 0xc3);
      expect(seal(key, nonce, plain, dst, off), `message ${i}`).toBe(size + 28);
      expect(dst.subarray(off, off + size + 28).equals(nodeSeal(key, plain, nonce)), `message ${i} (${size} bytes at ${off})`).toBe(true);
      expect(dst.subarray(0, off).equals(Buffer.alloc(off, 0xc3))).toBe(true);
      expect(dst.subarray(off + size + 28).equals(Buffer.alloc(7, 0xc3))).toBe(true);
    }
  });

  it('seal: large messages (several of its 1 MiB slices) and the edges of its slices', () => {
    const key = randomBytes(32);
    for (const size of [16, 17, 64 * KiB, MiB - 1, MiB, MiB + 3, 3 * MiB + 5]) {
      const plain = randomBytes(size);
      const nonce = randomBytes(NONCE);
      const dst = Buffer.alloc(size + 28);
      expect(seal(key, nonce, plain, dst)).toBe(size + 28);
      expect(dst.equals(nodeSeal(key, plain, nonce)), `size ${size}`).toBe(true);
    }
  });

  it('open: what Node sealed, and Node opens what it sealed, for random sizes, keys and nonces', () => {
    for (let i = 0; i < 300; i++) {
      const key = randomBytes(32);
      const size = randomSize(i);
      const plain = randomBytes(size);
      const msg = nodeSeal(key, plain);
      const dst = Buffer.alloc(size + 5, 0xa5);
      expect(open(key, msg, dst), `message ${i} (${size} bytes)`).toBe(true);
      expect(dst.subarray(0, size).equals(plain)).toBe(true);
      expect(dst.subarray(size).equals(Buffer.alloc(5, 0xa5))).toBe(true);
      const mine = Buffer.alloc(size + 28);
      seal(key, randomBytes(NONCE), plain, mine);
      expect(nodeOpen(key, mine)?.equals(plain), `Node opens message ${i}`).toBe(true);
    }
    const key = randomBytes(32);
    for (const size of [MiB - 1, MiB, MiB + 3, 3 * MiB + 5]) {
      const plain = randomBytes(size);
      const dst = Buffer.alloc(size);
      expect(open(key, nodeSeal(key, plain), dst)).toBe(true);
      expect(dst.equals(plain), `size ${size}`).toBe(true);
    }
  });

  it('open: tampered ciphertext, tag or nonce, a wrong key, a shortened or lengthened message: false, plaintext bytes zeroed (apart and in place)', () => {
    for (let i = 0; i < 60; i++) {
      const key = randomBytes(32);
      const size = [0, 1, 16, 17][i] ?? randomSize(i);
      const plain = randomBytes(size);
      const good = nodeSeal(key, plain);
      const flip = (pos: number) => {
        const m = Buffer.from(good);
        m[pos]! ^= 1 << randomInt(8);
        return m;
      };
      const wrongKey = Buffer.from(key);
      wrongKey[randomInt(32)]! ^= 1 << randomInt(8);
      const cases: Array<[string, Buffer, Buffer]> = [
        ['tag', flip(good.length - 1 - randomInt(TAG)), key],
        ['nonce', flip(randomInt(NONCE)), key],
        ['wrong key', Buffer.from(good), wrongKey],
        ['tag zeroed', Buffer.concat([good.subarray(0, good.length - TAG), Buffer.alloc(TAG)]), key],
        ['one byte added', Buffer.concat([good.subarray(0, good.length - TAG), Buffer.from([0]), good.subarray(good.length - TAG)]), key],
      ];
      if (size > 0) {
        cases.push(['ciphertext', flip(NONCE + randomInt(size)), key]);
        cases.push(['one byte dropped', Buffer.concat([good.subarray(0, NONCE), good.subarray(NONCE + 1)]), key]);
      }
      for (const [what, msg, k] of cases) {
        expect(nodeOpen(k, msg), `Node refuses: ${what}`).toBeUndefined();
        const plen = msg.length - 28;
        const dst = Buffer.alloc(plen + 3, 0xee);
        expect(open(k, msg, dst), `${what}, size ${size}`).toBe(false);
        expect(dst.subarray(0, plen).equals(Buffer.alloc(plen)), `${what}: zeroed`).toBe(true);
        expect(dst.subarray(plen).equals(Buffer.alloc(3, 0xee)), `${what}: beyond untouched`).toBe(true);
        const inPlace = Buffer.from(msg);
        expect(open(k, inPlace, inPlace), `${what} in place`).toBe(false);
        expect(inPlace.subarray(0, plen).equals(Buffer.alloc(plen)), `${what} in place: zeroed`).toBe(true);
      }
      // The kept context opens the good message afterwards.
      const dst = Buffer.alloc(size);
      expect(open(key, good, dst)).toBe(true);
      expect(dst.equals(plain)).toBe(true);
    }
  });

  it('open: agrees with Node on random messages with random single-bit damage', () => {
    const key = randomBytes(32);
    for (let i = 0; i < 300; i++) {
      const size = randomSize(i);
      const msg = nodeSeal(key, randomBytes(size));
      const damaged = i % 4 !== 0;
      if (damaged) msg[randomInt(msg.length)]! ^= 1 << randomInt(8);
      const expected = nodeOpen(key, msg);
      expect(expected === undefined).toBe(damaged);
      const dst = i % 2 === 0 ? Buffer.alloc(size) : msg;
      expect(open(key, msg, dst), `message ${i} (${size} bytes, damaged ${damaged})`).toBe(!damaged);
      expect(view(dst, 0, size).equals(expected ?? Buffer.alloc(size))).toBe(true);
    }
  });

  it('seal: dst may overlap src in any way (the plaintext at dst+12, before, after, inside), the same result as from a copy', () => {
    for (const size of [1, 13, 100, 4 * KiB + 3, 64 * KiB + 1, MiB + 3]) {
      const plain = randomBytes(size);
      const key = randomBytes(32);
      const nonce = randomBytes(NONCE);
      const expected = nodeSeal(key, plain, nonce);
      // The output at `outAt` of one big buffer, the plaintext at `inAt`: every shift from well before to well after.
      const shifts = [-size - 40, -size - 28, -size - 1, -40, -13, -12, -11, -1, 0, 1, 11, 12, 13, 27, 28, 29, 40, size, size + 28, size + 29];
      for (const shift of shifts) {
        const base = 2 * size + 128;
        const whole = Buffer.alloc(4 * size + 256, 0x5c);
        const outAt = base;
        const inAt = base + NONCE + shift; // shift 0: the plaintext exactly where its ciphertext goes
        plain.copy(whole, inAt);
        const written = seal(key, nonce, whole.subarray(inAt, inAt + size), whole, outAt);
        expect(written).toBe(size + 28);
        expect(whole.subarray(outAt, outAt + size + 28).equals(expected), `size ${size}, shift ${shift}`).toBe(true);
        // Bytes that were neither input nor output are untouched.
        for (const [a, b] of [
          [0, Math.min(outAt, inAt)],
          [Math.max(outAt + size + 28, inAt + size), whole.length],
        ] as const) {
          expect(whole.subarray(a, b).equals(Buffer.alloc(b - a, 0x5c)), `size ${size}, shift ${shift}: outside untouched`).toBe(true);
        }
      }
      // dst and src the same view: output from its start, the plaintext read first.
      const same = Buffer.alloc(size + 28);
      plain.copy(same);
      seal(key, nonce, same.subarray(0, size), same);
      expect(same.equals(expected)).toBe(true);
      // The nonce inside the output (where it goes) and inside the plaintext.
      const out = Buffer.alloc(size + 28);
      nonce.copy(out);
      seal(key, out.subarray(0, NONCE), plain, out);
      expect(out.equals(expected)).toBe(true);
      if (size >= NONCE) {
        const p2 = Buffer.alloc(size + 28);
        plain.copy(p2, NONCE);
        seal(key, p2.subarray(NONCE, 2 * NONCE), p2.subarray(NONCE, NONCE + size), p2);
        expect(p2.equals(nodeSeal(key, plain, plain.subarray(0, NONCE)))).toBe(true);
      }
    }
  });

  it('open: dst may overlap src in any way (dst = src, at the ciphertext, before it, after it, over the tag), the same result as from a copy', () => {
    for (const size of [1, 13, 100, 4 * KiB + 3, 64 * KiB + 1, MiB + 3]) {
      const key = randomBytes(32);
      const plain = randomBytes(size);
      const msg = nodeSeal(key, plain);
      const shifts = [-size - 40, -size - 1, -40, -1, 0, 1, 11, 12, 13, 20, 27, 28, 29, 40, size, size + 12, size + 27, size + 28, size + 29];
      for (const forged of [false, true]) {
        const m = Buffer.from(msg);
        if (forged) m[NONCE + randomInt(size)]! ^= 2;
        for (const shift of shifts) {
          const base = 2 * size + 128;
          const whole = Buffer.alloc(4 * size + 256, 0x5c);
          m.copy(whole, base);
          const dstAt = base + shift;
          const ok = open(key, whole.subarray(base, base + m.length), whole.subarray(dstAt, dstAt + size + 3));
          expect(ok, `size ${size}, shift ${shift}, forged ${forged}`).toBe(!forged);
          expect(whole.subarray(dstAt, dstAt + size).equals(forged ? Buffer.alloc(size) : plain), `size ${size}, shift ${shift}, forged ${forged}`).toBe(true);
          const lo = Math.min(base, dstAt);
          const hi = Math.max(base + m.length, dstAt + size);
          expect(whole.subarray(0, lo).equals(Buffer.alloc(lo, 0x5c))).toBe(true);
          expect(whole.subarray(hi).equals(Buffer.alloc(whole.length - hi, 0x5c))).toBe(true);
          // Where neither overlapped, src is unchanged.
          if (dstAt + size <= base || dstAt >= base + m.length) expect(whole.subarray(base, base + m.length).equals(m)).toBe(true);
        }
      }
    }
  });

  it('keys change freely: interleaved keys (the kept contexts re-keyed) give Node\'s results', () => {
    const keys = [randomBytes(32), randomBytes(32), randomBytes(32)];
    for (let i = 0; i < 200; i++) {
      const key = keys[randomInt(keys.length)]!;
      const plain = randomBytes(randomInt(300));
      const nonce = randomBytes(NONCE);
      const out = Buffer.alloc(plain.length + 28);
      seal(key, nonce, plain, out);
      expect(out.equals(nodeSeal(key, plain, nonce)), `seal ${i}`).toBe(true);
      const other = keys[randomInt(keys.length)]!;
      const dst = Buffer.alloc(plain.length);
      expect(open(other, out, dst), `open ${i}`).toBe(other === key);
      if (other === key) expect(dst.equals(plain)).toBe(true);
      const m = Buffer.alloc(32);
      mac(other, plain, m);
      expect(m.equals(nodeMac(other, plain)), `mac ${i}`).toBe(true);
    }
    // A key that changes in place between calls (same object, new bytes) is a new key.
    const k = randomBytes(32);
    const plain = randomBytes(50);
    const nonce = randomBytes(NONCE);
    const a = Buffer.alloc(78);
    seal(k, nonce, plain, a);
    k[5]! ^= 1;
    const b = Buffer.alloc(78);
    seal(k, nonce, plain, b);
    expect(b.equals(nodeSeal(k, plain, nonce))).toBe(true);
    expect(a.equals(b)).toBe(false);
    const mk = Buffer.alloc(32);
    mac(k, plain, mk);
    k[5]! ^= 1;
    const mk2 = Buffer.alloc(32);
    mac(k, plain, mk2);
    expect(mk2.equals(nodeMac(k, plain))).toBe(true);
    expect(mk.equals(mk2)).toBe(false);
  });

  it('hmacSha256Sync: equals Node for random sizes, into out at an offset (only 32 bytes written), out over data', () => {
    const key = randomBytes(32);
    for (let i = 0; i < 200; i++) {
      const data = randomBytes(i < 3 ? i : randomSize(i));
      const out = Buffer.alloc(48, 0x5a);
      mac(key, data, out.subarray(8));
      expect(out.subarray(8, 40).equals(nodeMac(key, data)), `size ${data.length}`).toBe(true);
      expect(out.subarray(0, 8).equals(Buffer.alloc(8, 0x5a))).toBe(true);
      expect(out.subarray(40).equals(Buffer.alloc(8, 0x5a))).toBe(true);
    }
    const data = randomBytes(1000);
    const expected = nodeMac(key, data);
    mac(key, data, data.subarray(500));
    expect(data.subarray(500, 532).equals(expected)).toBe(true);
    const big = randomBytes(3 * MiB + 1);
    const out = Buffer.alloc(32);
    mac(new Uint8Array(key), new Uint8Array(big.buffer, big.byteOffset, big.length), out);
    expect(out.equals(nodeMac(key, big))).toBe(true);
  });

  it('take plain Uint8Arrays and views over a SharedArrayBuffer (the savers\' arena)', () => {
    const key = new Uint8Array(randomBytes(32));
    const plain = randomBytes(1000);
    const nonce = randomBytes(NONCE);
    const shared = new Uint8Array(new SharedArrayBuffer(4096));
    expect(seal(key, nonce, new Uint8Array(plain), shared, 100)).toBe(1028);
    expect(Buffer.from(shared.subarray(100, 1128)).equals(nodeSeal(key, plain, nonce))).toBe(true);
    const dst = new Uint8Array(new SharedArrayBuffer(1000));
    expect(open(key, shared.subarray(100, 1128), dst)).toBe(true);
    expect(Buffer.from(dst).equals(plain)).toBe(true);
    const m = new Uint8Array(new SharedArrayBuffer(32));
    mac(key, shared, m);
    expect(Buffer.from(m).equals(nodeMac(key, shared))).toBe(true);
  });

  it('refuse bad arguments: TypeError for types and key/nonce sizes, RangeError for lengths and bounds, nothing written', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(NONCE);
    const plain = randomBytes(100);
    const msg = nodeSeal(key, plain);
    const bad: unknown[] = ['text', 5, null, undefined, {}, [1, 2], new Float64Array(16), new DataView(new ArrayBuffer(200)), new Uint16Array(100), new Int8Array(200), new Uint8ClampedArray(200)];
    const dst = Buffer.alloc(200, 9);
    const untouched = () => expect(dst.equals(Buffer.alloc(200, 9))).toBe(true);
    const s = n!.gcmSealSync as unknown as (...a: unknown[]) => number;
    const o = n!.gcmOpenSync as unknown as (...a: unknown[]) => boolean;
    const h = n!.hmacSha256Sync as unknown as (...a: unknown[]) => void;
    for (const b of bad) {
      expect(() => s(b, nonce, plain, dst)).toThrow(TypeError);
      expect(() => s(key, b, plain, dst)).toThrow(TypeError);
      expect(() => s(key, nonce, b, dst)).toThrow(TypeError);
      expect(() => s(key, nonce, plain, b)).toThrow(TypeError);
      expect(() => o(b, msg, dst)).toThrow(TypeError);
      expect(() => o(key, b, dst)).toThrow(TypeError);
      expect(() => o(key, msg, b)).toThrow(TypeError);
      expect(() => h(b, plain, dst)).toThrow(TypeError);
      expect(() => h(key, b, dst)).toThrow(TypeError);
      expect(() => h(key, plain, b)).toThrow(TypeError);
      untouched();
    }
    for (const k of [key.subarray(0, 31), Buffer.concat([key, Buffer.alloc(1)]), Buffer.alloc(0)]) {
      expect(() => s(k, nonce, plain, dst)).toThrow(/key must be a Uint8Array of 32 bytes/);
      expect(() => o(k, msg, dst)).toThrow(/key must be a Uint8Array of 32 bytes/);
      expect(() => h(k, plain, dst)).toThrow(/key must be a Uint8Array of 32 bytes/);
    }
    for (const nn of [nonce.subarray(0, 11), Buffer.alloc(13), Buffer.alloc(16)]) expect(() => s(key, nn, plain, dst)).toThrow(/nonce must be a Uint8Array of 12 bytes/);
    // dstOffset: not a number; negative, fractional, NaN, infinite, past the end; no room left.
    for (const off of ['1', 1n, {}, null]) expect(() => s(key, nonce, plain, dst, off)).toThrow(TypeError);
    for (const off of [-1, 0.5, NaN, Infinity, -Infinity, 201, 2 ** 53]) expect(() => s(key, nonce, plain, dst, off)).toThrow(RangeError);
    expect(() => s(key, nonce, plain, dst, 73)).toThrow(RangeError); // 128 bytes do not fit at 73 of 200
    expect(() => s(key, nonce, plain, Buffer.alloc(127))).toThrow(/no room/);
    expect(s(key, nonce, plain, dst, 72)).toBe(128);
    dst.fill(9);
    // open: src shorter than 28 bytes, dst shorter than the plaintext.
    for (const len of [0, 1, 12, 27]) expect(() => o(key, msg.subarray(0, len), dst)).toThrow(/shorter than nonce and tag/);
    expect(() => o(key, msg, dst.subarray(0, 99))).toThrow(RangeError);
    untouched();
    expect(() => h(key, plain, dst.subarray(0, 31))).toThrow(RangeError);
    untouched();
    // Missing arguments.
    expect(() => s(key, nonce, plain)).toThrow(TypeError);
    expect(() => o(key, msg)).toThrow(TypeError);
    expect(() => h(key, plain)).toThrow(TypeError);
    expect(() => (s as () => number)()).toThrow(TypeError);
    // Empty messages are fine: 28 bytes out, and back.
    const empty = Buffer.alloc(28);
    expect(s(key, nonce, Buffer.alloc(0), empty)).toBe(28);
    expect(empty.equals(nodeSeal(key, Buffer.alloc(0), nonce))).toBe(true);
    expect(o(key, empty, Buffer.alloc(0))).toBe(true);
  });

  it('work alongside the threadpool calls, and in worker threads (each its own contexts, freed when the worker ends)', async () => {
    const key = randomBytes(32);
    const msgs = Array.from({ length: 32 }, (_, i) => {
      const plain = randomBytes(i % 2 ? 300 * KiB : 100);
      return { plain, msg: nodeSeal(key, plain), dst: Buffer.alloc(plain.length) };
    });
    const pending = Promise.all(msgs.map((m) => n!.gcmOpen!(key, m.msg, m.dst)));
    for (const m of msgs) {
      const d = Buffer.alloc(m.plain.length);
      expect(open(key, m.msg, d)).toBe(true);
      expect(d.equals(m.plain)).toBe(true);
    }
    expect(await pending).toEqual(msgs.map(() => true));
    for (const m of msgs) expect(m.dst.equals(m.plain)).toBe(true);

    const addon = createRequire(import.meta.url).resolve('../index.cjs');
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const crypto = require('node:crypto');
      const n = require(workerData.addon);
      let ok = n.aeadAvailable && typeof n.gcmSealSync === 'function';
      for (let i = 0; ok && i < 200; i++) {
        const key = crypto.randomBytes(32), nonce = crypto.randomBytes(12), plain = crypto.randomBytes(i * 97);
        const out = Buffer.alloc(plain.length + 28);
        n.gcmSealSync(key, nonce, plain, out);
        const c = crypto.createCipheriv('aes-256-gcm', key, nonce);
        ok = Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()]).equals(out);
        const back = Buffer.alloc(plain.length);
        ok = ok && n.gcmOpenSync(key, out, back) && back.equals(plain);
        const m = Buffer.alloc(32);
        n.hmacSha256Sync(key, plain, m);
        ok = ok && m.equals(crypto.createHmac('sha256', key).update(plain).digest());
      }
      parentPort.postMessage(ok);
    `;
    const run = () =>
      new Promise<boolean>((resolve, reject) => {
        const w = new Worker(source, { eval: true, workerData: { addon } });
        w.once('message', (ok: boolean) => {
          resolve(ok);
          void w.terminate();
        });
        w.once('error', reject);
      });
    for (let round = 0; round < 3; round++) expect(await Promise.all(Array.from({ length: 4 }, run))).toEqual([true, true, true, true]);
    // This thread's contexts are still fine.
    const plain = randomBytes(1000);
    const nonce = randomBytes(NONCE);
    const out = Buffer.alloc(1028);
    seal(key, nonce, plain, out);
    expect(out.equals(nodeSeal(key, plain, nonce))).toBe(true);
  });
});
