import { describe, expect, it } from 'vitest';
import { compress, decompress, DecompressError } from '../../src/compression/zstd.js';
import { parseFrameHeader } from '../../src/compression/zstd-frame.js';
import { zstdBomb } from '../../src/testing/hostile.js';

const GiB = 2 ** 30;

describe('bounded zstd decompression', () => {
  it('the bomb helper makes a small frame that really expands to its size', async () => {
    const small = zstdBomb(300_000, { byte: 7 });
    expect(small.byteLength).toBeLessThan(40);
    const out = await decompress(small, { exact: 300_000 });
    expect(out.equals(Buffer.alloc(300_000, 7))).toBe(true);
    expect(zstdBomb(8 * GiB).byteLength).toBeLessThan(263 * 1024);
  });

  it('refuses a bomb with an exact bound (a blob) once its output reaches the bound', async () => {
    await expect(decompress(zstdBomb(8 * GiB), { exact: 1 << 20 })).rejects.toThrow(/decompresses to more than the expected 1048576 bytes/);
    await expect(decompress(zstdBomb(8 * GiB), { exact: 1 << 20 })).rejects.toBeInstanceOf(DecompressError);
  });

  it('refuses a bomb with a maximum (a metadata file)', async () => {
    await expect(decompress(zstdBomb(8 * GiB), { max: 16 << 20 })).rejects.toThrow(/more than the limit of 16777216 bytes/);
  });

  it('refuses a frame that declares more than allowed before decompressing it', async () => {
    const bomb = zstdBomb(8 * GiB, { declareSize: true });
    expect(parseFrameHeader(bomb).contentSize).toBe(8 * GiB);
    await expect(decompress(bomb, { max: 16 << 20 })).rejects.toThrow(/declares 8589934592 bytes of content, more than the limit/);
    await expect(decompress(bomb, { exact: 100 })).rejects.toThrow(/declares 8589934592 bytes of content, expected 100/);
  });

  it('a blob shorter than its recorded length is refused', async () => {
    const data = Buffer.alloc(200_000, 'ab');
    const c = await compress(data);
    await expect(decompress(c, { exact: 200_001 })).rejects.toThrow(/produced 200000 bytes, expected 200001/);
    expect((await decompress(c, { exact: 200_000 })).equals(data)).toBe(true);
  });

  it('grows its guess for metadata without a declared size, up to the maximum', async () => {
    const data = Buffer.alloc(3 << 20, 'x'); // compresses ~10000×: needs several attempts
    const c = await compress(data);
    expect(parseFrameHeader(c).contentSize).toBeUndefined();
    expect((await decompress(c, { max: 4 << 20 })).equals(data)).toBe(true);
    await expect(decompress(c, { max: (3 << 20) - 1 })).rejects.toThrow(/more than the limit/);
  });

  it('refuses trailing data, a second frame, a dictionary frame, a reserved bit, garbage', async () => {
    const c = await compress(Buffer.alloc(100_000, 'q'));
    await expect(decompress(Buffer.concat([c, Buffer.from([1, 2, 3])]), { max: 1 << 20 })).rejects.toThrow(/zstd decompression failed/);
    await expect(decompress(Buffer.concat([c, c]), { max: 1 << 20 })).rejects.toThrow(/after the zstd frame/);
    const withDict = Buffer.from(c);
    withDict[4] = (withDict[4]! & ~3) | 1; // Dictionary_ID_flag = 1 (shifts the header: still refused)
    await expect(decompress(withDict, { max: 1 << 20 })).rejects.toThrow(DecompressError);
    const reserved = Buffer.from(c);
    reserved[4] = reserved[4]! | 0x08;
    await expect(decompress(reserved, { max: 1 << 20 })).rejects.toThrow(/reserved bit/);
    await expect(decompress(Buffer.from('definitely not zstd'), { max: 1 << 20 })).rejects.toThrow(/not a zstd frame/);
    const cut = c.subarray(0, c.byteLength - 3);
    await expect(decompress(cut, { max: 1 << 20 })).rejects.toThrow(DecompressError);
  });

  it('many bounded decompressions in parallel all come back right (worker pool)', async () => {
    const inputs = Array.from({ length: 24 }, (_, i) => Buffer.alloc(100_000 + i * 1000, String.fromCharCode(97 + i)));
    const frames = await Promise.all(inputs.map((d) => compress(d)));
    const outs = await Promise.all(frames.map((f, i) => decompress(f, { exact: inputs[i]!.byteLength })));
    outs.forEach((o, i) => expect(o.equals(inputs[i]!)).toBe(true));
  });
});
