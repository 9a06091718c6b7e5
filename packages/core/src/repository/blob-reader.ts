/**
 * Reading blobs out of packs: one blob by a ranged load, or many with few storage reads
 * (grouped by pack, nearby blobs fetched together). Every blob is authenticated,
 * decompressed to its recorded length and checked against its HMAC id before anyone sees it.
 */
import { BufferPool } from '../buffer-pool.js';
import type { RepositoryCache } from '../cache/repository-cache.js';
import { MAX_CACHED_PACK } from '../cache/repository-cache.js';
import { releaseOutput } from '../compression/decompress-pool.js';
import { decompress } from '../compression/zstd.js';
import { AuthenticationError } from '../crypto/aead.js';
import type { MasterKeys } from '../crypto/keys.js';
import { isTransientError } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { IntegrityError } from './errors.js';
import { ID_SIZE, idToBytes } from './index-table.js';
import { wrapStorageError } from './packer.js';
import { StoredBlobChecker, StoredBlobError } from './stored-blob-check.js';
import type { BlobId, BlobLocation } from './types.js';

/** Default gap bridged by one read in {@link BlobReader.loadMany}. */
export const DEFAULT_READ_GAP = 256 * 1024;
/** Default largest read of {@link BlobReader.loadMany} when the storage has no `preferredReadSize`. */
export const DEFAULT_MAX_READ = 4 * 1024 * 1024;

export interface LoadBlobsOptions {
  /** Blobs of one pack separated by at most this many bytes are read together (default 256 KiB). */
  maxGap?: number;
  /** Largest single ranged read in bytes (default: the storage's `preferredReadSize` clamped to 1–16 MiB, else 4 MiB; a larger blob is read alone). */
  maxRead?: number;
  /** Ranged reads in flight (default 4). */
  concurrency?: number;
  /**
   * The plaintexts handed to `onBlob` live in buffers reused for later blobs: each is valid
   * only until `onBlob` returns, or until the promise it returns settles. Spares a fresh
   * buffer per blob (and the page faults that come with it) when the caller only writes the
   * bytes somewhere. Default false (each plaintext is the caller's to keep).
   */
  transient?: boolean;
  /**
   * The caller needs neither the stored bytes (`onBlob`'s `stored` is then undefined) nor the read
   * buffer after `onBlob`: each blob is decrypted over its own stored bytes, so a read needs one
   * buffer instead of two (with `transient`; the restore's reads). Default false (callers that copy the
   * stored bytes into new packs).
   */
  inPlace?: boolean;
  /**
   * Open the blobs of one read one after another instead of all at once: a read then holds one
   * plaintext at a time (for callers whose memory should not grow with the read size).
   * Default false.
   */
  sequential?: boolean;
  /**
   * Decompress on this thread instead of the zstd threads (with `sequential`: for callers with little
   * else to do on the main thread, whom the zstd threads' isolates and buffers would cost more memory
   * than they save time; prune's repacking did this before it checked blobs without their plaintext,
   * see {@link BlobReader.checkStored}). Default false.
   */
  decompressHere?: boolean;
}

/**
 * Gets each blob's verified plaintext (`data`) or its error. `stored`, when the blob came from a
 * ranged read: its bytes as stored in the pack (nonce ‖ ciphertext ‖ tag), verified with `data`
 * and valid as long as `data` is (a caller may copy them into new packs as they are).
 */
export type OnBlob = (id: BlobId, data: Buffer | undefined, error?: Error, stored?: Uint8Array) => void | Promise<void>;

/** The largest read for a storage: its `preferredReadSize` clamped to 1–16 MiB, else {@link DEFAULT_MAX_READ}. */
export function maxReadFor(storage: Storage): number {
  const preferred = storage.preferredReadSize;
  if (preferred === undefined || !Number.isFinite(preferred)) return DEFAULT_MAX_READ;
  return Math.min(16 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(preferred)));
}

