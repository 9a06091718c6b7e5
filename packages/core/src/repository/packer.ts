/**
 * The packer: appends encrypted blobs to pack buffers (one open pack per blob type),
 * finishes a pack with its encrypted header when it reaches the target size, and
 * uploads finished packs with bounded parallelism.
 *
 * Memory is bounded: pack buffers come from a pool of at most `maxInFlight + 2`
 * buffers of `packSize` + {@link PACK_SLACK} + 64 KiB each (a blob that does not fit
 * finishes the open pack first; a blob larger than a buffer gets a pack of its own); a
 * buffer returns to the pool when its upload finishes. When none is free, `add` waits
 * (back-pressure to the caller). A tree pack starts in a small buffer of its own
 * ({@link SMALL_TREE_PACK}: most backups write far fewer tree bytes than a pack holds)
 * and moves into a pool buffer only when it outgrows it. So a backup holds at most
 * (maxInFlight + 2) × (packSize + 1.06 MiB) of pack buffers, and typically
 * (maxInFlight + 1) of them plus 1 MiB: 52 MiB with the defaults.
 */
import { OVERHEAD, encryptInto } from '../crypto/aead.js';
import { StorageError, type StorageErrorKind } from '../storage/errors.js';
import type { Storage } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { FLAG_TREE, ID_SIZE } from './index-table.js';
import { encodePackHeader, packTrailerSize, type PackEntry } from './pack-format.js';
import { PackHasher } from './pack-hasher.js';
import { UploadQueue } from './upload-queue.js';
import type { BlobType } from './types.js';

/** Room past the target size in a pack buffer, for the blob that crosses it. */
export const PACK_SLACK = 1024 * 1024;
/** The first buffer of a tree pack (not pooled); a tree pack that outgrows it moves to a pool buffer. */
export const SMALL_TREE_PACK = 1024 * 1024;

export interface PackerOptions {
  storage: Storage;
  encKey: Buffer;
  /** Target pack size in bytes. */
  packSize: number;
  /** Packs uploading at once (default 2). */
  maxInFlight?: number;
  /** Called after a pack is stored, before its buffer is reused. */
  onUploaded: (packId: string, entries: PackEntry[], size: number) => void;
}

interface OpenPack {
  type: BlobType;
  buf: Buffer;
  pooled: boolean;
  pos: number;
  entries: PackEntry[];
}

/**
 * Blob ids of packs kept in slabs of their own: a pack's entries live until an index file lists
 * them (tens of thousands of blobs with small files), and a 32-byte `Buffer.from` copy would each
 * pin an 8 KiB slab of Node's shared buffer pool, whatever else that slab held.
 */
export class IdSlabs {
  private slab: Buffer | undefined;
  private used = 0;
  private static readonly IDS = 256;

  /** A copy of the first {@link ID_SIZE} bytes of `id`. */
  copy(id: Uint8Array): Buffer {
    if (!this.slab || this.used + ID_SIZE > this.slab.byteLength) {
      this.slab = Buffer.allocUnsafeSlow(ID_SIZE * IdSlabs.IDS);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + ID_SIZE);
    out.set(id.subarray(0, ID_SIZE));
    this.used += ID_SIZE;
    return out;
  }
}

/** What the blob writer needs of a packer: the in-memory {@link Packer} or the file-backed `SpillPacker`. */
export interface PackWriter {
  /** Encrypt `payload` into the open pack of `type`; resolves with the stored size once the caller may reuse `payload`. */
  add(type: BlobType, id: Uint8Array, payload: Uint8Array, rawLength: number, compressed: boolean): Promise<number>;
  /** Append an already encrypted blob; resolves with its stored size once the caller may reuse `sealed`. */
  addSealed(type: BlobType, id: Uint8Array, sealed: Uint8Array, rawLength: number, compressed: boolean): Promise<number>;
  /** Finish the open packs and wait for every upload; rejects with the first failure. */
  flush(): Promise<void>;
  /** Drop open packs, wait for running uploads, free what is held. */
  close(): Promise<void>;
  /** True when an open pack holds blobs not yet uploaded, or uploads are running. */
  readonly busy: boolean;
  /** Packs being uploaded or queued. */
  readonly inFlight: number;
  /** Pack memory allocated so far. */
  readonly bufferBytes: number;
}

