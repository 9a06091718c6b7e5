/**
 * Large blobs (at or above the offload threshold, at its default) are decrypted and verified on the
 * threadpool: every read path (loadBlob, loadBlobs with and without `transient`/`inPlace`,
 * check --read-data) returns the same bytes, and refuses the same damage with the same errors,
 * as the main-thread path.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cryptoOffloadAvailable, cryptoOffloadStats, setCryptoOffloadThreshold } from '../../src/crypto/offload.js';
import { IntegrityError } from '../../src/repository/errors.js';
import { Repository } from '../../src/repository/repository.js';
import type { Handle, LoadOptions } from '../../src/storage/types.js';
import { handlePath, loadTarget } from '../../src/storage/types.js';
import { HostileRepo } from '../../src/testing/hostile.js';
import { FAST_KDF, MapStorage, newRepo, quietLogger, random, textish } from './helpers.js';

const KiB = 1024;
const native = cryptoOffloadAvailable();
if (process.env.CI === 'true' && process.platform !== 'win32' && !native) throw new Error('under CI the native crypto offload must be available');

/** A MapStorage that reads ranged loads into the caller's `into` (as the local storage does): the reads are then decrypted in place. */
class IntoStorage extends MapStorage {
  intoLoads = 0;
  override async load(handle: Handle, options: LoadOptions = {}): Promise<Buffer> {
    const bytes = await super.load(handle, options);
    const target = loadTarget(options);
    if (!target) return bytes;
    this.intoLoads++;
    bytes.copy(target);
    return target;
  }
}

afterEach(() => setCryptoOffloadThreshold(undefined));

/** Blobs of both kinds and several sizes, all but the first at or above 64 KiB. */
async function filled() {
  const storage = new IntoStorage();
  const { repo } = await newRepo({ packSize: 4 * 1024 * KiB }, storage);
  const blobs = [random(3000), random(64 * KiB), textish(64 * KiB + 1, 3), random(300 * KiB + 7), textish(700 * KiB, 5), random(1200 * KiB + 3)];
  const ids: string[] = [];
  for (const b of blobs) ids.push((await repo.saveBlob('data', b)).id);
  await repo.flush();
  await repo.close();
  const reopen = () => Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
  return { storage, blobs, ids, reopen };
}

type Got = Map<string, { data?: Buffer; error?: Error }>;
function collect(): { got: Got; onBlob: (id: string, data: Buffer | undefined, error?: Error) => void } {
  const got: Got = new Map();
  return { got, onBlob: (id, data, error) => void got.set(id, data ? { data: Buffer.from(data) } : { error: error! }) };
}

const modes = [{}, { transient: true }, { transient: true, inPlace: true }, { transient: true, inPlace: true, sequential: true }, { sequential: true }];

