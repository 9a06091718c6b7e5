/**
 * File savers: a backup's per-byte work on every core.
 *
 * Reading a file, cutting it into chunks, hashing each chunk (HMAC-SHA-256), compressing and
 * encrypting the new ones is almost all of a first backup's CPU time. With savers, that work runs
 * in worker threads (one per core, at most 4); the main thread walks, decides and packs:
 *
 *   main thread                             saver worker
 *   ───────────                             ────────────
 *   walk, change detection  ── batch ──────▶ per file: open (O_NOFOLLOW), fstat, read, chunk,
 *   (up to 32 small files, or one big one)   blob id (HMAC) of each chunk; a chunk the shared
 *                                            filter does not know: compress, encrypt into the arena
 *   claim each new blob,    ◀── reports ──── ids, offsets, sealed blobs (per arena half, or per batch)
 *   copy it into a pack;
 *   free the arena half     ── (Atomics) ──▶ (waits for a free half: back-pressure)
 *   node.content = ids
 *
 * Nothing is asked per chunk: a worker decides alone, with a shared Bloom filter of the blobs
 * stored or claimed so far (blob-filter.ts), which chunks to seal. The main thread checks each
 * "known" against its index (the filter can be wrong in that direction, rarely) and reads such a
 * chunk itself; a sealed chunk it already has is simply dropped. Sealed blobs travel through a
 * shared arena (two halves per worker, reused), so no fresh memory is touched per blob.
 *
 * The blob ids, and so the blobs stored and the trees, are the same whatever the number of
 * workers; which pack a blob lands in depends on timing, as it does with restic (pack bytes differ
 * between runs anyway: every blob gets a random nonce). Plug-in content and virtual files stay on
 * the main thread's path.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { BlobFilter } from './blob-filter.js';
import {
  ARENA_HALF,
  BATCH_FILES,
  CONTROL_WORDS,
  HALF_BUSY,
  type BatchJob,
  type ChunkReport,
  type FileReport,
  type FileSpec,
  type SaverWorkerData,
  type StatFields,
  type WorkerMessage,
} from './protocol.js';

export type { ChunkReport, FileSpec, StatFields } from './protocol.js';

/** What the backup does with each file's chunks, on the main thread. */
export interface FileHandlers {
  /** The opened file's fstat differs from the walk's lstat. */
  onStat(stat: StatFields): void;
  /**
   * A chunk, in file order, with its sealed form when the worker sealed it (valid until the
   * returned promise settles). Copy it into a pack, or drop it when already stored.
   */
  onChunk(chunk: ChunkReport, sealed: Uint8Array | undefined): Promise<void> | void;
}

export interface FileResult {
  bytesRead: number;
  changed: boolean;
}

/** A file the worker could not read: the operation, errno code and message. */
export class SaverFsError extends Error {
  constructor(
    readonly op: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'SaverFsError';
  }
}

export interface SaverPoolOptions {
  encKey: Uint8Array;
  idKey: Uint8Array;
  chunker: { minSize: number; avgSize: number; maxSize: number; seed: Uint8Array };
  level: number;
  /** Data blobs already in the repository (sizes the shared filter). */
  knownBlobs: number;
  /** Worker threads (default: the machine's cores, at most 4). */
  workers?: number;
}