export class Packer implements PackWriter {
  private readonly storage: Storage;
  private readonly encKey: Buffer;
  private readonly packSize: number;
  private readonly capacity: number;
  private readonly maxBuffers: number;
  private readonly onUploaded: PackerOptions['onUploaded'];
  private readonly pool: Buffer[] = [];
  private buffersCreated = 0;
  private readonly open: Partial<Record<BlobType, OpenPack>> = {};
  private readonly uploads: UploadQueue;
  private lock: Promise<void> = Promise.resolve();
  private failure: unknown = undefined;
  private closed = false;
  private readonly hasher = new PackHasher();
  private readonly ids = new IdSlabs();

  constructor(opts: PackerOptions) {
    this.storage = opts.storage;
    this.encKey = opts.encKey;
    this.packSize = opts.packSize;
    // Room for the blob that crosses the target size, plus the header.
    this.capacity = opts.packSize + Math.min(PACK_SLACK, opts.packSize) + 64 * 1024;
    const maxInFlight = Math.max(1, opts.maxInFlight ?? 2);
    this.uploads = new UploadQueue(maxInFlight);
    this.maxBuffers = maxInFlight + 2;
    this.onUploaded = opts.onUploaded;
  }

  /** Bytes of pack buffers allocated so far (pooled ones). */
  get bufferBytes(): number {
    return this.buffersCreated * this.capacity;
  }

  /** Packs being uploaded or queued. */
  get inFlight(): number {
    return this.uploads.size;
  }

