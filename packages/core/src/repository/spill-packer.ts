/**
 * A packer that builds each pack in a temporary file instead of a pack-sized buffer, as restic
 * does: for maintenance (prune's repacking, copy), where memory matters more than the last bit of
 * speed. A pack then costs a small staging buffer, not `packSize` bytes; with the defaults a
 * prune that repacks holds about 2 MiB of pack memory instead of 4 × 17 MiB.
 *
 * It makes exactly the packs the in-memory {@link Packer} makes for the same blobs in the same
 * order (the same boundaries, header and bytes, hence the same names): blobs are encrypted into
 * the staging buffer, which is written to the file and hashed (SHA-256, the pack's name) each
 * time it fills. A finished pack is uploaded from its file, streamed through `Storage.saveFrom`
 * where the storage has it (else read back into memory and saved), then the file is removed.
 *
 * Temporary files go to a directory of their own (`kiwi-packs-<pid>-*`) under `dir` (default the
 * system's temporary directory, `TMPDIR`), removed by {@link close}. A killed process leaves it
 * behind, and the next spill packer under the same directory removes it (its process is gone);
 * nothing in it is needed: the repository never depends on a pack not yet uploaded.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, rm, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OVERHEAD, encryptInto } from '../crypto/aead.js';
import type { Storage } from '../storage/types.js';
import { saveFromSource } from '../storage/types.js';
import { FLAG_TREE } from './index-table.js';
import { encodePackHeader, packTrailerSize, type PackEntry } from './pack-format.js';
import { IdSlabs, PACK_SLACK, packUploadError, type PackWriter } from './packer.js';
import { UploadQueue } from './upload-queue.js';
import type { BlobType } from './types.js';

/** The staging buffer of each open pack: written to its file (and hashed) when full. */
const STAGE_SIZE = 1024 * 1024;
/** Chunks a finished pack is read back in for its upload. */
const READ_CHUNK = 256 * 1024;

/** The temporary directories' names: `kiwi-packs-<pid>-<random>`. */
const DIR_PREFIX = 'kiwi-packs-';

/** Whether process `pid` runs on this machine (a process of another user counts as running). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A failure to write a temporary pack file, naming it and where to point TMPDIR instead. */
function tempFileError(path: string, cause: unknown): Error {
  const code = (cause as NodeJS.ErrnoException).code;
  const why = code === 'ENOSPC' ? 'no space left on the device' : (cause as Error).message;
  return new Error(`cannot write the temporary pack file ${path}: ${why} (set TMPDIR to a directory with room for a few packs)`, { cause });
}

