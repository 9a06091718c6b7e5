/**
 * Bounded zstd decompression off the main thread.
 *
 * zstd-napi's `DCtx.decompress(dst, src)` (`ZSTD_decompressDCtx`) writes into a buffer the
 * caller allocated and fails with "Destination buffer is too small" instead of writing past
 * it: the output bound is hard, and nothing else grows with the input (no window buffer, no
 * growing result). The call is synchronous, so it runs in a few worker threads (as many as the
 * machine has cores, at most 4), like the libuv threadpool the previous binding used; tiny
 * outputs are decompressed on the calling thread, where a round trip would cost more.
 *
 * Each worker keeps its input buffer: the compressed bytes are copied into it and it travels
 * to the worker and back (transferred, not copied). The output is allocated in the worker at
 * the bound and transferred to the caller; with `reuse`, it comes from a small pool of output
 * buffers instead (transferred there and back), and the caller hands it back with
 * {@link releaseOutput} once done with the bytes: a restore decompresses hundreds of MiB, and
 * fresh output buffers cost a page fault per 4 KiB (~15 µs each on a VM) and garbage the main
 * thread's collector has to reclaim.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

interface DCtx {
  decompress(dst: Uint8Array, src: Uint8Array): number;
}
interface ZstdNapiBinding {
  DCtx: new () => DCtx;
  findFrameCompressedSize(src: Uint8Array): number;
}

const require = createRequire(import.meta.url);
let bindingPath: string | undefined;
let binding: ZstdNapiBinding | undefined;
function bindingFile(): string {
  return (bindingPath ??= require.resolve('zstd-napi/binding'));
}
function loadBinding(): ZstdNapiBinding {
  return (binding ??= require(bindingFile()) as ZstdNapiBinding);
}

/** Outputs up to this size are decompressed on the calling thread (a few microseconds). */
export const INLINE_LIMIT = 64 * 1024;

/** The result of one attempt: the bytes produced, or the output bound was too small. */
export type Attempt = { ok: true; data: Buffer } | { ok: false; tooSmall: true };

const TOO_SMALL = 'Destination buffer is too small';

/**
 * Decompress the single zstd frame `src` into `size` bytes on this thread: a fresh buffer, or with
 * `reuse` one lent from the output pool — for outputs above {@link INLINE_LIMIT}, or any output when
 * the caller asked for this thread (`here`: one blob at a time, as prune's repacking reads them; a
 * fresh buffer per small blob was most of a prune's garbage, and of its peak memory). Callers that
 * decompress many small blobs at once (a restore's ranged reads) keep fresh buffers for them: pooled
 * outputs are at least 128 KiB each.
 */
function decompressHere(src: Uint8Array, size: number, reuse: boolean, poolSmall = false): Attempt {
  const b = loadBinding();
  if (b.findFrameCompressedSize(src) !== src.byteLength) throw new Error('data after the zstd frame');
  const pooled = reuse && (poolSmall || size > INLINE_LIMIT) ? outputs.take(size) : undefined;
  const out = pooled ? Buffer.from(pooled, 0, size) : Buffer.allocUnsafe(size);
  try {
    const n = ctx().decompress(out, src);
    if (pooled) outputs.lent.add(pooled);
    return { ok: true, data: out.subarray(0, n) };
  } catch (err) {
    if (pooled) outputs.put(pooled);
    if ((err as Error).message === TOO_SMALL) return { ok: false, tooSmall: true };
    throw err;
  }
}

let localCtx: DCtx | undefined;
function ctx(): DCtx {
  return (localCtx ??= new (loadBinding().DCtx)());
}

