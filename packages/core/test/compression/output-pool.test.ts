import { describe, expect, it } from 'vitest';
import { releaseOutput } from '../../src/compression/decompress-pool.js';
import { compress, decompress } from '../../src/compression/zstd.js';

describe('pooled decompression outputs', () => {
  it('a small blob decompressed here with reuse gets a pooled output, used again once released', async () => {
    const data = Buffer.alloc(20_000, 'kiwi');
    const frame = await compress(data);
    const first = await decompress(frame, { exact: data.byteLength, here: true }, { reuse: true });
    expect(first.equals(data)).toBe(true);
    // A pooled output: at least 128 KiB behind the 20,000 bytes (prune's repacking takes one per blob).
    expect(first.buffer.byteLength).toBeGreaterThanOrEqual(128 * 1024);
    const buffer = first.buffer;
    releaseOutput(first);
    const second = await decompress(frame, { exact: data.byteLength, here: true }, { reuse: true });
    expect(second.buffer).toBe(buffer);
    expect(second.equals(data)).toBe(true);
    releaseOutput(second);
  });

  it('without `here`, small outputs stay fresh buffers (a restore decompresses many at once)', async () => {
    const data = Buffer.alloc(20_000, 'kiwi');
    const frame = await compress(data);
    const out = await decompress(frame, { exact: data.byteLength }, { reuse: true });
    expect(out.equals(data)).toBe(true);
    expect(out.buffer.byteLength).toBeLessThan(128 * 1024);
  });
});
