import { describe, expect, it } from 'vitest';
import type { LoadOptions, Handle } from '../../src/storage/types.js';
import { BlobNotFoundError, IntegrityError } from '../../src/repository/errors.js';
import { MapStorage, newRepo, random, textish } from './helpers.js';

/** MapStorage that counts data loads and can fail some of them. */
class CountingStorage extends MapStorage {
  dataLoads: Array<{ name: string; offset: number; length: number; into?: Buffer }> = [];
  preferredReadSize?: number;
  failRanged?: (name: string, length: number) => boolean;
  /** Every data load fails with this error (e.g. a dropped connection). */
  failAll?: Error;
  override async load(handle: Handle, options: LoadOptions = {}): Promise<Buffer> {
    if (handle.type === 'data') {
      const length = options.length ?? -1;
      this.dataLoads.push({ name: handle.name, offset: options.offset ?? 0, length, ...(options.into ? { into: options.into } : {}) });
      if (this.failRanged?.(handle.name, length)) throw new Error('simulated read failure');
      if (this.failAll) throw this.failAll;
    }
    return super.load(handle, options);
  }
}

async function filled(count: number, packSize = 64 * 1024) {
  const storage = new CountingStorage();
  const { repo } = await newRepo({ packSize }, storage);
  const blobs = Array.from({ length: count }, (_, i) => (i % 3 === 0 ? random(3000 + i) : textish(5000 + i * 7, i + 1)));
  const ids: string[] = [];
  for (const b of blobs) ids.push((await repo.saveBlob('data', b)).id);
  await repo.flush();
  storage.dataLoads = [];
  return { repo, storage, blobs, ids };
}

function collect() {
  const got = new Map<string, { data?: Buffer; error?: Error }>();
  const onBlob = (id: string, data: Buffer | undefined, error?: Error) => {
    expect(got.has(id)).toBe(false); // once per id
    got.set(id, data ? { data: Buffer.from(data) } : { error: error! });
  };
  return { got, onBlob };
}