// The worker's code (CommonJS, evaluated): one DCtx, one job at a time.
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const b = require(workerData.binding);
const dctx = new b.DCtx();
parentPort.on('message', (job) => {
  const src = new Uint8Array(job.input, 0, job.length);
  let out;
  let spare = job.out;
  let produced = 0;
  let error;
  let tooSmall = false;
  try {
    if (b.findFrameCompressedSize(src) !== src.byteLength) throw new Error('data after the zstd frame');
    if (spare && spare.byteLength >= job.size) {
      out = spare;
      spare = undefined;
    } else out = new ArrayBuffer(job.size);
    produced = dctx.decompress(new Uint8Array(out, 0, job.size), src);
  } catch (err) {
    if (out === job.out) spare = out;
    out = undefined;
    if (err && err.message === ${JSON.stringify(TOO_SMALL)}) tooSmall = true;
    else error = String(err && err.message ? err.message : err);
  }
  const transfer = [job.input];
  if (out) transfer.push(out);
  if (spare) transfer.push(spare);
  parentPort.postMessage({ input: job.input, out, spare, produced, error, tooSmall }, transfer);
});
`;

interface Job {
  src: Uint8Array;
  size: number;
  /** A pooled output buffer going with the job (`reuse`). */
  out: ArrayBuffer | undefined;
  reuse: boolean;
  resolve: (a: Attempt) => void;
  reject: (e: Error) => void;
}

interface Reply {
  input: ArrayBuffer;
  out?: ArrayBuffer;
  /** The pooled output buffer, back unused (the job failed, or it was too small). */
  spare?: ArrayBuffer;
  produced: number;
  error?: string;
  tooSmall: boolean;
}

class PoolWorker {
  readonly worker: Worker;
  input: ArrayBuffer | undefined = new ArrayBuffer(256 * 1024);
  job: Job | undefined;
  dead = false;

  constructor(private readonly pool: DecompressPool) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { binding: bindingFile() } });
    this.worker.unref();
    this.worker.on('message', (r: Reply) => this.done(r));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`zstd worker exited (code ${code})`)));
  }

  run(job: Job): void {
    this.job = job;
    let input = this.input;
    if (!input || input.byteLength < job.src.byteLength) input = new ArrayBuffer(nextPow2(job.src.byteLength));
    new Uint8Array(input, 0, job.src.byteLength).set(job.src);
    this.input = undefined;
    this.worker.ref(); // a job in flight keeps the process alive
    const out = job.out;
    job.out = undefined;
    this.worker.postMessage({ input, length: job.src.byteLength, size: job.size, out }, out ? [input, out] : [input]);
  }

  private done(r: Reply): void {
    const job = this.job;
    this.job = undefined;
    this.input = r.input;
    this.worker.unref();
    if (r.spare) outputs.put(r.spare);
    if (job) {
      if (r.error !== undefined) job.reject(new Error(r.error));
      else if (r.tooSmall || !r.out) job.resolve({ ok: false, tooSmall: true });
      else {
        if (job.reuse) outputs.lent.add(r.out);
        job.resolve({ ok: true, data: Buffer.from(r.out, 0, r.produced) });
      }
    }
    this.pool.next(this);
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    const job = this.job;
    this.job = undefined;
    job?.reject(err);
    this.pool.remove(this);
  }
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

class DecompressPool {
  private readonly workers: PoolWorker[] = [];
  private readonly idle: PoolWorker[] = [];
  private readonly queue: Job[] = [];
  readonly size = Math.max(1, Math.min(4, availableParallelism()));

  run(src: Uint8Array, size: number, reuse: boolean): Promise<Attempt> {
    return new Promise<Attempt>((resolve, reject) => {
      const job: Job = { src, size, out: reuse ? outputs.take(size) : undefined, reuse, resolve, reject };
      const w = this.idle.pop() ?? (this.workers.length < this.size ? this.spawn() : undefined);
      if (w) w.run(job);
      else this.queue.push(job);
    });
  }

  private spawn(): PoolWorker {
    const w = new PoolWorker(this);
    this.workers.push(w);
    return w;
  }

  next(w: PoolWorker): void {
    const job = this.queue.shift();
    if (job) w.run(job);
    else this.idle.push(w);
  }

  remove(w: PoolWorker): void {
    const drop = (list: PoolWorker[]) => {
      const i = list.indexOf(w);
      if (i >= 0) list.splice(i, 1);
    };
    drop(this.workers);
    drop(this.idle);
    const job = this.queue.shift();
    if (job) this.spawn().run(job);
  }
}

let pool: DecompressPool | undefined;

/** Smallest pooled output buffer (outputs up to {@link INLINE_LIMIT} are made on the calling thread). */
const OUTPUT_MIN = 128 * 1024;
/** Idle output buffers kept (power-of-two sizes; a restore's blobs are 512 KiB–8 MiB)... */
const OUTPUT_IDLE = 8;
/** ...holding at most this many bytes together (the larger ones are kept). */
const OUTPUT_IDLE_BYTES = 16 * 1024 * 1024;

/** Output buffers for `reuse` jobs: idle ones, and those lent to callers (until {@link releaseOutput}). */
class OutputPool {
  readonly idle: ArrayBuffer[] = [];
  readonly lent = new WeakSet<ArrayBuffer>();
  private idleBytes = 0;
  /** An idle buffer of at least `size` bytes (the smallest that fits), or a new one of the next power of two. */
  take(size: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.idle.length; i++) {
      const n = this.idle[i]!.byteLength;
      if (n >= size && (best < 0 || n < this.idle[best]!.byteLength)) best = i;
    }
    if (best >= 0) {
      const buf = this.idle.splice(best, 1)[0]!;
      this.idleBytes -= buf.byteLength;
      return buf;
    }
    return new ArrayBuffer(nextPow2(Math.max(size, OUTPUT_MIN)));
  }
  put(buf: ArrayBuffer): void {
    if (buf.byteLength === 0 || buf.byteLength > OUTPUT_IDLE_BYTES) return; // detached, or too big to keep
    this.idle.push(buf);
    this.idleBytes += buf.byteLength;
    // Over a limit: drop the smallest (the larger ones can serve any request).
    while (this.idle.length > OUTPUT_IDLE || this.idleBytes > OUTPUT_IDLE_BYTES) {
      let smallest = 0;
      for (let i = 1; i < this.idle.length; i++) if (this.idle[i]!.byteLength < this.idle[smallest]!.byteLength) smallest = i;
      this.idleBytes -= this.idle[smallest]!.byteLength;
      this.idle[smallest] = this.idle[this.idle.length - 1]!;
      this.idle.pop();
    }
  }
}
const outputs = new OutputPool();

/**
 * Gives back the output of a `reuse` decompression once its bytes are no longer needed (written
 * out); later decompressions write into it. Anything else is ignored (inline outputs, outputs of
 * jobs without `reuse`, a second release).
 */
export function releaseOutput(data: Uint8Array): void {
  const buf = data.buffer;
  if (!(buf instanceof ArrayBuffer) || !outputs.lent.has(buf)) return;
  outputs.lent.delete(buf);
  outputs.put(buf);
}

/**
 * One bounded attempt: decompress the single zstd frame `src` into at most `size` bytes (on this
 * thread when it is small, or with `here`; else on a worker).
 * Resolves `{ ok: false, tooSmall: true }` when the content is larger than `size` (nothing more
 * was produced or allocated); rejects when the frame is damaged.
 */
export function decompressAttempt(src: Uint8Array, size: number, here = false, reuse = false): Promise<Attempt> {
  if (here || size <= INLINE_LIMIT) {
    try {
      return Promise.resolve(decompressHere(src, size, reuse, here));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
  // `src` is read when a worker takes the job: it must stay unchanged until the promise settles.
  return (pool ??= new DecompressPool()).run(src, size, reuse);
}