/** Run `fn` over `items` with at most `limit` running at once. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * {@link mapLimit} that also bounds the bytes in flight: an item of `sizeOf(item)` bytes starts only
 * while the items running hold at most `budget - size` bytes (one item alone always starts, however
 * large). For loads whose size a listing tells beforehand: eight index files at once, each of which
 * may be hundreds of MiB, must not all be in memory together.
 */
export async function mapLimitBytes<T, R>(items: readonly T[], limit: number, budget: number, sizeOf: (item: T) => number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  let held = 0;
  let waiting: Array<() => void> = [];
  return await mapLimit(items, limit, async (item, i) => {
    const size = Math.max(0, sizeOf(item) || 0);
    while (held > 0 && held + size > budget) await new Promise<void>((resolve) => waiting.push(resolve));
    held += size;
    try {
      return await fn(item, i);
    } finally {
      held -= size;
      const wake = waiting;
      waiting = [];
      for (const w of wake) w();
    }
  });
}

interface Range {
  pack: string;
  start: number;
  end: number;
  locs: BlobLocation[];
}

export class BlobReader {
  private readonly idScratch = Buffer.alloc(ID_SIZE);
  /** Checks stored bytes without their plaintext ({@link checkStored}). */
  private checker: StoredBlobChecker | undefined;
  /**
   * Reused buffers for ranged pack reads and decrypted-but-compressed blobs (never handed to
   * callers). Reads vary in size, so the pool allocates in power-of-two sizes from 1 MiB; with exact
   * sizes most reads of a restore allocated a fresh buffer (over 1 GiB for a 600 MiB repository).
   * At most 12 idle, 32 MiB together: keeping the larger ones, they would otherwise ratchet up to
   * 12 of the largest read ever made.
   */
  private readonly scratch = new BufferPool({ maxIdle: 12, sizeClassesFrom: 1 << 20, maxPooledSize: 32 << 20, maxIdleBytes: 32 << 20 });

  /**
   * @param onDamage told of every location found damaged: `pack` when the pack is missing or
   *   truncated (none of its blobs can be read), `blob` when only this blob failed to verify.
   */
  /** Tree packs being fetched into the cache, so that concurrent reads fetch each once. */
  private readonly fetching = new Map<string, Promise<Buffer | undefined>>();

  constructor(
    private readonly storage: Storage,
    private readonly keys: MasterKeys,
    private readonly onDamage: (loc: BlobLocation, scope: 'pack' | 'blob') => void = () => undefined,
    /** The metadata cache (remote repositories): tree blobs are read through it, their packs cached whole. */
    private readonly cache?: { get(): RepositoryCache | undefined; packSize(pack: string): number | undefined },
  ) {}

  /**
   * The stored bytes `[start, end)` of a tree pack from the cache; on a miss the whole pack is
   * fetched (once, however many reads want it) and cached. Undefined when the cache cannot help.
   */
  private async cachedRange(pack: string, start: number, end: number, refetch = false): Promise<Buffer | undefined> {
    const cache = this.cache?.get();
    // A cache turned off (disk full, permissions) would only make every tree read fetch its whole pack.
    if (!cache?.usable) return undefined;
    const hit = refetch ? undefined : await cache.readPack(pack, start, end - start);
    if (hit) return hit;
    const size = this.cache!.packSize(pack);
    if (size === undefined || size > MAX_CACHED_PACK) return undefined;
    let fetch = this.fetching.get(pack);
    if (!fetch) {
      fetch = (async () => {
        try {
          // (The size the index implies: a pack that grew in storage is not read past it.)
          const whole = await this.storage.load({ type: 'data', name: pack }, { offset: 0, length: size });
          await cache.putPack(pack, whole);
          return whole;
        } catch {
          return undefined; // the ordinary read path reports what is wrong
        } finally {
          this.fetching.delete(pack);
        }
      })();
      this.fetching.set(pack, fetch);
    }
    const whole = await fetch;
    return whole && whole.byteLength >= end ? whole.subarray(start, end) : undefined;
  }

