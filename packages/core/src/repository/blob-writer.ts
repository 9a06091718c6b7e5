/**
 * Writing blobs: dedup against the index and the open packs, compress, encrypt into a pack
 * buffer (the {@link Packer}), and after each pack upload add its blobs to the in-memory
 * index and, every `indexEvery` packs and at `flush`, write an index file for them. This keeps
 * the commit order of docs/repository-format.md §11: packs, then index files, then snapshots.
 */
import { compressIfSmaller } from '../compression/zstd.js';
import type { MasterKeys } from '../crypto/keys.js';
import type { Storage } from '../storage/types.js';
import { BlobIndex, ID_SIZE, idToBytes } from './index-table.js';
import { encodeIndexBody, type IndexedPack, type PackEntry } from './pack-format.js';
import { Packer, wrapStorageError, type PackWriter } from './packer.js';
import { SpillPacker } from './spill-packer.js';
import type { BlobId, BlobType, RepositoryConfig, SaveBlobResult } from './types.js';

/** During a long write, an index file is written after this many new packs... */
export const DEFAULT_INDEX_EVERY = 50;
/**
 * ...or this many new blobs, whichever comes first (as restic's 50,000): the entries of packs not
 * yet in an index file are held in memory, and packs of small files hold thousands of blobs each.
 */
export const DEFAULT_INDEX_BLOBS = 50_000;

export interface BlobWriterOptions {
  storage: Storage;
  keys: MasterKeys;
  config: RepositoryConfig;
  index: BlobIndex;
  uploadConcurrency?: number;
  indexEvery?: number;
  /** Write an index file once this many blobs are in packs no index file lists (default {@link DEFAULT_INDEX_BLOBS}). */
  indexBlobs?: number;
  /** Build packs in temporary files under this directory ('' = the system's) instead of memory: see {@link SpillPacker}. */
  spillPacksTo?: string;
  /** Store an index file body (compressed, encrypted, named); resolves with its name. */
  saveIndexFile(body: Uint8Array): Promise<string>;
}

function pendingKey(type: BlobType, id: string): string {
  return (type === 'tree' ? 't' : 'd') + id;
}

export class BlobWriter {
  private readonly opts: BlobWriterOptions;
  private readonly index: BlobIndex;
  private packer: PackWriter;
  /** Blobs encrypted into a pack that is not uploaded yet (or not yet in the index). */
  private readonly pending = new Set<string>();
  /** saveBlob calls not yet resolved (flush waits for them). */
  private readonly saving = new Set<Promise<unknown>>();
  private unindexed: IndexedPack[] = [];
  /** Blob entries in {@link unindexed}. */
  private unindexedBlobs = 0;
  private readonly indexWrites = new Set<Promise<void>>();
  private indexFailure: unknown = undefined;
  /** Blobs stored again because every indexed copy was missing or damaged (see saveBlob). */
  replacedBlobs = 0;

  constructor(opts: BlobWriterOptions) {
    this.opts = opts;
    this.index = opts.index;
    const packerOptions = {
      storage: opts.storage,
      encKey: opts.keys.encKey,
      packSize: opts.config.packSize,
      maxInFlight: opts.uploadConcurrency ?? 2,
      onUploaded: (packId: string, entries: PackEntry[]) => this.packUploaded(packId, entries),
    };
    this.packer =
      opts.spillPacksTo === undefined
        ? new Packer(packerOptions)
        : new SpillPacker({ ...packerOptions, ...(opts.spillPacksTo !== '' ? { dir: opts.spillPacksTo } : {}) });
  }

  /**
   * From now on, build packs in temporary files (under `dir`, default the system's temporary
   * directory) instead of memory; see {@link SpillPacker}. Only while nothing is being written.
   */
  async spillPacks(dir?: string): Promise<void> {
    if (this.packer instanceof SpillPacker) return;
    if (this.packer.busy || this.saving.size > 0) throw new Error('spillPacks: packs are being written');
    const old = this.packer;
    this.packer = new SpillPacker({
      storage: this.opts.storage,
      encKey: this.opts.keys.encKey,
      packSize: this.opts.config.packSize,
      maxInFlight: this.opts.uploadConcurrency ?? 2,
      onUploaded: (packId, entries) => this.packUploaded(packId, entries),
      ...(dir ? { dir } : {}),
    });
    await old.close();
  }

  /** True when the blob is pending in a pack being written. */
  isPending(type: BlobType, id: BlobId): boolean {
    return this.pending.has(pendingKey(type, id));
  }

  /** True while anything saved is not yet stored and indexed. */
  get busy(): boolean {
    return this.unstored || this.unindexed.length > 0 || this.indexWrites.size > 0;
  }

  /** True while a saved blob is not yet uploaded in a pack (or its index write is running). */
  get unstored(): boolean {
    return this.packer.busy || this.pending.size > 0 || this.indexWrites.size > 0;
  }

