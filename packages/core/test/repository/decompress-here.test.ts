/**
 * `decompressHere` (prune's repacking): compressed blobs larger than the inline limit are
 * decompressed on the calling thread, into reused output buffers, without starting the zstd
 * threads. In a file of its own: the zstd thread pool is per process and must not have been
 * started by another test before the first check.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/repository/errors.js';
import { MapStorage, newRepo, textish } from './helpers.js';

/** Threads of this process (Linux: /proc/self/task). */
const threads = () => readdirSync('/proc/self/task').length;
const linux = process.platform === 'linux';

describe('loadBlobs with decompressHere', () => {
  it('decompresses large compressed blobs on this thread, into reused outputs; the zstd threads start only without it', async () => {
    const storage = new MapStorage();
    const { repo } = await newRepo({ packSize: 512 * 1024 }, storage);
    // Compressible and over the 64 KiB inline limit: without decompressHere they go to the zstd threads.
    const blobs = Array.from({ length: 12 }, (_, i) => textish(200_000 + i * 1000, i + 1));
    const ids: string[] = [];
    for (const b of blobs) ids.push((await repo.saveBlob('data', b)).id);
    await repo.flush();
    expect(ids.every((id) => repo.lookupBlob('data', id)!.compressed)).toBe(true);

    const read = async (decompressHere: boolean) => {
      const got = new Map<string, Buffer>();
      const backing = new Set<ArrayBufferLike>();
      await repo.loadBlobs(
        'data',
        ids,
        async (id, data, error) => {
          expect(error).toBeUndefined();
          backing.add(data!.buffer);
          await new Promise((r) => setImmediate(r)); // still valid while the promise is pending
          got.set(id, Buffer.from(data!));
        },
        { transient: true, sequential: true, concurrency: 1, decompressHere },
      );
      ids.forEach((id, i) => expect(got.get(id)?.equals(blobs[i]!), `blob ${i}`).toBe(true));
      return backing.size;
    };

    const before = threads();
    // One read at a time, one blob at a time: the outputs come back to the pool and are reused.
    expect(await read(true)).toBeLessThanOrEqual(2);
    if (linux) expect(threads()).toBe(before);
    // The contrast, so that the check above can fail: without it the zstd threads start.
    await read(false);
    if (linux) expect(threads()).toBeGreaterThan(before);
    await repo.close();
  });

  it('a damaged compressed blob is an IntegrityError naming the blob, as on the zstd threads', async () => {
    const storage = new MapStorage();
    const { repo } = await newRepo({ packSize: 512 * 1024 }, storage);
    const { id } = await repo.saveBlob('data', textish(150_000, 7));
    await repo.flush();
    const loc = repo.lookupBlob('data', id)!;
    // A lying index: the recorded length is off, so the frame cannot decompress to it.
    const errors: Error[] = [];
    await repo.internals().reader.readMany(
      [{ ...loc, rawLength: loc.rawLength - 1 }],
      (_id, data, error) => {
        expect(data).toBeUndefined();
        errors.push(error!);
      },
      { transient: true, sequential: true, decompressHere: true },
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(IntegrityError);
    expect(errors[0]!.message).toContain(id);
    await repo.close();
  });
});
