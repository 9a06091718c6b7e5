/**
 * `BlobReader.checkStored` (prune's repacking): a blob's stored bytes checked without holding its
 * plaintext must accept exactly what opening the blob accepts — sound blobs of every kind — and
 * refuse, naming the blob and the pack, what opening it refuses: bytes that are not authentic,
 * plaintext of the wrong length or id, a zstd frame with something after it.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { compress } from '../../src/compression/zstd.js';
import { IntegrityError } from '../../src/repository/errors.js';
import type { BlobLocation } from '../../src/repository/types.js';
import { newRepo, random, textish } from './helpers.js';

const zstd = createRequire(import.meta.url)('zstd-napi/binding') as {
  CCtx: new () => { setParameter(p: number, v: number): void; compressStream2(dst: Uint8Array, src: Uint8Array, end: number): [number, number, number] };
  CParameter: { windowLog: number };
  EndDirective: { end: number };
};

async function setup() {
  const { repo } = await newRepo({ packSize: 4 * 1024 * 1024 });
  const { reader, keys } = repo.internals();
  const check = async (loc: BlobLocation, stored: Uint8Array) => reader.checkStored(loc, stored);
  /** Stored bytes and a location for `plain`, stored as `frame` (its zstd frame) when given. */
  const seal = (plain: Buffer, frame?: Buffer, claims: Partial<BlobLocation> = {}) => {
    const stored = keys.encrypt(frame ?? plain);
    const loc: BlobLocation = {
      type: 'data',
      id: keys.blobId(plain),
      pack: 'ab'.repeat(32),
      offset: 0,
      length: stored.byteLength,
      rawLength: plain.byteLength,
      compressed: frame !== undefined,
      ...claims,
    };
    return { loc, stored };
  };
  return { repo, reader, keys, check, seal };
}

/** A zstd frame of `data` with no declared size and a 16 MiB window (no Kiwi writer makes one: opened whole). */
function wideFrame(data: Buffer): Buffer {
  const c = new zstd.CCtx();
  c.setParameter(zstd.CParameter.windowLog, 24);
  const out = Buffer.alloc(data.byteLength + 1024);
  const [, produced] = c.compressStream2(out, data, zstd.EndDirective.end);
  return out.subarray(0, produced);
}

describe('checkStored', () => {
  it('accepts sound blobs: compressed and not, small and large (past the decompression buffer), and a wide-window frame', async () => {
    const { check, seal } = await setup();
    const text = textish(3 * 1024 * 1024 + 17, 3);
    const small = textish(100, 4);
    for (const { loc, stored } of [
      seal(text, await compress(text)),
      seal(small, await compress(small)),
      seal(random(300_000)),
      seal(Buffer.alloc(0)),
      seal(small, wideFrame(small)),
    ]) {
      await expect(check(loc, stored)).resolves.toBeUndefined();
    }
    // A tree blob too.
    const tree = Buffer.from(JSON.stringify({ nodes: [] }));
    const t = seal(tree, await compress(tree), { type: 'tree' });
    await expect(check(t.loc, t.stored)).resolves.toBeUndefined();
  });

  it('refuses a flipped byte anywhere: nonce, ciphertext, tag', async () => {
    const { check, seal } = await setup();
    const text = textish(500_000, 5);
    const { loc, stored } = seal(text, await compress(text));
    for (const at of [0, 11, 12, 1000, stored.byteLength - 17, stored.byteLength - 1]) {
      const bad = Buffer.from(stored);
      bad[at]! ^= 0x10;
      await expect(check(loc, bad)).rejects.toThrow(/data blob [0-9a-f]{64} in data\/ab\/abab.*: authentication failed \(the pack is damaged\)/);
    }
    await expect(check(loc, stored.subarray(0, 20))).rejects.toThrow(IntegrityError);
    await expect(check(loc, stored.subarray(0, stored.byteLength - 1))).rejects.toThrow(/read \d+ bytes, expected \d+ \(pack truncated\?\)/);
  });

  it('refuses authentic bytes that are not the indexed blob: another id, another length, a short or long frame, data after the frame', async () => {
    const { check, seal, keys } = await setup();
    const a = textish(200_000, 6);
    const b = textish(200_000, 7);
    const frameA = await compress(a);
    // Another blob's id.
    await expect(check(seal(a, frameA, { id: keys.blobId(b) }).loc, seal(a, frameA).stored)).rejects.toThrow(/content does not match its id \(got [0-9a-f]{64}\)/);
    const raw = seal(random(5000), undefined, { id: keys.blobId(b) });
    await expect(check(raw.loc, raw.stored)).rejects.toThrow(/content does not match its id/);
    // The index says another length (uncompressed, compressed with a declared size, compressed without).
    const r = seal(random(5000), undefined, { rawLength: 4999 });
    await expect(check(r.loc, r.stored)).rejects.toThrow(/5000 bytes, index says 4999/);
    const c = seal(a, frameA, { rawLength: a.byteLength + 1 });
    await expect(check(c.loc, c.stored)).rejects.toThrow(/zstd (frame declares|decompression produced) 200000 bytes.*, expected 200001/);
    const wide = seal(a.subarray(0, 1000), wideFrame(a.subarray(0, 1000)), { rawLength: 999 });
    await expect(check(wide.loc, wide.stored)).rejects.toThrow(IntegrityError);
    // Something after the frame; a frame cut short; not a frame at all.
    const trailing = seal(a, Buffer.concat([frameA, Buffer.from('tail')]));
    await expect(check(trailing.loc, trailing.stored)).rejects.toThrow(/data after the zstd frame/);
    const cut = seal(a, frameA.subarray(0, frameA.byteLength - 10));
    await expect(check(cut.loc, cut.stored)).rejects.toThrow(/zstd decompression failed/);
    const notFrame = seal(a, Buffer.from('plain text, not zstd'));
    await expect(check(notFrame.loc, notFrame.stored)).rejects.toThrow(/zstd decompression failed: not a zstd frame/);
  });

  it('gives the same verdict as opening the blob, over blobs damaged at random', async () => {
    const { check, seal, reader } = await setup();
    const text = textish(150_000, 8);
    const { loc, stored } = seal(text, await compress(text));
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    for (let i = 0; i < 40; i++) {
      const bad = Buffer.from(stored);
      if (i % 4 !== 0) bad[next() % bad.byteLength]! ^= 1 << (next() % 8);
      const opened = await reader.open(loc, bad).then(
        () => 'ok',
        (err: Error) => err.name,
      );
      const checked = await check(loc, bad).then(
        () => 'ok',
        (err: Error) => err.name,
      );
      expect(checked).toBe(opened);
    }
  });
});