  /** Open tree blobs from the cache; returns the locations it could not serve (read them from storage). */
  private async readTreesCached(locs: BlobLocation[], onBlob: OnBlob): Promise<BlobLocation[]> {
    const rest: BlobLocation[] = [];
    const byPack = new Map<string, BlobLocation[]>();
    for (const loc of locs) {
      const list = byPack.get(loc.pack);
      if (list) list.push(loc);
      else byPack.set(loc.pack, [loc]);
    }
    await mapLimit([...byPack], 4, async ([pack, group]) => {
      // A loop, not Math.min(...spread): a pack may hold any number of them, and past ~100,000
      // arguments a spread overflows the stack.
      let start = Infinity;
      let end = 0;
      for (const l of group) {
        if (l.offset < start) start = l.offset;
        if (l.offset + l.length > end) end = l.offset + l.length;
      }
      let bytes = await this.cachedRange(pack, start, end);
      let fresh = false;
      for (const loc of group) {
        let data: Buffer | undefined;
        for (;;) {
          if (!bytes) break;
          try {
            data = await this.openUnchecked(loc, bytes.subarray(loc.offset - start, loc.offset - start + loc.length));
            break;
          } catch {
            if (fresh) break; // damaged in storage too: the ordinary read path reports it
            // A damaged cache file: drop it, fetch the pack again (and cache it anew).
            await this.cache!.get()?.dropPack(pack);
            bytes = await this.cachedRange(pack, start, end, true);
            fresh = true;
          }
        }
        if (data) await onBlob(loc.id, data);
        else rest.push(loc);
      }
    });
    return rest;
  }

  /**
   * A buffer of at least `size` bytes from the reader's pool of read buffers, for callers that make
   * their own ranged reads (prune's repacking): they reuse what the tree reads left idle. Give it
   * back with {@link releaseBuffer} once nothing writes into it any more.
   */
  acquireBuffer(size: number): Buffer {
    return this.scratch.acquire(size);
  }

  releaseBuffer(buf: Buffer): void {
    this.scratch.release(buf);
  }

  /**
   * Keep at most `maxIdle` idle read buffers of `maxIdleBytes` together (the reader keeps up to 12 and
   * 32 MiB, for restores), until the returned function puts the limits back; with `drop`, that function
   * also drops the buffer {@link checkStored} decrypts into. For prune's repacking, which needs a few.
   */
  limitBuffers(maxIdle: number, maxIdleBytes: number): (drop?: boolean) => void {
    const before = this.scratch.setLimits({ maxIdle, maxIdleBytes });
    return (drop = false) => {
      if (drop) {
        this.scratch.setLimits({ maxIdle: 0, maxIdleBytes: 0 });
        this.checker = undefined;
      }
      this.scratch.setLimits(before);
    };
  }

  /** Read one blob at `loc` (a ranged load, or the cache for a tree), authenticated and verified. */
  async readAt(loc: BlobLocation, buffer?: Uint8Array): Promise<Buffer> {
    if (loc.type === 'tree' && this.cache?.get()) {
      let hit: Buffer | undefined;
      await this.readTreesCached([loc], (_id, data) => {
        hit = data;
      });
      if (hit) return hit;
    }
    let bytes: Buffer;
    try {
      bytes = await this.storage.load({ type: 'data', name: loc.pack }, { offset: loc.offset, length: loc.length });
    } catch (err) {
      throw await this.loadError(loc, err);
    }
    return this.open(loc, bytes, buffer);
  }

