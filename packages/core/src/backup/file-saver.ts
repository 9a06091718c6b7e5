/**
 * Reading files and saving their content as data blobs, for one backup run: the stage between
 * the walk (which decides what to read) and the repository (which packs what is new).
 *
 * Two paths: the file savers (worker threads, one per core: read, chunk, hash, compress and
 * encrypt off the main thread; see savers/saver-pool.ts), used for regular files whenever the
 * repository supports them; and this thread's own path (chunker + `saveBlob`, compression on the
 * thread pool), used for plug-in content and virtual files, for stand-in repositories, and when
 * the worker script is not there.
 */
import { close as fsClose, closeSync, constants as fsConstants, fstat as fsFstat, fstatSync, open as fsOpen, openSync, read as fsRead, readSync, type BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import type { BackupStats, ContentSource, Logger } from '../plugins/types.js';
import type { BlobId, Node, Tree } from '../repository/types.js';
import { BufferPool, Chunker, chunkFile, chunkStream } from '../chunker/index.js';
import type { WalkEntry } from '../walker/index.js';
import { contentPieces } from './content.js';
import { Limiter } from './limiter.js';
import { FILE_OPEN_FLAGS, isSame, reopenInListedDir } from './listed-file.js';
import { nodeFromStat } from './node.js';
import type { OwnerNames } from './owners.js';
import { SaverFsError, SaverPool, type StatFields } from './savers/saver-pool.js';
import type { EngineRepository, EntryError } from './types.js';

/** An error of the file system for one entry: recorded, and the backup goes on. */
export class EntryFailure extends Error {
  constructor(
    readonly op: string,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

const OPEN_FLAGS = FILE_OPEN_FLAGS;
/** A synchronous open/fstat/read slower than this switches to asynchronous calls for a while. */
const SYNC_SLOW_MS = 20;
const ASYNC_CREDITS = 200;
/** Chunk saves in flight beyond one per file (each holds a copy of up to maxSize bytes). */
const EXTRA_SAVES = 4;

const openFd = promisify(fsOpen) as (path: Buffer, flags: number) => Promise<number>;
const closeFd = promisify(fsClose);
const readFd = promisify(fsRead) as unknown as (fd: number, buf: Buffer, off: number, len: number, pos: number) => Promise<number>;
function fstatFd(fd: number): Promise<BigIntStats> {
  return new Promise((resolve, reject) => fsFstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
}

/** What the file saver needs of the repository beyond {@link EngineRepository}: the saver threads' keys and blob claims. */
interface SealingRepository {
  claimBlob(type: 'data', id: BlobId): boolean;
  unclaimBlob(type: 'data', id: BlobId): void;
  storeSealed(type: 'data', id: BlobId, sealed: Uint8Array, rawLength: number, compressed: boolean): Promise<number>;
  internals(): {
    keys: { encKey: Uint8Array; idKey: Uint8Array };
    config: { compression: { level: number } };
    index: { size: number; forEachUsableId(type: 'data', fn: (ids: Uint8Array, off: number) => void): void };
  };
}

function canSeal(repo: EngineRepository): repo is EngineRepository & SealingRepository {
  const r = repo as Partial<SealingRepository>;
  return typeof r.claimBlob === 'function' && typeof r.storeSealed === 'function' && typeof r.internals === 'function';
}

export interface FileSaverOptions {
  repository: EngineRepository;
  stats: BackupStats;
  warnings: EntryError[];
  owners: OwnerNames;
  log: Logger | undefined;
  dryRun: boolean;
  signal: AbortSignal;
  /** Files read at once on this thread's path. */
  concurrency: number;
  /** File saver threads: undefined for one per core (at most 4), 0 for none (this thread's path only). */
  workers?: number | undefined;
}

/** Reads files and saves content for one backup; see the module comment. */
export class FileSaver {
  readonly repo: EngineRepository;
  readonly stats: BackupStats;
  readonly warnings: EntryError[];
  readonly owners: OwnerNames;
  readonly log: Logger | undefined;
  readonly dryRun: boolean;
  readonly signal: AbortSignal;
  readonly chunker: Chunker;
  readonly pool: BufferPool;
  /** Saves in flight beyond one per file (pipelining large files), and their copy buffers. */
  readonly extraSaves = new Limiter(EXTRA_SAVES);
  readonly copyPool: BufferPool;
  /** Whole-file buffers for small files (at most minSize). */
  readonly smallPool: BufferPool;
  /** Files left to read asynchronously after a slow synchronous read. */
  syncCredits = 0;
  /** Blob ids already counted as new in a dry run. */
  readonly dryRunSeen = new Set<string>();
  /** The saver threads, when the repository can take sealed blobs. */
  readonly savers: SaverPool | undefined;

  constructor(opts: FileSaverOptions) {
    this.repo = opts.repository;
    this.stats = opts.stats;
    this.warnings = opts.warnings;
    this.owners = opts.owners;
    this.log = opts.log;
    this.dryRun = opts.dryRun;
    this.signal = opts.signal;
    const c = this.repo.config.chunker;
    const seed = typeof c.seed === 'string' ? Buffer.from(c.seed, 'base64') : c.seed;
    this.chunker = new Chunker({ minSize: c.minSize, avgSize: c.avgSize, maxSize: c.maxSize, seed });
    this.pool = new BufferPool({ maxIdle: opts.concurrency + 1 });
    this.copyPool = new BufferPool({ maxIdle: EXTRA_SAVES });
    this.smallPool = new BufferPool({ maxIdle: opts.concurrency + 2 });
    const repo = this.repo;
    this.savers = canSeal(repo)
      ? SaverPool.create({
          knownBlobs: repo.internals().index.size,
          encKey: repo.internals().keys.encKey,
          idKey: repo.internals().keys.idKey,
          chunker: { minSize: c.minSize, avgSize: c.avgSize, maxSize: c.maxSize, seed },
          level: repo.internals().config.compression.level,
          ...(workersFrom(opts.workers) !== undefined ? { workers: workersFrom(opts.workers)! } : {}),
        })
      : undefined;
  }

  /**
   * Tell the saver threads which data blobs are stored (the filter they skip sealing by). Call
   * after the index is loaded, before the first file.
   */
  seedFilter(): void {
    const savers = this.savers;
    if (!savers || !canSeal(this.repo)) return;
    this.repo.internals().index.forEachUsableId('data', (ids, off) => savers.filter.add(ids.subarray(off, off + 32)));
  }

  /** Stop the saver threads (files in progress fail with `reason`). */
  abort(reason: unknown): void {
    this.savers?.abort(reason);
  }

  async close(): Promise<void> {
    await this.savers?.close();
  }

  /** Read a regular file and save its content: on a saver thread when there are some, else here. */
  readFile(entry: WalkEntry, node: Node): Promise<Node> {
    return this.savers ? this.readFileInSaver(this.savers, entry, node) : this.readFileHere(entry, node);
  }

  /**
   * Reads a regular file on a saver thread: the thread opens it (O_NOFOLLOW), checks it against
   * the walk's lstat (the opened file's metadata is recorded when it differs), chunks, hashes and
   * seals the chunks it does not know; this thread claims each sealed blob (a chunk two files
   * share is stored once) and copies it into a pack. A chunk the shared filter wrongly took for
   * known is read here. A file that changed while read is stored as read, with a warning.
   */
  async readFileInSaver(savers: SaverPool, entry: WalkEntry, node: Node): Promise<Node> {
    const repo = this.repo as EngineRepository & SealingRepository;
    const ids: BlobId[] = [];
    /** Chunks the filter said were known but this thread's index does not have. */
    const missed: Array<{ index: number; id: BlobId; offset: number; length: number }> = [];
    let opened: StatFields | undefined;
    const w = entry.stat;
    let result;
    try {
      result = await savers.saveFile(
        {
          path: entry.pathBuf.toString('latin1'),
          ino: w.ino.toString(),
          dev: w.dev.toString(),
          size: w.size.toString(),
          mtimeNs: w.mtimeNs.toString(),
          ctimeNs: w.ctimeNs.toString(),
          ...(entry._dir !== undefined ? { dirDev: entry._dir.dev.toString(), dirIno: entry._dir.ino.toString() } : {}),
        },
        {
          onStat: (s) => {
            opened = s;
          },
          onChunk: (c, sealed) => {
            const idBytes = Buffer.from(c.id.buffer, c.id.byteOffset, c.id.byteLength);
            const id = idBytes.toString('hex');
            ids.push(id);
            this.stats.bytesRead += c.length;
            if (this.dryRun) {
              if (!repo.hasBlob('data', id) && !this.dryRunSeen.has(id)) {
                this.dryRunSeen.add(id);
                this.stats.blobsNew++;
                this.stats.dataAdded += c.length;
              }
              return;
            }
            if (!sealed) {
              if (!repo.hasBlob('data', id)) missed.push({ index: ids.length - 1, id, offset: c.offset, length: c.length });
              return;
            }
            if (!repo.claimBlob('data', id)) return; // stored, or claimed by another file meanwhile
            savers.filter.add(idBytes);
            return repo.storeSealed('data', id, sealed, c.length, c.compressed).then(
              (stored) => {
                this.stats.blobsNew++;
                this.stats.dataAdded += c.length;
                this.stats.dataAddedPacked += stored;
              },
              (err: unknown) => {
                repo.unclaimBlob('data', id);
                throw err;
              },
            );
          },
        },
      );
    } catch (err) {
      if (err instanceof SaverFsError) {
        throw new EntryFailure(err.op, Object.assign(new Error(err.message), err.code ? { code: err.code } : {}));
      }
      if (this.signal.aborted) throw this.signal.reason;
      throw err;
    }
    if (missed.length > 0 && !(await this.readMissed(entry, missed))) {
      // The file changed under the rare chunks read here: read it all again on this thread.
      return this.readFileHere(entry, node);
    }
    if (opened) {
      const metadata = node.metadata;
      node = nodeFromStat(entry.name, 'file', statsFromFields(opened), this.owners);
      if (metadata) node.metadata = metadata;
    }
    node.content = ids;
    if (result.changed) this.changedWhileRead(entry.path, result.bytesRead);
    node.size = result.bytesRead;
    return node;
  }

  /**
   * Read chunks a saver did not seal because the shared filter took them for stored (a false
   * positive): each is read again here, checked against its id and saved. False when the file's
   * bytes there changed meanwhile.
   */
  private async readMissed(entry: WalkEntry, missed: Array<{ id: BlobId; offset: number; length: number }>): Promise<boolean> {
    let fd: number;
    try {
      fd = await openFd(entry.pathBuf, OPEN_FLAGS);
    } catch {
      return false;
    }
    try {
      for (const m of missed) {
        const buf = Buffer.allocUnsafe(m.length);
        const n = await readFd(fd, buf, 0, m.length, m.offset);
        if (n !== m.length || this.repo.blobId(buf) !== m.id) return false;
        await this.saveData(buf);
      }
      return true;
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
  }

  changedWhileRead(path: string, read: number): void {
    const message = `file changed while it was read (stored the ${read} bytes read)`;
    this.warnings.push({ path, message });
    this.log?.warn(`${path}: ${message}`);
  }

  /**
   * Reads a regular file: open (O_NOFOLLOW), fstat (must still be a regular
   * file; its metadata is recorded when it differs from the walk's lstat),
   * chunk, store. A file that shrank while read, or (for files read in more
   * than one call) whose size or mtime changed meanwhile, is stored as read
   * with a warning. A small file read in one call is not stat'ed again: if it
   * changed right after the fstat, its recorded mtime makes the next backup
   * read it again.
   *
   * Small files (at most `minSize`: one blob) are opened and read with
   * synchronous calls: on a local disk that costs a few microseconds each,
   * far less than a thread-pool round trip per call. When a synchronous step
   * is slow (network file system, cold disk), the next {@link ASYNC_CREDITS}
   * files use asynchronous calls again.
   */
  async readFileHere(entry: WalkEntry, node: Node): Promise<Node> {
    const useSync = this.syncCredits === 0 && Number(entry.stat.size) <= this.chunker.minSize;
    if (this.syncCredits > 0) this.syncCredits--;
    let fd: number;
    let st: BigIntStats;
    const t0 = useSync ? performance.now() : 0;
    try {
      fd = useSync ? openSync(entry.pathBuf, OPEN_FLAGS) : await openFd(entry.pathBuf, OPEN_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new EntryFailure('open', new Error('file vanished before it could be read'));
      if (code === 'ELOOP') throw new EntryFailure('open', new Error('file was replaced by a symlink'));
      throw new EntryFailure('open', err);
    }
    let closed = false;
    try {
      try {
        st = useSync ? fstatSync(fd, { bigint: true }) : await fstatFd(fd);
      } catch (err) {
        throw new EntryFailure('fstat', err);
      }
      const w = entry.stat;
      if (entry._dir !== undefined && !isSame(st, w)) {
        // Not the file the walk listed: replaced in its directory, or reached through a swapped one.
        const first = fd;
        closed = true;
        closeSync(first);
        try {
          fd = reopenInListedDir(entry.pathBuf, entry._dir);
        } catch (err) {
          throw new EntryFailure('open', err);
        }
        closed = false;
        try {
          st = fstatSync(fd, { bigint: true });
        } catch (err) {
          throw new EntryFailure('fstat', err);
        }
      }
      if (!st.isFile()) throw new EntryFailure('fstat', new Error('no longer a regular file'));
      if (st.ino !== w.ino || st.dev !== w.dev || st.size !== w.size || st.mtimeNs !== w.mtimeNs || st.ctimeNs !== w.ctimeNs) {
        // Changed since the walk saw it: record what was actually opened.
        const metadata = node.metadata;
        node = nodeFromStat(entry.name, 'file', st, this.owners);
        if (metadata) node.metadata = metadata;
      }
      const size = Number(st.size);
      let read: number;
      if (useSync && size <= this.chunker.minSize) {
        // One blob: read it whole into a pooled buffer (released once saveBlob is done with it).
        const buf = this.smallPool.acquire(this.chunker.minSize);
        try {
          read = 0;
          try {
            while (read < size) {
              const n = readSync(fd, buf, read, size - read, read);
              if (n === 0) break;
              read += n;
            }
          } catch (err) {
            throw new EntryFailure('read', err);
          }
          closeSync(fd);
          closed = true;
          if (performance.now() - t0 > SYNC_SLOW_MS) this.syncCredits = ASYNC_CREDITS;
          this.stats.bytesRead += read;
          node.content = read > 0 ? [await this.saveData(buf.subarray(0, read))] : [];
        } finally {
          this.smallPool.release(buf);
        }
      } else {
        const readStats = { bytesRead: 0, chunks: 0 };
        const it = chunkFile(fd, this.chunker, this.pool, {
          stats: readStats,
          signal: this.signal,
          length: size,
          onRead: (n) => {
            this.stats.bytesRead += n;
          },
        });
        node.content = await this.storeChunks(it, size > this.chunker.minSize, 'read');
        read = readStats.bytesRead;
      }
      let changed = read !== size;
      if (!changed && size > this.chunker.minSize) {
        try {
          const after = await fstatFd(fd);
          changed = after.size !== st.size || after.mtimeNs !== st.mtimeNs;
        } catch {
          // fstat on an open descriptor does not fail in practice; nothing to add.
        }
      }
      if (changed) this.changedWhileRead(entry.path, read);
      node.size = read;
      return node;
    } finally {
      if (!closed) await closeFd(fd).catch(() => undefined);
    }
  }

  /**
   * Stores the chunks of `it` as data blobs and returns their ids in order.
   * With `pipeline`, a chunk is copied into a pooled buffer so that its
   * `saveBlob` (compression on the thread pool) overlaps with reading and
   * hashing the next one — at most one extra save per file, and at most
   * {@link EXTRA_SAVES} across the run; without a free slot it just waits.
   * Without `pipeline` each chunk is saved before the reader resumes (the
   * chunk's buffer is only valid until then).
   */
  async storeChunks(it: AsyncGenerator<Buffer, unknown, undefined>, pipeline: boolean, op: string): Promise<BlobId[]> {
    const ids: BlobId[] = [];
    let pending: Promise<void> | undefined;
    try {
      for (;;) {
        let r: IteratorResult<Buffer, unknown>;
        try {
          r = await it.next();
        } catch (err) {
          if (this.signal.aborted) throw this.signal.reason;
          throw new EntryFailure(op, err);
        }
        if (r.done) break;
        const chunk = r.value;
        const idx = ids.length;
        ids.push('');
        if (pipeline && !this.dryRun && this.extraSaves.tryAcquire()) {
          const copy = this.copyPool.acquire(this.chunker.maxSize);
          chunk.copy(copy, 0, 0, chunk.length);
          const p = this.saveData(copy.subarray(0, chunk.length)).then(
            (id) => {
              ids[idx] = id;
            },
          ).finally(() => {
            this.copyPool.release(copy);
            this.extraSaves.release();
          });
          p.catch(() => undefined);
          if (pending) await pending;
          pending = p;
        } else {
          if (pending) {
            await pending;
            pending = undefined;
          }
          ids[idx] = await this.saveData(chunk);
        }
      }
      if (pending) await pending;
      pending = undefined;
    } finally {
      if (pending) await pending.catch(() => undefined);
      await it.return(undefined as never).catch(() => undefined);
    }
    return ids;
  }

  /** Stores replacement content (a plug-in's) for `node`; sets content and size. */
  async saveContent(node: Node, content: ContentSource): Promise<void> {
    const readStats = { bytesRead: 0, chunks: 0 };
    const it = chunkStream(contentPieces(content), this.chunker, this.pool, { stats: readStats, signal: this.signal });
    node.content = await this.storeChunks(it, true, 'read content');
    node.size = readStats.bytesRead;
  }

  async saveData(chunk: Buffer): Promise<BlobId> {
    if (this.dryRun) {
      const id = this.repo.blobId(chunk);
      if (!this.repo.hasBlob('data', id) && !this.dryRunSeen.has(id)) {
        this.dryRunSeen.add(id);
        this.stats.blobsNew++;
        this.stats.dataAdded += chunk.length;
      }
      return id;
    }
    const r = await this.repo.saveBlob('data', chunk);
    if (!r.known) {
      this.stats.blobsNew++;
      this.stats.dataAdded += chunk.length;
      this.stats.dataAddedPacked += r.storedSize;
    }
    return r.id;
  }

  async saveTreeBlob(tree: Tree): Promise<BlobId> {
    if (this.dryRun) return this.repo.blobId(Buffer.from(JSON.stringify(tree)));
    return this.repo.saveTree(tree);
  }

}

/** The saver thread count: the option, else `KIWI_SAVER_THREADS` (0 turns them off), else the default. */
function workersFrom(option: number | undefined): number | undefined {
  if (option !== undefined) return option;
  const env = process.env.KIWI_SAVER_THREADS;
  if (env === undefined || env === '') return undefined;
  const n = Number(env);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** BigInt stats rebuilt from a saver thread's decimal strings (what nodeFromStat reads). */
function statsFromFields(f: StatFields): BigIntStats {
  return {
    dev: BigInt(f.dev),
    ino: BigInt(f.ino),
    mode: BigInt(f.mode),
    nlink: BigInt(f.nlink),
    uid: BigInt(f.uid),
    gid: BigInt(f.gid),
    rdev: BigInt(f.rdev),
    size: BigInt(f.size),
    blksize: BigInt(f.blksize),
    blocks: BigInt(f.blocks),
    atimeNs: BigInt(f.atimeNs),
    mtimeNs: BigInt(f.mtimeNs),
    ctimeNs: BigInt(f.ctimeNs),
    birthtimeNs: BigInt(f.birthtimeNs),
    isFile: () => true,
    isDirectory: () => false,
    isSymbolicLink: () => false,
    isFIFO: () => false,
    isSocket: () => false,
    isCharacterDevice: () => false,
    isBlockDevice: () => false,
  } as unknown as BigIntStats;
}
