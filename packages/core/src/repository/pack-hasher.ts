/**
 * The SHA-256 of finished packs (their names), on a thread of its own: 16 MiB per pack is about
 * half a second of a first backup's main thread otherwise. The pack's buffer is transferred to the
 * thread and back (its memory moves, nothing is copied), so the pack buffers stay ordinary
 * memory that any storage adapter can write out.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', (job) => {
  const id = createHash('sha256').update(new Uint8Array(job.buffer, 0, job.length)).digest('hex');
  parentPort.postMessage({ seq: job.seq, buffer: job.buffer, id }, [job.buffer]);
});
`;

/** Below this, hashing here costs less than the round trip. */
const THREAD_FROM = 1024 * 1024;

export class PackHasher {
  private worker: Worker | undefined;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (r: { buffer: ArrayBuffer; id: string }) => void; reject: (e: Error) => void }>();
  private failed = false;

  /**
   * The hex SHA-256 of `buf[0 .. length)`, and the buffer to use from now on (the same memory;
   * `buf` itself is detached while the thread hashes it, when it went there).
   */
  async hash(buf: Buffer, length: number): Promise<{ id: string; buf: Buffer }> {
    const own = buf.byteOffset === 0 && buf.buffer.byteLength === buf.byteLength && !(buf.buffer instanceof SharedArrayBuffer);
    if (!own || length < THREAD_FROM || this.failed) return { id: createHash('sha256').update(buf.subarray(0, length)).digest('hex'), buf };
    const worker = this.start();
    const seq = ++this.seq;
    const done = new Promise<{ buffer: ArrayBuffer; id: string }>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
    if (this.waiting.size === 1) worker.ref();
    const buffer = buf.buffer as ArrayBuffer;
    worker.postMessage({ seq, buffer, length }, [buffer]);
    const r = await done;
    return { id: r.id, buf: Buffer.from(r.buffer) };
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
    w.unref();
    w.on('message', (m: { seq: number; buffer: ArrayBuffer; id: string }) => {
      const job = this.waiting.get(m.seq);
      this.waiting.delete(m.seq);
      if (this.waiting.size === 0) w.unref();
      job?.resolve(m);
    });
    const fail = (err?: unknown) => {
      // Nothing comes back from a dead thread: the packs it held fail their write; later ones are hashed here.
      this.failed = true;
      this.worker = undefined;
      const why = new Error(`the pack hashing thread stopped${err instanceof Error ? `: ${err.message}` : ''}`);
      for (const job of this.waiting.values()) job.reject(why);
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', fail);
    this.worker = w;
    return w;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.failed = true; // a closed hasher hashes here
    if (w) await w.terminate().catch(() => undefined);
  }
}
