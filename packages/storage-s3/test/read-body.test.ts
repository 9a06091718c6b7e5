/** readBody, the S3 adapter's response reader, with and without a caller buffer (LoadOptions.into). */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StorageError } from '@kiwi-backup/core';
import { readBody } from '../src/read.js';

const bytes = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

/** A body that yields `data` in chunks of `size` bytes (fresh chunks, as a socket would). */
function body(data: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) chunks.push(Buffer.from(data.subarray(i, i + size)));
  return Readable.from(chunks);
}

describe('readBody', () => {
  it('a length above the caller\'s maxLength (a server that disagrees with its listing) is refused as integrity before a byte is read', async () => {
    const b = body(bytes(100), 10);
    const err = await readBody(b, 700_000_000, undefined, 's3://bucket/repo/index/ab', { maxLength: 512 << 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('integrity');
    expect((err as Error).message).toBe(`load s3://bucket/repo/index/ab: 700000000 bytes, more than the ${512 << 20} expected at most`);
    expect(b.destroyed).toBe(true);
    // Within it, the body is read.
    const data = bytes(5000);
    expect((await readBody(body(data, 700), data.length, undefined, 'x', { maxLength: 5000 })).equals(data)).toBe(true);
  });

  it('a length no Buffer can hold (a server that says a file has 5 GiB) is a StorageError naming the file, the body dropped', async () => {
    const b = body(bytes(100), 10);
    const err = await readBody(b, 5 * 2 ** 30, undefined, 's3://bucket/repo/index/ab').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/^load s3:\/\/bucket\/repo\/index\/ab: 5368709120 bytes are more than can be loaded at once/);
    expect(b.destroyed).toBe(true);
  });

  it('without a target, reads into a buffer of its own', async () => {
    const data = bytes(10_000);
    const got = await readBody(body(data, 777), data.length);
    expect(got.equals(data)).toBe(true);
  });

  it('fills a big enough target at offset 0 and returns a view of exactly the expected bytes', async () => {
    const data = bytes(10_000, 5);
    const target = Buffer.alloc(12_345, 0xee);
    const got = await readBody(body(data, 1000), data.length, target);
    expect(got.buffer).toBe(target.buffer);
    expect(got.byteOffset).toBe(target.byteOffset);
    expect(got.byteLength).toBe(10_000);
    expect(got.equals(data)).toBe(true);
    expect(target.subarray(10_000).every((b) => b === 0xee)).toBe(true);
    // A target of exactly the expected size works too.
    const exact = Buffer.alloc(10_000);
    const again = await readBody(body(data, 4096), data.length, exact);
    expect(again.buffer).toBe(exact.buffer);
    expect(again.equals(data)).toBe(true);
  });

  it('ignores a target shorter than the expected size, and never writes to it', async () => {
    const data = bytes(5000, 9);
    const target = Buffer.alloc(4999, 0xee);
    const got = await readBody(body(data, 1024), data.length, target);
    expect(got.buffer).not.toBe(target.buffer);
    expect(got.equals(data)).toBe(true);
    expect(target.every((b) => b === 0xee)).toBe(true);
  });

  it('a body longer than expected fails without writing past the expected bytes of the target', async () => {
    const data = bytes(3000, 3);
    const target = Buffer.alloc(4000, 0xee);
    const err = await readBody(body(data, 1000), 2500, target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe('received more than the expected 2500 bytes');
    expect(target.subarray(0, 2000).equals(data.subarray(0, 2000))).toBe(true);
    expect(target.subarray(2000).every((b) => b === 0xee)).toBe(true);
  });

  it('a body that ends early gives a short result (the load turns it into an error)', async () => {
    const data = bytes(3000, 4);
    const target = Buffer.alloc(4000, 0xee);
    const got = await readBody(body(data, 1000), 3500, target);
    expect(got.byteLength).toBe(3000);
    expect(got.equals(data)).toBe(true);
  });

  it('no body is an empty result', async () => {
    expect((await readBody(undefined, 0, Buffer.alloc(10))).byteLength).toBe(0);
  });
});