/** The worker script: next to this module in the build (dist/saver-worker.js), or the package's build when run from source. */
function workerScript(): URL | undefined {
  for (const candidate of ['./saver-worker.js', '../../../dist/saver-worker.js']) {
    const url = new URL(candidate, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  return undefined;
}

interface FileJob {
  spec: FileSpec;
  small: boolean;
  handlers: FileHandlers;
  resolve: (r: FileResult) => void;
  reject: (e: unknown) => void;
  /** A handler failed: the file fails with it once its reports are done. */
  failure?: unknown;
}

class SaverWorker {
  readonly worker: Worker;
  readonly control: Int32Array;
  readonly arena: Uint8Array;
  batch: FileJob[] | undefined;
  /** Reports are handled one message at a time, in order. */
  private chain: Promise<void> = Promise.resolve();
  dead = false;

  constructor(
    private readonly pool: SaverPool,
    script: URL,
    opts: SaverPoolOptions,
    filter: BlobFilter,
  ) {
    const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
    const arena = new SharedArrayBuffer(ARENA_HALF * 2);
    this.control = new Int32Array(control);
    this.arena = new Uint8Array(arena);
    const workerData: SaverWorkerData = {
      encKey: Uint8Array.from(opts.encKey),
      idKey: Uint8Array.from(opts.idKey),
      chunker: { ...opts.chunker, seed: Uint8Array.from(opts.chunker.seed) },
      level: opts.level,
      control,
      arena,
      filter: filter.buffer,
    };
    this.worker = new Worker(script, { workerData, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
    this.worker.unref();
    this.worker.on('message', (m: WorkerMessage) => {
      this.chain = this.chain.then(() => this.message(m)).catch((err: unknown) => this.die(err instanceof Error ? err : new Error(String(err))));
    });
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`a file saver thread exited (code ${code})`)));
  }

  run(batch: FileJob[]): void {
    this.batch = batch;
    this.worker.ref(); // files in progress keep the process alive
    const job: BatchJob = { t: 'batch', files: batch.map((j) => j.spec) };
    this.worker.postMessage(job);
  }

  private async message(m: WorkerMessage): Promise<void> {
    const batch = this.batch;
    if (!batch || this.dead) return;
    if (m.t === 'failed') {
      this.die(new Error(m.message));
      return;
    }
    const view = m.half >= 0 ? this.arena.subarray(m.half * ARENA_HALF, (m.half + 1) * ARENA_HALF) : undefined;
    try {
      for (const r of m.reports) await this.report(batch[r.file]!, r, view);
    } finally {
      if (m.half >= 0) {
        Atomics.store(this.control, HALF_BUSY + m.half, 0);
        Atomics.notify(this.control, HALF_BUSY + m.half);
      }
    }
    if (m.last) {
      this.batch = undefined;
      this.worker.unref();
      this.pool.next(this);
    }
  }

  private async report(job: FileJob, r: FileReport, view: Uint8Array | undefined): Promise<void> {
    if (r.stat && job.failure === undefined) {
      try {
        job.handlers.onStat(r.stat);
      } catch (err) {
        job.failure = err;
      }
    }
    if (job.failure === undefined && r.error === undefined) {
      const copies: Array<Promise<void>> = [];
      for (const c of r.chunks) {
        const sealed = c.own ?? (c.sealedAt >= 0 ? view!.subarray(c.sealedAt, c.sealedAt + c.sealedLength) : undefined);
        try {
          const p = job.handlers.onChunk(c, sealed);
          if (p) copies.push(p);
        } catch (err) {
          job.failure = err;
          break;
        }
      }
      // The arena half is freed once every copy out of it settled.
      for (const res of await Promise.allSettled(copies)) {
        if (res.status === 'rejected' && job.failure === undefined) job.failure = res.reason;
      }
    }
    if (r.error) job.reject(new SaverFsError(r.error.op, r.error.code, r.error.message));
    else if (r.done) {
      if (job.failure !== undefined) job.reject(job.failure);
      else job.resolve(r.done);
    }
  }

  die(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    const batch = this.batch;
    this.batch = undefined;
    for (const j of batch ?? []) j.reject(new Error(`a file saver thread failed: ${err.message}`, { cause: err }));
    this.pool.remove(this);
  }
}

/** A pool of file savers; see the module comment. */
export class SaverPool {
  private readonly workers: SaverWorker[] = [];
  private readonly idle: SaverWorker[] = [];
  private readonly queue: FileJob[] = [];
  private closed = false;
  private dispatchScheduled = false;
  readonly size: number;
  /** Data blob ids stored or claimed (the workers skip sealing what it holds). */
  readonly filter: BlobFilter;
  /** Files larger than this go one per job (their chunks stream through the arena); smaller ones in batches. */
  private readonly smallFile: number;

  private constructor(
    private readonly script: URL,
    private readonly opts: SaverPoolOptions,
  ) {
    this.size = Math.max(1, Math.min(4, opts.workers ?? availableParallelism()));
    this.filter = BlobFilter.create(opts.knownBlobs + 100_000);
    this.smallFile = opts.chunker.maxSize;
  }

  /** A pool, or undefined when the worker script is not there (then the backup saves on its main thread). */
  static create(opts: SaverPoolOptions): SaverPool | undefined {
    if (opts.workers === 0) return undefined;
    const script = workerScript();
    return script ? new SaverPool(script, opts) : undefined;
  }

  /** Read, chunk and save one file (see {@link FileHandlers}). Rejects with a {@link SaverFsError} when it cannot be read. */
  saveFile(spec: FileSpec, handlers: FileHandlers): Promise<FileResult> {
    if (this.closed) return Promise.reject(new Error('the file savers are closed'));
    return new Promise<FileResult>((resolve, reject) => {
      this.queue.push({ spec, small: Number(spec.size) <= this.smallFile, handlers, resolve, reject });
      // Let the walk queue more files (a directory's worth) before an idle worker takes a batch.
      if (!this.dispatchScheduled) {
        this.dispatchScheduled = true;
        setImmediate(() => {
          this.dispatchScheduled = false;
          this.dispatch();
        });
      }
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const w = this.idle.pop() ?? (this.workers.length < this.size && !this.closed ? this.spawn() : undefined);
      if (!w) return;
      w.run(this.take());
    }
  }

  /** The next job: a big file alone, or up to BATCH_FILES small ones. */
  private take(): FileJob[] {
    const first = this.queue.shift()!;
    if (!first.small) return [first];
    const batch = [first];
    while (batch.length < BATCH_FILES && this.queue.length > 0 && this.queue[0]!.small) batch.push(this.queue.shift()!);
    return batch;
  }

  /** Stop: queued files and files in progress fail with `reason` (the threads are stopped). */
  abort(reason: unknown): void {
    for (const j of this.queue.splice(0)) j.reject(reason);
    this.closed = true;
    for (const w of [...this.workers]) {
      w.die(reason instanceof Error ? reason : new Error(String(reason)));
      void w.worker.terminate().catch(() => undefined);
    }
  }

  /** Stop the threads (after the files in progress ended). */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new Error('the file savers are closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate().catch(() => undefined)));
    this.workers.length = 0;
    this.idle.length = 0;
  }

  private spawn(): SaverWorker {
    const w = new SaverWorker(this, this.script, this.opts, this.filter);
    this.workers.push(w);
    return w;
  }

  next(w: SaverWorker): void {
    if (this.queue.length > 0 && !this.closed) w.run(this.take());
    else this.idle.push(w);
  }

  remove(w: SaverWorker): void {
    const drop = (list: SaverWorker[]) => {
      const i = list.indexOf(w);
      if (i >= 0) list.splice(i, 1);
    };
    drop(this.workers);
    drop(this.idle);
    // A crashed thread fails its files (and so the backup); queued files go to a new thread.
    if (!this.closed) this.dispatch();
  }
}