  /**
   * Read the blobs at `locs` with few storage reads (see {@link Repository.loadBlobs}); `onBlob`
   * gets each one's verified plaintext or its error, in pack order unless `sequential` is off and
   * a blob's decompression or (large blobs) decryption and id check on the threadpool end out of turn.
   */
  async readMany(locs: BlobLocation[], onBlob: OnBlob, opts: LoadBlobsOptions = {}): Promise<void> {
    if (this.cache?.get() && locs.some((l) => l.type === 'tree')) {
      const trees = locs.filter((l) => l.type === 'tree');
      const others = locs.filter((l) => l.type !== 'tree');
      locs = others.concat(await this.readTreesCached(trees, onBlob));
      if (locs.length === 0) return;
    }
    const maxGap = opts.maxGap ?? DEFAULT_READ_GAP;
    const maxRead = opts.maxRead ?? maxReadFor(this.storage);
    locs.sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.offset - b.offset));
    const ranges: Range[] = [];
    for (const loc of locs) {
      const last = ranges[ranges.length - 1];
      const end = loc.offset + loc.length;
      if (last && last.pack === loc.pack && loc.offset >= last.end && loc.offset - last.end <= maxGap && end - last.start <= maxRead) {
        last.end = end;
        last.locs.push(loc);
      } else {
        ranges.push({ pack: loc.pack, start: loc.offset, end, locs: [loc] });
      }
    }
    const transient = opts.transient === true;
    await mapLimit(ranges, Math.max(1, opts.concurrency ?? 4), async (r) => {
      let bytes: Buffer | undefined;
      // The stored bytes are only read through (decrypted elsewhere): read them into a reused buffer.
      const into = this.scratch.acquire(r.end - r.start);
      try {
        try {
          bytes = await this.storage.load({ type: 'data', name: r.pack }, { offset: r.start, length: r.end - r.start, into });
          if (bytes.byteLength !== r.end - r.start) bytes = undefined;
        } catch (err) {
          // A missing pack or an unreachable store (after the retry layer gave up) fails every blob
          // of the range the same way; reading them one by one would only repeat the retries.
          if (this.storage.isNotFound(err) || isTransientError(err)) {
            for (const loc of r.locs) await onBlob(loc.id, undefined, await this.loadError(loc, err));
            return;
          }
          bytes = undefined; // other failures (a short pack): retried blob by blob below, which names the damage
        }
        // `inPlace` and the bytes landed in our own read buffer: each blob is decrypted where it lies.
        await this.openRange(r, bytes, transient, onBlob, opts.inPlace === true && bytes !== undefined && bytes.buffer === into.buffer, opts.sequential === true, opts.decompressHere === true);
      } finally {
        this.scratch.release(into);
      }
    });
  }

  /** The blobs of one ranged read (`bytes`, or undefined to read them one by one) handed to `onBlob`. */
  private async openRange(r: Range, bytes: Buffer | undefined, transient: boolean, onBlob: OnBlob, inPlace = false, sequential = false, here = false): Promise<void> {
    if (!bytes) {
      for (const loc of r.locs) {
        let data: Buffer | undefined;
        let error: Error | undefined;
        try {
          data = await this.readAt(loc);
        } catch (err) {
          error = err as Error;
        }
        await onBlob(loc.id, data, error);
      }
      return;
    }
    const whole = bytes;
    // Compressed blobs are decrypted into one reused scratch buffer (each at its own offset),
    // then decompressed in parallel on the thread pool; with `transient`, uncompressed ones
    // are decrypted into it too (a blob's plaintext is never longer than its stored form).
    // `inPlace`: the read buffer is ours and each blob's stored bytes are read once, so the blob is
    // decrypted over them (the plaintext starts where its nonce was: AES-GCM's output for each
    // slice is copied in after that slice was read, 12 bytes behind the read position), and no
    // second buffer the size of the read is needed.
    const scratch = inPlace ? whole : transient || r.locs.some((l) => l.compressed) ? this.scratch.acquire(r.end - r.start) : undefined;
    try {
      const each = async (loc: BlobLocation): Promise<void> => {
          let data: Buffer | undefined;
          let error: Error | undefined;
          const off = loc.offset - r.start;
          const slot = scratch?.subarray(off, off + loc.length);
          const stored = whole.subarray(off, off + loc.length);
          try {
            data = await this.open(loc, stored, transient && !loc.compressed ? slot : undefined, slot, transient, here);
          } catch (err) {
            error = err as Error;
          }
          // Decrypted in place, the stored bytes are gone: they are not handed on.
          await onBlob(loc.id, data, error, data && !inPlace ? stored : undefined);
          // A transient plaintext is the caller's only until `onBlob` settles: a pooled output goes back.
          if (transient && data && loc.compressed) releaseOutput(data);
      };
      if (sequential) for (const loc of r.locs) await each(loc);
      else {
        // Every blob settles before the buffers go back to the pool (below, and the read buffer in
        // readMany): one failing `onBlob` must not free memory that another blob's decryption, on
        // the threadpool, still writes into.
        const settled = await Promise.allSettled(r.locs.map(each));
        const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
        if (failed) throw failed.reason;
      }
    } finally {
      if (scratch && scratch !== whole) this.scratch.release(scratch);
    }
  }

  /** The error for a blob whose stored bytes could not be read: a missing or short pack is damage, the rest I/O. */
  async loadError(loc: BlobLocation, err: unknown): Promise<Error> {
    const file = handlePath({ type: 'data', name: loc.pack });
    const where = { file, blobId: loc.id };
    if (this.storage.isNotFound(err)) {
      this.onDamage(loc, 'pack');
      return new IntegrityError(`${loc.type} blob ${loc.id}: its pack ${file} is missing`, { ...where, cause: err });
    }
    if (!isTransientError(err)) {
      const size = await this.storage.stat({ type: 'data', name: loc.pack }).then((i) => i.size, () => undefined);
      if (size !== undefined && size < loc.offset + loc.length) {
        this.onDamage(loc, 'pack');
        return new IntegrityError(`${loc.type} blob ${loc.id}: its pack ${file} is truncated (${size} bytes, the blob ends at ${loc.offset + loc.length})`, {
          ...where,
          cause: err,
        });
      }
    }
    return wrapStorageError(`reading ${loc.type} blob ${loc.id} from ${file} (offset ${loc.offset}, ${loc.length} bytes) failed: ${(err as Error).message}`, err, file);
  }

  /**
   * Authenticate, decompress and verify one blob's stored bytes. `buffer`: where to put an
   * uncompressed plaintext (the result is then a view of it); `scratchSlot`: a caller-owned
   * area for a compressed blob's decrypted intermediate.
   */
  async open(loc: BlobLocation, bytes: Uint8Array, buffer?: Uint8Array, scratchSlot?: Buffer, reuseOutput = false, decompressHere = false): Promise<Buffer> {
    try {
      return await this.openUnchecked(loc, bytes, buffer, scratchSlot, reuseOutput, decompressHere);
    } catch (err) {
      if ((err as Error).name === 'IntegrityError') this.onDamage(loc, 'blob');
      throw err;
    }
  }

  /**
   * Verify a blob's stored bytes as {@link open} does, without holding its plaintext (see
   * stored-blob-check.ts): for copying blobs as stored (prune's repacking). Damage fails with an
   * {@link IntegrityError} naming the blob and the pack, and is reported to `onDamage`.
   */
  async checkStored(loc: BlobLocation, bytes: Uint8Array): Promise<void> {
    const file = handlePath({ type: 'data', name: loc.pack });
    const where = { file, blobId: loc.id };
    let error: IntegrityError;
    try {
      if (bytes.byteLength !== loc.length) {
        throw new StoredBlobError(`read ${bytes.byteLength} bytes, expected ${loc.length} (pack truncated?)`, 'length');
      }
      const facts = { compressed: loc.compressed, rawLength: loc.rawLength, id: idToBytes(loc.id, this.idScratch) };
      if ((this.checker ??= new StoredBlobChecker(this.keys)).check(bytes, facts) === 'whole') await this.open(loc, bytes, undefined, undefined, false, true);
      return;
    } catch (err) {
      if (err instanceof AuthenticationError) {
        error = new IntegrityError(`${loc.type} blob ${loc.id} in ${file}: authentication failed (the pack is damaged)`, { ...where, cause: err });
      } else if (err instanceof StoredBlobError) {
        error = new IntegrityError(`${loc.type} blob ${loc.id} in ${file}: ${err.message}`, { ...where, cause: err });
      } else throw err; // open()'s own errors (it reported its damage), or a failure of the crypto itself
    }
    this.onDamage(loc, 'blob');
    throw error;
  }

  private async openUnchecked(loc: BlobLocation, bytes: Uint8Array, buffer?: Uint8Array, scratchSlot?: Buffer, reuseOutput = false, decompressHere = false): Promise<Buffer> {
    const file = handlePath({ type: 'data', name: loc.pack });
    const where = { file, blobId: loc.id };
    if (bytes.byteLength !== loc.length) {
      throw new IntegrityError(`${loc.type} blob ${loc.id} in ${file}: read ${bytes.byteLength} bytes, expected ${loc.length} (pack truncated?)`, where);
    }
    let plain: Buffer;
    // A compressed blob's decrypted form is only an intermediate: decrypt it into a reused scratch buffer.
    const slot = loc.compressed ? scratchSlot : undefined;
    const scratch = loc.compressed && !slot ? this.scratch.acquire(bytes.byteLength) : undefined;
    try {
      try {
        // Large blobs on the threadpool: `bytes` and the target stay ours until this settles (the
        // scratch is released below, after it; the caller's buffers after this method returns).
        // Trees stay on this thread, as their decompression does: listings, diffs and backups read
        // them ahead in batches, which a threadpool hop per tree would break up.
        plain = loc.type === 'tree' ? this.keys.decrypt(bytes, slot ?? scratch ?? buffer) : await this.keys.decryptAsync(bytes, slot ?? scratch ?? buffer);
      } catch (err) {
        // Only a failed tag is damage; a failure of the crypto itself (the native call's OpenSSL or
        // memory) says nothing about the pack and must not mark it damaged.
        if (!(err instanceof AuthenticationError)) throw new Error(`${loc.type} blob ${loc.id} in ${file}: decryption failed: ${(err as Error).message}`, { cause: err });
        throw new IntegrityError(`${loc.type} blob ${loc.id} in ${file}: authentication failed (the pack is damaged)`, { ...where, cause: err });
      }
      if (loc.compressed) {
        try {
          // Trees (at most MAX_TREE_BLOB_SIZE) on this thread: listings, diffs and backups read
          // thousands, with nothing else to do meanwhile.
          plain = await decompress(plain, { exact: loc.rawLength, here: loc.type === 'tree' || decompressHere }, { reuse: reuseOutput });
        } catch (err) {
          throw new IntegrityError(`${loc.type} blob ${loc.id} in ${file}: ${(err as Error).message}`, { ...where, cause: err });
        }
      }
    } finally {
      if (scratch) this.scratch.release(scratch);
    }
    if (!loc.compressed && plain.byteLength !== loc.rawLength) {
      throw new IntegrityError(`${loc.type} blob ${loc.id} in ${file}: ${plain.byteLength} bytes, index says ${loc.rawLength}`, where);
    }
    const actual = loc.type === 'tree' ? this.keys.blobIdBytes(plain) : await this.keys.blobIdBytesAsync(plain);
    if (!actual.equals(idToBytes(loc.id, this.idScratch))) {
      throw new IntegrityError(`${loc.type} blob ${loc.id} in ${file}: content does not match its id (got ${actual.toString('hex')})`, where);
    }
    return plain;
  }
}