describe('Repository.loadBlobs', () => {
  it('loads many blobs of several packs with one ranged read per pack, verified', async () => {
    const { repo, storage, blobs, ids } = await filled(60, 16 * 1024);
    const packs = new Set(ids.map((id) => repo.lookupBlob('data', id)!.pack));
    expect(packs.size).toBeGreaterThan(2);
    const { got, onBlob } = collect();
    // shuffled, with a duplicate id
    const order = [...ids].reverse();
    order.push(ids[5]!);
    await repo.loadBlobs('data', order, onBlob);
    expect(got.size).toBe(ids.length);
    ids.forEach((id, i) => expect(got.get(id)?.data?.equals(blobs[i]!)).toBe(true));
    expect(storage.dataLoads.length).toBe(packs.size);
    await repo.close();
  });

  it('reads up to the storage\'s preferredReadSize (clamped to 1–16 MiB), 4 MiB without one; an explicit maxRead wins', async () => {
    const MiB = 1024 * 1024;
    // 24 MiB in 96 blobs of 256 KiB in one pack, read whole: the longest read shows the limit.
    const storage = new CountingStorage();
    const { repo } = await newRepo({ packSize: 32 * MiB }, storage);
    const ids: string[] = [];
    for (let i = 0; i < 96; i++) ids.push((await repo.saveBlob('data', random(256 * 1024))).id);
    await repo.flush();
    const cases: Array<[number | undefined, number | undefined, number]> = [
      [undefined, undefined, 4 * MiB],
      [2 * MiB, undefined, 2 * MiB],
      [100 * MiB, undefined, 16 * MiB],
      [1000, undefined, 1 * MiB],
      [8 * MiB, 512 * 1024, 512 * 1024],
    ];
    for (const [preferred, explicit, limit] of cases) {
      storage.preferredReadSize = preferred;
      storage.dataLoads = [];
      await repo.loadBlobs('data', ids, collect().onBlob, explicit !== undefined ? { maxRead: explicit } : {});
      const longest = Math.max(...storage.dataLoads.map((l) => l.length));
      expect(longest, `preferred ${preferred}, explicit ${explicit}`).toBeLessThanOrEqual(limit);
      expect(longest, `preferred ${preferred}, explicit ${explicit}`).toBeGreaterThan(limit - 300 * 1024);
    }
    await repo.close();
  });

  it('splits reads at maxRead and at gaps larger than maxGap', async () => {
    const { repo, storage, ids } = await filled(30, 1024 * 1024);
    const { onBlob } = collect();
    const locs = ids.map((id) => repo.lookupBlob('data', id)!);
    expect(new Set(locs.map((l) => l.pack)).size).toBe(1);
    const total = locs.reduce((a, l) => a + l.length, 0);
    const maxRead = Math.ceil(total / 4);
    await repo.loadBlobs('data', ids, onBlob, { maxRead });
    expect(storage.dataLoads.length).toBeGreaterThanOrEqual(4);
    for (const r of storage.dataLoads) expect(r.length).toBeLessThanOrEqual(maxRead);
    storage.dataLoads = [];
    // every other blob, gaps not bridged
    await repo.loadBlobs('data', ids.filter((_, i) => i % 2 === 0), collect().onBlob, { maxGap: 0 });
    expect(storage.dataLoads.length).toBe(15);
    storage.dataLoads = [];
    await repo.loadBlobs('data', ids.filter((_, i) => i % 2 === 0), collect().onBlob);
    expect(storage.dataLoads.length).toBe(1);
    await repo.close();
  });

  it('fails only the damaged blob of a read, naming blob and pack; unknown ids fail with BlobNotFoundError', async () => {
    const { repo, storage, blobs, ids } = await filled(12, 1024 * 1024);
    const bad = ids[4]!;
    const loc = repo.lookupBlob('data', bad)!;
    const path = `data/${loc.pack.slice(0, 2)}/${loc.pack}`;
    storage.files.get(path)![loc.offset + 30]! ^= 0x01;
    const unknown = 'ab'.repeat(32);
    const { got, onBlob } = collect();
    await repo.loadBlobs('data', [...ids, unknown], onBlob);
    expect(got.get(unknown)?.error).toBeInstanceOf(BlobNotFoundError);
    const err = got.get(bad)?.error;
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as IntegrityError).file).toBe(path);
    expect(err!.message).toContain(bad);
    ids.forEach((id, i) => {
      if (id !== bad) expect(got.get(id)?.data?.equals(blobs[i]!)).toBe(true);
    });
    await repo.close();
  });

  it('retries a failed ranged read blob by blob and reports a truncated pack per blob', async () => {
    const { repo, storage, blobs, ids } = await filled(10, 1024 * 1024);
    storage.failRanged = (_name, length) => length > 20000; // the merged read fails, single blobs work
    const { got, onBlob } = collect();
    await repo.loadBlobs('data', ids, onBlob);
    ids.forEach((id, i) => expect(got.get(id)?.data?.equals(blobs[i]!)).toBe(true));
    // now truncate the pack after the 6th blob
    storage.failRanged = undefined;
    const cut = repo.lookupBlob('data', ids[6]!)!;
    const path = `data/${cut.pack.slice(0, 2)}/${cut.pack}`;
    storage.files.set(path, storage.files.get(path)!.subarray(0, cut.offset + 10));
    const second = collect();
    await repo.loadBlobs('data', ids, second.onBlob);
    ids.forEach((id, i) => {
      const r = second.got.get(id)!;
      if (i < 6) expect(r.data?.equals(blobs[i]!)).toBe(true);
      else {
        expect(r.error).toBeInstanceOf(IntegrityError);
        expect(r.error!.message).toMatch(/truncated/);
      }
    });
    await repo.close();
  });

  it('an unreachable store or a missing pack fails every blob of a read at once, without reading blob by blob', async () => {
    const { repo, storage, ids } = await filled(10, 1024 * 1024);
    storage.failAll = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const down = collect();
    await repo.loadBlobs('data', ids, down.onBlob);
    expect(storage.dataLoads.length).toBe(1);
    for (const id of ids) expect(down.got.get(id)?.error?.message).toMatch(/ECONNRESET/);
    storage.failAll = undefined;
    storage.dataLoads = [];
    const pack = repo.lookupBlob('data', ids[0]!)!.pack;
    storage.files.delete(`data/${pack.slice(0, 2)}/${pack}`);
    const gone = collect();
    await repo.loadBlobs('data', ids, gone.onBlob);
    expect(storage.dataLoads.length).toBe(1);
    for (const id of ids) {
      expect(gone.got.get(id)?.error).toBeInstanceOf(IntegrityError);
      expect(gone.got.get(id)?.error?.message).toMatch(/is missing/);
    }
    await repo.close();
  });

  it('with `sequential`, the blobs of one read reach onBlob one after another (at most `concurrency` at once)', async () => {
    const { repo, blobs, ids } = await filled(60, 64 * 1024);
    const peak = async (opts: { sequential?: boolean; concurrency: number }) => {
      let running = 0;
      let most = 0;
      const seen = new Map<string, Buffer>();
      await repo.loadBlobs(
        'data',
        ids,
        async (id, data) => {
          running++;
          most = Math.max(most, running);
          seen.set(id, Buffer.from(data!));
          await new Promise((r) => setTimeout(r, 2));
          running--;
        },
        { ...opts, transient: true },
      );
      ids.forEach((id, i) => expect(seen.get(id)?.equals(blobs[i]!)).toBe(true));
      return most;
    };
    expect(await peak({ concurrency: 1 })).toBeGreaterThan(1); // the default: a read's blobs all at once
    expect(await peak({ concurrency: 1, sequential: true })).toBe(1);
    expect(await peak({ concurrency: 2, sequential: true })).toBe(2);
    await repo.close();
  });

  it('flushes pending blobs first', async () => {
    const { repo } = await newRepo();
    const b = textish(10000);
    const { id } = await repo.saveBlob('data', b);
    const { got, onBlob } = collect();
    await repo.loadBlobs('data', [id], onBlob);
    expect(got.get(id)?.data?.equals(b)).toBe(true);
    await repo.close();
  });

  it('reads ranges into reused buffers; with `transient`, plaintexts live in reused buffers until onBlob settles', async () => {
    const storage = new CountingStorage();
    const { repo } = await newRepo({ packSize: 64 * 1024 }, storage);
    // Random blobs are stored uncompressed; 20 KB each, too big for Node's shared small-buffer pool.
    const blobs = Array.from({ length: 24 }, (_, i) => random(20_000 + i));
    const ids: string[] = [];
    for (const b of blobs) ids.push((await repo.saveBlob('data', b)).id);
    await repo.flush();
    storage.dataLoads = [];
    for (let round = 0; round < 2; round++) {
      const got = new Map<string, Buffer>();
      const backing = new Set<ArrayBufferLike>();
      await repo.loadBlobs(
        'data',
        ids,
        async (id, data) => {
          expect(data).toBeDefined();
          backing.add(data!.buffer);
          await new Promise((r) => setImmediate(r)); // still valid while the promise is pending
          got.set(id, Buffer.from(data!));
        },
        { transient: true },
      );
      ids.forEach((id, i) => expect(got.get(id)?.equals(blobs[i]!), `round ${round} blob ${i}`).toBe(true));
      // Decrypted into a few shared scratch buffers, not one buffer per blob.
      expect(backing.size).toBeLessThanOrEqual(new Set(ids.map((id) => repo.lookupBlob('data', id)!.pack)).size);
    }
    // Every ranged read was given a buffer to read into, and buffers were reused across reads.
    expect(storage.dataLoads.length).toBeGreaterThan(2);
    expect(storage.dataLoads.every((l) => l.into !== undefined && l.into.byteLength >= l.length)).toBe(true);
    expect(new Set(storage.dataLoads.map((l) => l.into)).size).toBeLessThan(storage.dataLoads.length);
    await repo.close();
  });

  it('reuses read buffers across reads of varying sizes (pooled in size classes, not exact sizes)', async () => {
    const storage = new CountingStorage();
    const { repo } = await newRepo({ packSize: 16 << 20 }, storage);
    // 64 KiB random (stored uncompressed) blobs in one pack, read with a growing maxRead, one read at a time:
    // each read is a little larger than any before it, which an exact-size pool can never serve.
    const ids: string[] = [];
    for (let i = 0; i < 48; i++) ids.push((await repo.saveBlob('data', random(64 << 10))).id);
    await repo.flush();
    storage.dataLoads = [];
    for (const maxRead of [1.1, 1.3, 1.5, 1.7, 1.9].map((m) => Math.floor(m * 2 ** 20))) {
      await repo.loadBlobs('data', ids, (_id, data) => void expect(data).toBeDefined(), { maxRead, concurrency: 1 });
    }
    const intos = new Set(storage.dataLoads.map((l) => l.into));
    expect(storage.dataLoads.length).toBeGreaterThan(10);
    expect(intos.size).toBe(1);
    await repo.close();
  });
});