  /**
   * Packs found in storage that no readable index file lists, whose blobs were added to the
   * index from their headers: the next index file written lists them too.
   */
  adopt(packs: IndexedPack[]): void {
    // One by one: their number is the number of packs no index file lists (every pack, once the
    // index files are deleted), and a spread into push() overflows the stack past ~100,000 of them.
    for (const p of packs) {
      this.unindexed.push(p);
      this.unindexedBlobs += p.entries.length;
    }
  }

  stats(): { packsInFlight: number; bufferBytes: number; unindexedPacks: number; pendingBlobs: number } {
    return {
      packsInFlight: this.packer.inFlight,
      bufferBytes: this.packer.bufferBytes,
      unindexedPacks: this.unindexed.length,
      pendingBlobs: this.pending.size,
    };
  }

  /** See {@link Repository.saveBlob}. */
  async saveBlob(type: BlobType, data: Uint8Array, blobId: BlobId): Promise<SaveBlobResult> {
    const key = pendingKey(type, blobId);
    if (this.pending.has(key) || this.index.has(type, blobId)) return { id: blobId, known: true, storedSize: 0 };
    // Indexed, but every copy is missing or damaged: store it again (never deduplicate against it).
    const replaced = this.index.lost(type, blobId);
    const idBytes = idToBytes(blobId);
    this.pending.add(key);
    const work = (async () => {
      const compressed = await compressIfSmaller(data, this.opts.config.compression.level);
      return this.packer.add(type, idBytes, compressed ?? data, data.byteLength, compressed !== null);
    })();
    this.saving.add(work);
    try {
      const storedSize = await work;
      if (replaced) this.replacedBlobs++;
      return { id: blobId, known: false, storedSize, ...(replaced ? { replaced: true } : {}) };
    } catch (err) {
      this.pending.delete(key);
      throw err;
    } finally {
      this.saving.delete(work);
    }
  }

  /**
   * Claim a blob for storing: true when it is new (no usable copy indexed, none pending) — it is
   * then pending, and the caller stores it with {@link storeSealed} (or {@link unclaim}s it);
   * false when it is known. Synchronous, for the file savers' answers.
   */
  claim(type: BlobType, id: BlobId): boolean {
    const key = pendingKey(type, id);
    if (this.pending.has(key) || this.index.has(type, id)) return false;
    this.pending.add(key);
    if (this.index.lost(type, id)) this.replacedBlobs++;
    return true;
  }

  /** Give up a claim (storing it failed). */
  unclaim(type: BlobType, id: BlobId): void {
    this.pending.delete(pendingKey(type, id));
  }

  /** Store a claimed blob that a saver thread already compressed and encrypted. Resolves with its stored size once copied. */
  async storeSealed(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number, compressed: boolean): Promise<number> {
    const work = this.packer.addSealed(type, idToBytes(id), sealed, rawLength, compressed);
    this.saving.add(work);
    try {
      return await work;
    } catch (err) {
      this.pending.delete(pendingKey(type, id));
      throw err;
    } finally {
      this.saving.delete(work);
    }
  }

  /**
   * Finish and upload every open pack, then write index files for all packs not yet
   * indexed. After it resolves, every blob saved so far is stored and indexed.
   */
  async flush(): Promise<void> {
    while (this.saving.size > 0) await Promise.allSettled([...this.saving]);
    await this.packer.flush();
    if (this.unindexed.length > 0) this.startIndexWrite();
    while (this.indexWrites.size > 0) await Promise.allSettled([...this.indexWrites]);
    if (this.indexFailure !== undefined) throw this.indexFailure;
  }

  /** Drop open packs (their blobs are lost; the repository stays valid) and wait for running writes. */
  async close(): Promise<void> {
    await this.packer.close();
    while (this.indexWrites.size > 0) await Promise.allSettled([...this.indexWrites]);
  }

  private packUploaded(packId: string, entries: PackEntry[]): void {
    const packNo = this.index.packNumber(packId);
    for (const e of entries) {
      this.index.add(e.flags, e.id, 0, packNo, e.offset, e.length, e.rawLength);
      this.pending.delete(pendingKey(e.flags & 1 ? 'tree' : 'data', Buffer.from(e.id.buffer, e.id.byteOffset, ID_SIZE).toString('hex')));
    }
    this.unindexed.push({ id: packId, entries });
    this.unindexedBlobs += entries.length;
    if (this.unindexed.length >= (this.opts.indexEvery ?? DEFAULT_INDEX_EVERY) || this.unindexedBlobs >= (this.opts.indexBlobs ?? DEFAULT_INDEX_BLOBS)) this.startIndexWrite();
  }

  private startIndexWrite(): void {
    const packs = this.unindexed;
    this.unindexed = [];
    this.unindexedBlobs = 0;
    const p = this.opts.saveIndexFile(encodeIndexBody(packs)).then(
      () => undefined,
      (err: unknown) => {
        if (this.indexFailure === undefined) {
          const location = this.opts.storage.location;
          this.indexFailure = wrapStorageError(`writing an index file to ${location} failed: ${(err as Error).message}`, err, location);
        }
      },
    );
    this.indexWrites.add(p);
    void p.finally(() => this.indexWrites.delete(p));
  }
}