  /**
   * Encrypt `payload` into the open pack of `type`. Resolves with the stored size once
   * `payload` has been copied (encrypted) into the pack buffer; the caller may reuse it then.
   */
  add(type: BlobType, id: Uint8Array, payload: Uint8Array, rawLength: number, compressed: boolean): Promise<number> {
    const run = this.lock.then(() => this.addLocked(type, id, payload, rawLength, compressed));
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Append a blob that is already encrypted (`sealed` = nonce ‖ ciphertext ‖ tag, sealed by a file
   * saver thread with the same key): copied into the open pack of `type`. Resolves with the stored
   * size once copied; the caller may reuse `sealed` then.
   */
  addSealed(type: BlobType, id: Uint8Array, sealed: Uint8Array, rawLength: number, compressed: boolean): Promise<number> {
    const run = this.lock.then(() => this.addLocked(type, id, sealed, rawLength, compressed, true));
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async addLocked(type: BlobType, id: Uint8Array, payload: Uint8Array, rawLength: number, compressed: boolean, sealed = false): Promise<number> {
    this.throwIfFailed();
    if (this.closed) throw new Error('packer is closed');
    const need = sealed ? payload.byteLength : payload.byteLength + OVERHEAD;
    let pack = this.open[type];
    if (pack && pack.pos + need + packTrailerSize(pack.entries.length + 1) > pack.buf.byteLength) {
      if (!pack.pooled && pack.buf.byteLength < this.capacity && pack.pos + need + packTrailerSize(pack.entries.length + 1) <= this.capacity) {
        // A small tree pack outgrew its first buffer: move it into a pool buffer.
        const small = pack;
        const moved = await this.newPack(type, this.capacity);
        moved.buf.set(small.buf.subarray(0, small.pos));
        moved.pos = small.pos;
        moved.entries = small.entries;
        this.throwIfFailed();
        pack = moved;
      } else {
        this.finish(pack);
        pack = undefined;
      }
    }
    if (!pack) {
      pack = await this.newPack(type, need + packTrailerSize(1));
      this.throwIfFailed();
    }
    let written: number;
    if (sealed) {
      pack.buf.set(payload, pack.pos);
      written = payload.byteLength;
    } else {
      written = encryptInto(this.encKey, payload, pack.buf, pack.pos);
    }
    pack.entries.push({
      flags: (type === 'tree' ? FLAG_TREE : 0) | (compressed ? 2 : 0),
      id: this.ids.copy(id),
      offset: pack.pos,
      length: written,
      rawLength,
    });
    pack.pos += written;
    if (pack.pos >= this.packSize) this.finish(pack);
    return written;
  }

  /** Finish the open packs and wait until every pack is uploaded. Rejects with the first upload failure. */
  async flush(): Promise<void> {
    await this.lock;
    for (const t of ['data', 'tree'] as const) {
      const p = this.open[t];
      if (p) this.finish(p);
    }
    await this.uploads.idle();
    this.throwIfFailed();
  }

  /** True when an open pack holds blobs not yet uploaded, or uploads are running. */
  get busy(): boolean {
    return this.uploads.size > 0 || this.open.data !== undefined || this.open.tree !== undefined;
  }

  /** Drop open packs (their blobs are lost), wait for running uploads, free the pool. */
  async close(): Promise<void> {
    this.closed = true;
    await this.lock.catch(() => undefined);
    for (const t of ['data', 'tree'] as const) {
      const p = this.open[t];
      if (p) {
        delete this.open[t];
        this.release(p);
      }
    }
    await this.uploads.idle();
    this.pool.length = 0;
    await this.hasher.close();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async newPack(type: BlobType, minSize: number): Promise<OpenPack> {
    let pack: OpenPack;
    if (type === 'tree' && minSize <= SMALL_TREE_PACK && this.capacity > SMALL_TREE_PACK) {
      pack = { type, buf: Buffer.allocUnsafeSlow(SMALL_TREE_PACK), pooled: false, pos: 0, entries: [] };
    } else if (minSize > this.capacity) {
      // A blob larger than a pool buffer gets a pack of its own.
      pack = { type, buf: Buffer.allocUnsafeSlow(minSize), pooled: false, pos: 0, entries: [] };
    } else {
      for (;;) {
        const buf = this.pool.pop();
        if (buf) {
          pack = { type, buf, pooled: true, pos: 0, entries: [] };
          break;
        }
        if (this.buffersCreated < this.maxBuffers) {
          this.buffersCreated++;
          pack = { type, buf: Buffer.allocUnsafeSlow(this.capacity), pooled: true, pos: 0, entries: [] };
          break;
        }
        // Back-pressure: wait for an upload to return its buffer.
        await this.uploads.ended();
        this.throwIfFailed();
      }
    }
    this.open[type] = pack;
    return pack;
  }

  private release(pack: OpenPack): void {
    // A buffer lost to a failed hashing thread (detached) is not reused; a new one may be made.
    if (pack.pooled && pack.buf.byteLength === 0) this.buffersCreated--;
    else if (pack.pooled && !this.closed) this.pool.push(pack.buf);
  }

  /** Append the encrypted header and trailer, compute the pack id, queue the upload. */
  private finish(pack: OpenPack): void {
    delete this.open[pack.type];
    const header = encodePackHeader(pack.entries);
    const hlen = encryptInto(this.encKey, header, pack.buf, pack.pos);
    pack.pos += hlen;
    pack.buf.writeUInt32LE(hlen, pack.pos);
    pack.pos += 4;
    const length = pack.pos;
    // The pack's name, hashed on another thread while this one goes on.
    const hashed = this.hasher.hash(pack.buf, length);
    this.uploads.add(async () => {
      let id = '';
      try {
        const h = await hashed;
        id = h.id;
        pack.buf = h.buf;
        const bytes = pack.buf.subarray(0, length);
        if (this.failure === undefined) {
          await this.storage.save({ type: 'data', name: id }, bytes);
          this.onUploaded(id, pack.entries, bytes.byteLength);
        }
      } catch (err) {
        this.failure ??= packUploadError(this.storage, id, err);
      } finally {
        this.release(pack);
      }
    });
  }
}

/** The error of a failed pack upload, naming the pack (or "a pack", before it has a name) and the storage. */
export function packUploadError(storage: Storage, id: string, err: unknown): StorageError {
  const file = id ? handlePath({ type: 'data', name: id }) : 'a pack';
  return wrapStorageError(`uploading pack ${file} to ${storage.location} failed: ${(err as Error).message}`, err, file);
}

/**
 * Wrap a storage failure in a {@link StorageError} with more context, keeping the cause's kind
 * (also of a StorageError from another copy of core), so callers classify and report it as a storage error.
 */
export function wrapStorageError(message: string, cause: unknown, location: string): StorageError {
  const c = cause as { name?: unknown; kind?: unknown } | null;
  const kind: StorageErrorKind =
    cause instanceof StorageError ? cause.kind : c?.name === 'StorageError' && typeof c.kind === 'string' ? (c.kind as StorageErrorKind) : 'other';
  return new StorageError(message, { kind, location, cause });
}