describe.skipIf(!native)('large blobs through the threadpool', () => {
  it('every read path returns each blob exactly, with the large ones offloaded', async () => {
    const { storage, blobs, ids, reopen } = await filled();
    const repo = await reopen();
    await repo.loadIndex();
    const before = cryptoOffloadStats();
    for (let i = 0; i < ids.length; i++) expect((await repo.loadBlob('data', ids[i]!)).equals(blobs[i]!), `loadBlob ${i}`).toBe(true);
    for (const opts of modes) {
      const { got, onBlob } = collect();
      await repo.loadBlobs('data', ids, onBlob, opts);
      ids.forEach((id, i) => expect(got.get(id)?.data?.equals(blobs[i]!), `${JSON.stringify(opts)} blob ${i}`).toBe(true));
    }
    expect(storage.intoLoads).toBeGreaterThan(0);
    const after = cryptoOffloadStats();
    // 6 read paths: each computes the ids of the 5 large plaintexts on the threadpool, and decrypts
    // there at least the 3 random ones (stored uncompressed; the compressed textish ones may be small).
    expect(after.macs - before.macs).toBeGreaterThanOrEqual(5 * 6);
    expect(after.decrypts - before.decrypts).toBeGreaterThanOrEqual(3 * 6);
    const report = await repo.check({ readData: true });
    expect(report.errors).toEqual([]);
    await repo.close();
  });

  for (const where of ['nonce', 'first ciphertext byte', 'middle', 'last ciphertext byte', 'tag'] as const) {
    it(`a flipped bit in a large blob's ${where}: that blob fails authentication on every path, the others are read`, async () => {
      const { storage, blobs, ids, reopen } = await filled();
      const victim = 5; // 1.2 MiB of random bytes, stored uncompressed
      let repo = await reopen();
      await repo.loadIndex();
      const loc = repo.lookupBlob('data', ids[victim]!)!;
      await repo.close();
      const pos = { nonce: 3, 'first ciphertext byte': 12, middle: 12 + (loc.length >> 1), 'last ciphertext byte': loc.length - 17, tag: loc.length - 1 }[where];
      const file = handlePath({ type: 'data', name: loc.pack });
      storage.files.get(file)![loc.offset + pos]! ^= 0x04;
      const expected = `data blob ${ids[victim]} in ${file}: authentication failed (the pack is damaged)`;
      for (const opts of modes) {
        repo = await reopen();
        const { got, onBlob } = collect();
        await repo.loadBlobs('data', ids, onBlob, opts);
        ids.forEach((id, i) => {
          if (i === victim) {
            expect(got.get(id)?.error, JSON.stringify(opts)).toBeInstanceOf(IntegrityError);
            expect(got.get(id)!.error!.message, JSON.stringify(opts)).toBe(expected);
          } else expect(got.get(id)?.data?.equals(blobs[i]!), `${JSON.stringify(opts)} blob ${i}`).toBe(true);
        });
        await repo.close();
      }
      repo = await reopen();
      const err = await repo.loadBlob('data', ids[victim]!).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      await repo.close();
      repo = await reopen();
      const report = await repo.check({ readData: true });
      expect(report.errors.map((e) => e.message)).toContain(expected);
      await repo.close();
    });
  }

  it('a large blob whose content does not match its id (authentic bytes, wrong id) is refused with the id error', async () => {
    const { repo, storage } = await newRepo({}, new IntoStorage());
    await repo.close();
    const h = await HostileRepo.open(storage, 'secret');
    const real = random(200 * KiB);
    const claimed = h.blobId(random(10));
    const ok = random(100 * KiB);
    const written = await h.writePack([
      { type: 'data', plaintext: ok },
      { type: 'data', plaintext: real, id: claimed },
    ]);
    const reopen = () => Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
    const file = handlePath({ type: 'data', name: written.pack });
    const expected = `data blob ${claimed} in ${file}: content does not match its id (got ${h.blobId(real)})`;
    const before = cryptoOffloadStats();
    for (const opts of modes) {
      const r = await reopen();
      const { got, onBlob } = collect();
      await r.loadBlobs('data', written.ids, onBlob, opts);
      expect(got.get(written.ids[0]!)?.data?.equals(ok)).toBe(true);
      expect(got.get(claimed)?.error).toBeInstanceOf(IntegrityError);
      await r.close();
    }
    const r = await reopen();
    const report = await r.check({ readData: true });
    expect(report.errors.map((e) => e.message)).toContain(expected);
    await r.close();
    expect(cryptoOffloadStats().macs - before.macs).toBeGreaterThanOrEqual(2 * modes.length);
  });

  it('a failing onBlob does not release the read buffers while other blobs of the read are still on the threadpool', async () => {
    const { blobs, ids, reopen } = await filled();
    setCryptoOffloadThreshold(0);
    const repo = await reopen();
    await repo.loadIndex();
    for (let round = 0; round < 3; round++) {
      const err = await repo
        .loadBlobs(
          'data',
          ids,
          (id) => {
            if (id === ids[1]) throw new Error('consumer failed');
          },
          { transient: true, inPlace: true },
        )
        .catch((e: unknown) => e);
      expect((err as Error).message).toBe('consumer failed');
      // The buffers went back to the pool after every blob settled: the next reads are exact.
      const { got, onBlob } = collect();
      await repo.loadBlobs('data', ids, onBlob, { transient: true, inPlace: true });
      ids.forEach((id, i) => expect(got.get(id)?.data?.equals(blobs[i]!), `round ${round} blob ${i}`).toBe(true));
    }
    await repo.close();
  });
});

describe('a failure of the decryption itself (not a failed tag)', () => {
  it('is an error naming the blob, not damage: the pack is not marked and the next read succeeds', async () => {
    const { blobs, ids, reopen } = await filled();
    const repo = await reopen();
    await repo.loadIndex();
    const keys = repo.internals().keys;
    const real = keys.decryptAsync.bind(keys);
    keys.decryptAsync = () => Promise.reject(new Error('native-fs: OpenSSL\'s EVP_CIPHER_CTX_new failed'));
    const err = await repo.loadBlob('data', ids[3]!).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(IntegrityError);
    expect(err!.message).toContain(ids[3]!);
    expect(err!.message).toMatch(/decryption failed: native-fs: OpenSSL's EVP_CIPHER_CTX_new failed/);
    keys.decryptAsync = real;
    expect((await repo.loadBlob('data', ids[3]!)).equals(blobs[3]!)).toBe(true);
    await repo.close();
  });
});
