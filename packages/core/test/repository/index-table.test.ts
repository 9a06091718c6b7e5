import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { BlobIndex, FLAG_COMPRESSED, FLAG_TREE } from '../../src/repository/index-table.js';
import { ENTRY_SIZE, encodeIndexBody, scanIndexBody, type PackEntry } from '../../src/repository/pack-format.js';

describe('BlobIndex (compact in-memory index)', () => {
  it('stores 200k blobs in at most 120 bytes each (aim: < 90) and finds every one', () => {
    const n = 200_000;
    const ids = randomBytes(n * 32);
    const idx = new BlobIndex();
    const packs = Array.from({ length: n / 16 }, (_, i) => createHash('sha256').update(String(i)).digest('hex'));
    const before = process.memoryUsage().arrayBuffers;
    let added = 0;
    for (let i = 0; i < n; i++) {
      const packNo = idx.packNumber(packs[i >> 4]!);
      if (idx.add(i % 7 === 0 ? FLAG_TREE : FLAG_COMPRESSED, ids, i * 32, packNo, (i & 15) * 1000, 1000 + (i & 15), 2000 + i)) added++;
    }
    expect(added).toBe(n);
    const after = process.memoryUsage().arrayBuffers;
    expect(idx.size).toBe(n);
    const perEntry = idx.byteSize() / n;
    expect(perEntry).toBeLessThanOrEqual(85);
    // measured by the runtime too (typed arrays are external memory); allow for the discarded growth copies being not yet collected
    expect((after - before) / n).toBeLessThan(200);
    for (let i = 0; i < n; i += 997) {
      const id = ids.toString('hex', i * 32, i * 32 + 32);
      const type = i % 7 === 0 ? 'tree' : 'data';
      const loc = idx.lookup(type, id)!;
      expect(loc).toEqual({ type, id, pack: packs[i >> 4], offset: (i & 15) * 1000, length: 1000 + (i & 15), rawLength: 2000 + i, compressed: type === 'data' });
      expect(idx.has(type === 'tree' ? 'data' : 'tree', id)).toBe(false);
    }
    expect(idx.has('data', 'f'.repeat(64))).toBe(false);
    expect(idx.has('data', 'not-hex')).toBe(false);
    // duplicates are refused
    expect(idx.add(FLAG_COMPRESSED, ids, 32, 0, 0, 0, 0)).toBe(false);
  });

  it('keeps a blob of the same id as data and as tree apart', () => {
    const idx = new BlobIndex();
    const id = randomBytes(32);
    expect(idx.add(0, id, 0, idx.packNumber('a'.repeat(64)), 1, 2, 3)).toBe(true);
    expect(idx.add(FLAG_TREE, id, 0, idx.packNumber('b'.repeat(64)), 4, 5, 6)).toBe(true);
    expect(idx.lookup('data', id.toString('hex'))!.pack).toBe('a'.repeat(64));
    expect(idx.lookup('tree', id.toString('hex'))!.pack).toBe('b'.repeat(64));
  });

  it('loads a 1M-blob index body quickly', () => {
    const n = 1_000_000;
    const ids = randomBytes(n * 32);
    // An index body of 50k packs × 20 blobs, written directly (see pack-format.ts for the layout).
    const perPack = 20;
    const body = Buffer.alloc(16 + (n / perPack) * (36 + perPack * ENTRY_SIZE));
    body.write('KIDX', 0, 'latin1');
    body[4] = 1;
    body.writeUInt32LE(n / perPack, 12);
    let pos = 16;
    for (let p = 0; p < n / perPack; p++) {
      createHash('sha256').update(String(p)).digest().copy(body, pos);
      pos = body.writeUInt32LE(perPack, pos + 32);
      for (let j = 0; j < perPack; j++) {
        const i = p * perPack + j;
        body[pos] = FLAG_COMPRESSED;
        ids.copy(body, pos + 1, i * 32, i * 32 + 32);
        body.writeUInt32LE(j * 1000, pos + 33);
        body.writeUInt32LE(1000, pos + 37);
        body.writeUInt32LE(1200, pos + 41);
        pos += ENTRY_SIZE;
      }
    }
    expect(pos).toBe(body.length);
    const t0 = performance.now();
    const idx = new BlobIndex();
    idx.reserve(n);
    let packNo = 0;
    scanIndexBody(
      body,
      (packId) => (packNo = idx.packNumber(packId)),
      (flags, buf, off, o, l, r) => idx.add(flags, buf, off, packNo, o, l, r),
    );
    const ms = performance.now() - t0;
    console.log(`index: scanned ${n} entries in ${ms.toFixed(0)} ms, ${(idx.byteSize() / n).toFixed(1)} bytes/entry`);
    expect(idx.size).toBe(n);
    expect(idx.byteSize() / n).toBeLessThan(120);
    // generous bound for a slow CI box; typically ~300 ms
    expect(ms).toBeLessThan(5000);
    expect(idx.lookup('data', ids.toString('hex', 32 * 777_777, 32 * 777_778))!.offset).toBe((777_777 % 20) * 1000);
  });
});

describe('index file body', () => {
  it('round-trips packs, entries and supersedes through encode/scan', () => {
    const packs: Array<{ id: string; entries: PackEntry[] }> = [
      { id: 'a'.repeat(64), entries: [{ flags: FLAG_TREE, id: randomBytes(32), offset: 0, length: 100, rawLength: 72 }] },
      { id: 'b'.repeat(64), entries: [] },
    ];
    const body = encodeIndexBody(packs, ['c'.repeat(64)]);
    expect(body.length).toBe(16 + 32 + 2 * 36 + ENTRY_SIZE);
    const seen: string[] = [];
    const r = scanIndexBody(
      body,
      (id, count) => seen.push(`${id[0]}:${count}`),
      (flags, buf, off, o, l, raw) => seen.push(`${flags}:${buf.toString('hex', off, off + 32) === Buffer.from(packs[0]!.entries[0]!.id).toString('hex')}:${o}:${l}:${raw}`),
    );
    expect(seen).toEqual(['a:1', '1:true:0:100:72', 'b:0']);
    expect(r).toEqual({ supersedes: ['c'.repeat(64)], packs: 2, blobs: 1 });
    expect(() => scanIndexBody(body.subarray(0, body.length - 1), () => undefined, () => undefined)).toThrow(/truncated/);
    const bad = Buffer.from(body);
    bad[0] = 0x58;
    expect(() => scanIndexBody(bad, () => undefined, () => undefined)).toThrow(/magic/);
  });
});