/** Remove the temporary directories of spill packers whose process is gone (killed ones); never fails. */
export async function removeStaleDirs(parent: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^kiwi-packs-(\d+)-[A-Za-z0-9]{6}$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    await rm(join(parent, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

export interface SpillPackerOptions {
  storage: Storage;
  encKey: Buffer;
  /** Target pack size in bytes. */
  packSize: number;
  /** Packs uploading at once (default 2). */
  maxInFlight?: number;
  /** Where the temporary directory goes (default `os.tmpdir()`). */
  dir?: string;
  /** Called after a pack is stored. */
  onUploaded: (packId: string, entries: PackEntry[], size: number) => void;
}

interface OpenPack {
  type: BlobType;
  path: string;
  fh: FileHandle;
  /** Bytes written to the file. */
  written: number;
  /** Bytes of the pack so far: written + staged. */
  pos: number;
  stage: Buffer;
  staged: number;
  hash: Hash;
  entries: PackEntry[];
}

export class SpillPacker implements PackWriter {
  private readonly storage: Storage;
  private readonly encKey: Buffer;
  private readonly packSize: number;
  private readonly capacity: number;
  private readonly maxInFlight: number;
  private readonly onUploaded: SpillPackerOptions['onUploaded'];
  private readonly parent: string;
  private dir: Promise<string> | undefined;
  private files = 0;
  private readonly open: Partial<Record<BlobType, OpenPack>> = {};
  /** Staging buffers of finished packs, for the next pack (at most one per type is in use). */
  private readonly stages: Buffer[] = [];
  /** For a blob larger than a staging buffer (grown as needed, kept). */
  private big: Buffer | undefined;
  private readonly uploads: UploadQueue;
  private lock: Promise<void> = Promise.resolve();
  private failure: unknown = undefined;
  private closed = false;
  private readonly ids = new IdSlabs();

  constructor(opts: SpillPackerOptions) {
    this.storage = opts.storage;
    this.encKey = opts.encKey;
    this.packSize = opts.packSize;
    // The same limits as the in-memory packer, so that both make the same packs.
    this.capacity = opts.packSize + Math.min(PACK_SLACK, opts.packSize) + 64 * 1024;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 2);
    this.uploads = new UploadQueue(this.maxInFlight);
    this.parent = opts.dir ?? tmpdir();
    this.onUploaded = opts.onUploaded;
  }

  /** Staging memory held (the packs themselves are on disk). */
  get bufferBytes(): number {
    return (this.stages.length + (this.open.data ? 1 : 0) + (this.open.tree ? 1 : 0)) * STAGE_SIZE + (this.big?.byteLength ?? 0);
  }

  get inFlight(): number {
    return this.uploads.size;
  }

  get busy(): boolean {
    return this.uploads.size > 0 || this.open.data !== undefined || this.open.tree !== undefined;
  }

  add(type: BlobType, id: Uint8Array, payload: Uint8Array, rawLength: number, compressed: boolean): Promise<number> {
    return this.locked(() => this.addLocked(type, id, payload, rawLength, compressed, false));
  }

  addSealed(type: BlobType, id: Uint8Array, sealed: Uint8Array, rawLength: number, compressed: boolean): Promise<number> {
    return this.locked(() => this.addLocked(type, id, sealed, rawLength, compressed, true));
  }

  async flush(): Promise<void> {
    await this.locked(async () => {
      for (const t of ['data', 'tree'] as const) {
        const p = this.open[t];
        if (p) await this.finish(p);
      }
    });
    await this.uploads.idle();
    this.throwIfFailed();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.lock.catch(() => undefined);
    for (const t of ['data', 'tree'] as const) {
      const p = this.open[t];
      if (p) {
        delete this.open[t];
        await p.fh.close().catch(() => undefined);
      }
    }
    await this.uploads.idle();
    this.stages.length = 0;
    this.big = undefined;
    if (this.dir) await rm(await this.dir.catch(() => ''), { recursive: true, force: true }).catch(() => undefined);
    this.dir = undefined;
  }

  /**
   * Run `fn` after the previous call. A failure there (a temporary file that cannot be written)
   * loses blobs already accepted into the open pack: it fails the packer, so `flush` rejects.
   */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn).catch((err: unknown) => {
      this.failure ??= err;
      throw err;
    });
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async addLocked(type: BlobType, id: Uint8Array, payload: Uint8Array, rawLength: number, compressed: boolean, sealed: boolean): Promise<number> {
    this.throwIfFailed();
    if (this.closed) throw new Error('packer is closed');
    const need = sealed ? payload.byteLength : payload.byteLength + OVERHEAD;
    let pack = this.open[type];
    if (pack && pack.pos + need + packTrailerSize(pack.entries.length + 1) > this.capacity) {
      await this.finish(pack);
      pack = undefined;
    }
    pack ??= await this.newPack(type);
    this.throwIfFailed();
    const offset = pack.pos;
    if (pack.staged + need > pack.stage.byteLength) await this.writeStage(pack);
    if (need <= pack.stage.byteLength) {
      const written = sealed ? (pack.stage.set(payload, pack.staged), payload.byteLength) : encryptInto(this.encKey, payload, pack.stage, pack.staged);
      pack.staged += written;
    } else {
      // Larger than the staging buffer: straight to the file.
      let bytes: Uint8Array = payload;
      if (!sealed) {
        if (!this.big || this.big.byteLength < need) this.big = Buffer.allocUnsafeSlow(need);
        bytes = this.big.subarray(0, encryptInto(this.encKey, payload, this.big, 0));
      }
      await this.writeOut(pack, bytes);
    }
    const written = sealed ? payload.byteLength : need;
    pack.entries.push({
      flags: (type === 'tree' ? FLAG_TREE : 0) | (compressed ? 2 : 0),
      id: this.ids.copy(id),
      offset,
      length: written,
      rawLength,
    });
    pack.pos += written;
    if (pack.pos >= this.packSize) await this.finish(pack);
    return written;
  }

  private async newPack(type: BlobType): Promise<OpenPack> {
    // Back-pressure: finished packs wait on disk for their upload, a few at most.
    while (this.uploads.size >= this.maxInFlight + 2) {
      await this.uploads.ended();
      this.throwIfFailed();
    }
    this.dir ??= mkdtemp(join(this.parent, `${DIR_PREFIX}${process.pid}-`)).then(async (made) => {
      await removeStaleDirs(this.parent);
      return made;
    });
    let dir: string;
    try {
      dir = await this.dir;
    } catch (err) {
      this.dir = undefined;
      throw new Error(`cannot make a directory for temporary pack files in ${this.parent}: ${(err as Error).message} (set TMPDIR to a writable directory)`, { cause: err });
    }
    const path = join(dir, `pack-${++this.files}`);
    const fh = await open(path, 'w+', 0o600).catch((err: unknown) => {
      throw tempFileError(path, err);
    });
    const pack: OpenPack = { type, path, fh, written: 0, pos: 0, stage: this.stages.pop() ?? Buffer.allocUnsafeSlow(STAGE_SIZE), staged: 0, hash: createHash('sha256'), entries: [] };
    this.open[type] = pack;
    return pack;
  }

  /** Write the staged bytes to the pack's file (and into its hash). */
  private async writeStage(pack: OpenPack): Promise<void> {
    if (pack.staged === 0) return;
    const n = pack.staged;
    pack.staged = 0;
    await this.writeRaw(pack, pack.stage.subarray(0, n));
  }

  /** Write `bytes` after whatever is staged. */
  private async writeOut(pack: OpenPack, bytes: Uint8Array): Promise<void> {
    await this.writeStage(pack);
    await this.writeRaw(pack, bytes);
  }

  private async writeRaw(pack: OpenPack, bytes: Uint8Array): Promise<void> {
    pack.hash.update(bytes);
    let done = 0;
    try {
      while (done < bytes.byteLength) {
        const { bytesWritten } = await pack.fh.write(bytes, done, bytes.byteLength - done, pack.written + done);
        if (bytesWritten <= 0) throw new Error('a write made no progress');
        done += bytesWritten;
      }
    } catch (err) {
      throw tempFileError(pack.path, err);
    }
    pack.written += done;
  }

  /** Append the encrypted header and trailer, name the pack, queue its upload from the file. */
  private async finish(pack: OpenPack): Promise<void> {
    delete this.open[pack.type];
    try {
      const header = encodePackHeader(pack.entries);
      const tail = header.byteLength + OVERHEAD + 4;
      if (pack.staged + tail > pack.stage.byteLength) await this.writeStage(pack);
      let hlen: number;
      if (tail <= pack.stage.byteLength) {
        hlen = encryptInto(this.encKey, header, pack.stage, pack.staged);
        pack.stage.writeUInt32LE(hlen, pack.staged + hlen);
        pack.staged += hlen + 4;
      } else {
        const buf = Buffer.allocUnsafe(tail);
        hlen = encryptInto(this.encKey, header, buf, 0);
        buf.writeUInt32LE(hlen, hlen);
        await this.writeOut(pack, buf);
      }
      pack.pos += hlen + 4;
      await this.writeStage(pack);
      await pack.fh.close();
    } catch (err) {
      await pack.fh.close().catch(() => undefined);
      await unlink(pack.path).catch(() => undefined);
      this.stages.push(pack.stage);
      throw err;
    }
    this.stages.push(pack.stage);
    const id = pack.hash.digest('hex');
    const size = pack.written;
    const path = pack.path;
    this.uploads.add(async () => {
      try {
        if (this.failure === undefined) {
          await saveFromSource(this.storage, { type: 'data', name: id }, { size, path, open: () => createReadStream(path, { highWaterMark: READ_CHUNK }) });
          this.onUploaded(id, pack.entries, size);
        }
      } catch (err) {
        this.failure ??= packUploadError(this.storage, id, err);
      } finally {
        await unlink(path).catch(() => undefined);
      }
    });
  }
}
