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
 * the bound and transferred to the caller.
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

/** Decompress the single zstd frame `src` into a fresh buffer of `size` bytes, on this thread. */
function decompressHere(src: Uint8Array, size: number): Attempt {
  const b = loadBinding();
  if (b.findFrameCompressedSize(src) !== src.byteLength) throw new Error('data after the zstd frame');
  const out = Buffer.allocUnsafe(size);
  try {
    const n = ctx().decompress(out, src);
    return { ok: true, data: out.subarray(0, n) };
  } catch (err) {
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
  let produced = 0;
  let error;
  let tooSmall = false;
  try {
    if (b.findFrameCompressedSize(src) !== src.byteLength) throw new Error('data after the zstd frame');
    out = new ArrayBuffer(job.size);
    produced = dctx.decompress(new Uint8Array(out), src);
  } catch (err) {
    out = undefined;
    if (err && err.message === ${JSON.stringify(TOO_SMALL)}) tooSmall = true;
    else error = String(err && err.message ? err.message : err);
  }
  const transfer = out ? [job.input, out] : [job.input];
  parentPort.postMessage({ input: job.input, out, produced, error, tooSmall }, transfer);
});
`;

interface Job {
  src: Uint8Array;
  size: number;
  resolve: (a: Attempt) => void;
  reject: (e: Error) => void;
}

interface Reply {
  input: ArrayBuffer;
  out?: ArrayBuffer;
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
    this.worker.postMessage({ input, length: job.src.byteLength, size: job.size }, [input]);
  }

  private done(r: Reply): void {
    const job = this.job;
    this.job = undefined;
    this.input = r.input;
    this.worker.unref();
    if (job) {
      if (r.error !== undefined) job.reject(new Error(r.error));
      else if (r.tooSmall || !r.out) job.resolve({ ok: false, tooSmall: true });
      else job.resolve({ ok: true, data: Buffer.from(r.out, 0, r.produced) });
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

  run(src: Uint8Array, size: number): Promise<Attempt> {
    return new Promise<Attempt>((resolve, reject) => {
      const job: Job = { src, size, resolve, reject };
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

/**
 * One bounded attempt: decompress the single zstd frame `src` into at most `size` bytes (on this
 * thread when it is small, or with `here`; else on a worker).
 * Resolves `{ ok: false, tooSmall: true }` when the content is larger than `size` (nothing more
 * was produced or allocated); rejects when the frame is damaged.
 */
export function decompressAttempt(src: Uint8Array, size: number, here = false): Promise<Attempt> {
  if (here || size <= INLINE_LIMIT) {
    try {
      return Promise.resolve(decompressHere(src, size));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
  // `src` is read when a worker takes the job: it must stay unchanged until the promise settles.
  return (pool ??= new DecompressPool()).run(src, size);
}
