/**
 * Worker threads that open blobs (authenticate, decompress, check the id) off the
 * main thread, for {@link Repository.loadBlobs}. The main thread copies one ranged
 * read into a reused shared buffer; a worker checks every blob in it and sends the
 * plaintexts back (transferred, not copied). The checks are the same as on the main
 * thread; a failure comes back as the message tail the caller turns into an
 * `IntegrityError`.
 *
 * The worker source is plain JavaScript evaluated in the worker (no separate
 * file to bundle); it uses only `node:` modules and the zstd binding.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';

export interface WorkBlob {
  /** Offset and length of the stored blob inside the range. */
  off: number;
  len: number;
  rawLength: number;
  compressed: boolean;
  /** Expected id, lowercase hex. */
  id: string;
}

/** Bytes of the per-blob metadata in a slot: 4 × i32 + 32-byte id. */
const META = 48;
/** Slots of this size are kept for reuse (a larger range gets a one-off slot). */
const SLOT_SIZE = 4 * 1024 * 1024 + 256 * META;

/** Per blob: the verified plaintext, or the reason it failed (without the blob/pack prefix). */
export type WorkResult = { data: Buffer; error?: undefined } | { data?: undefined; error: string };

const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { createDecipheriv, createHmac } = require('node:crypto');
const zstd = require(workerData.zstdPath);
const encKey = Buffer.from(workerData.encKey);
const idKey = Buffer.from(workerData.idKey);
const SLICE = 256 * 1024;
let scratch = Buffer.allocUnsafeSlow(1 << 20);
class Fail extends Error {}

function decryptInto(msg, out) {
  if (msg.length < 28) throw new Fail('authentication failed (the pack is damaged)');
  const len = msg.length - 28;
  const d = createDecipheriv('aes-256-gcm', encKey, msg.subarray(0, 12));
  d.setAuthTag(msg.subarray(msg.length - 16));
  let pos = 0;
  for (let i = 12; i < 12 + len; i += SLICE) {
    const part = d.update(msg.subarray(i, Math.min(i + SLICE, 12 + len)));
    part.copy(out, pos);
    pos += part.length;
  }
  try {
    const fin = d.final();
    fin.copy(out, pos);
  } catch {
    out.fill(0, 0, len);
    throw new Fail('authentication failed (the pack is damaged)');
  }
  return out.subarray(0, len);
}

async function openOne(range, b, slot) {
  const msg = range.subarray(b.off, b.off + b.len);
  // b: { off, len, rawLength, compressed, id (32-byte Buffer) }
  let plain;
  if (b.compressed) {
    const z = decryptInto(msg, slot);
    if (z.length < 4 || z.readUInt32LE(0) !== 0xfd2fb528) throw new Fail('zstd decompression failed: not a zstd frame');
    try {
      plain = await zstd.decompress(z);
    } catch (err) {
      throw new Fail('zstd decompression failed: ' + (err && err.message));
    }
    if (plain.length !== b.rawLength) throw new Fail('zstd decompression produced ' + plain.length + ' bytes, expected ' + b.rawLength);
    if (plain.byteOffset !== 0 || plain.buffer.byteLength !== plain.length) {
      const own = Buffer.allocUnsafeSlow(plain.length);
      plain.copy(own);
      plain = own;
    }
  } else {
    plain = decryptInto(msg, Buffer.allocUnsafeSlow(Math.max(0, b.len - 28)));
    if (plain.length !== b.rawLength) throw new Fail(plain.length + ' bytes, index says ' + b.rawLength);
  }
  const got = createHmac('sha256', idKey).update(plain).digest();
  if (!got.equals(b.id)) throw new Fail('content does not match its id (got ' + got.toString('hex') + ')');
  return plain;
}

let chain = Promise.resolve();
parentPort.on('message', (m) => {
  if (m.zero) {
    encKey.fill(0);
    idKey.fill(0);
    return;
  }
  chain = chain.then(async () => {
    const range = Buffer.from(m.sab, 0, m.len);
    if (scratch.length < m.len) scratch = Buffer.allocUnsafeSlow(m.len);
    const meta = new Int32Array(m.sab, m.metaOff, m.n * 4);
    const idBase = m.metaOff + m.n * 16;
    const blobs = [];
    for (let i = 0; i < m.n; i++) {
      blobs.push({ off: meta[4 * i], len: meta[4 * i + 1], rawLength: meta[4 * i + 2], compressed: meta[4 * i + 3] === 1, id: Buffer.from(m.sab, idBase + 32 * i, 32) });
    }
    const results = await Promise.all(
      blobs.map((b) =>
        openOne(range, b, scratch.subarray(b.off, b.off + b.len)).then(
          (data) => ({ data }),
          (err) => ({ error: err instanceof Fail ? err.message : 'worker: ' + (err && err.message) }),
        ),
      ),
    );
    const transfer = [];
    for (const r of results) if (r.data && r.data.length > 0) transfer.push(r.data.buffer);
    parentPort.postMessage({ job: m.job, results }, transfer);
  });
});
`;

interface Job {
  resolve: (r: WorkResult[]) => void;
  reject: (e: Error) => void;
  slot: SharedArrayBuffer;
}

interface PoolWorker {
  worker: Worker;
  jobs: Map<number, Job>;
}

const require = createRequire(import.meta.url);

/** A small pool of blob-opening workers. Create with {@link BlobWorkerPool.create}; `close()` when done. */
export class BlobWorkerPool {
  readonly #workers: PoolWorker[] = [];
  readonly #slots: SharedArrayBuffer[] = [];
  #nextJob = 0;
  #broken: Error | undefined;

  private constructor() {}

  /** Starts `count` workers holding copies of the keys; undefined when workers are unavailable. */
  static create(count: number, encKey: Uint8Array, idKey: Uint8Array): BlobWorkerPool | undefined {
    let zstdPath: string;
    try {
      zstdPath = require.resolve('@mongodb-js/zstd/bindings.js');
    } catch {
      return undefined;
    }
    const pool = new BlobWorkerPool();
    try {
      for (let i = 0; i < count; i++) {
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { zstdPath, encKey: Buffer.from(encKey), idKey: Buffer.from(idKey) },
        });
        worker.unref();
        const pw: PoolWorker = { worker, jobs: new Map() };
        worker.on('message', (m: { job: number; results: Array<{ data?: Uint8Array; error?: string }> }) => {
          const job = pw.jobs.get(m.job);
          if (!job) return;
          pw.jobs.delete(m.job);
          pool.#giveSlot(job.slot);
          job.resolve(
            m.results.map((r) =>
              r.data ? { data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength) } : { error: r.error ?? 'worker: no result' },
            ),
          );
        });
        const fail = (err: Error) => {
          pool.#broken ??= err;
          for (const job of pw.jobs.values()) job.reject(err);
          pw.jobs.clear();
        };
        worker.on('error', fail);
        worker.on('exit', (code) => fail(new Error(`blob worker exited (code ${code})`)));
        pool.#workers.push(pw);
      }
    } catch {
      void pool.close();
      return undefined;
    }
    return pool;
  }

  /** True until a worker failed (then callers open blobs on the main thread). */
  get usable(): boolean {
    return this.#broken === undefined && this.#workers.length > 0;
  }

  /** Opens the blobs `blobs` of the stored bytes `range` in a worker. */
  open(range: Uint8Array, blobs: WorkBlob[]): Promise<WorkResult[]> {
    if (this.#broken) return Promise.reject(this.#broken);
    let pw = this.#workers[0]!;
    for (const w of this.#workers) if (w.jobs.size < pw.jobs.size) pw = w;
    // One shared slot carries the stored bytes, then per blob 4 × i32 (offset, length, raw length, compressed), then the ids.
    const n = blobs.length;
    const metaOff = (range.byteLength + 7) & ~7;
    const slot = this.#takeSlot(metaOff + n * META);
    new Uint8Array(slot, 0, range.byteLength).set(range);
    const meta = new Int32Array(slot, metaOff, n * 4);
    const ids = Buffer.from(slot, metaOff + n * 16, n * 32);
    blobs.forEach((b, i) => {
      meta[4 * i] = b.off;
      meta[4 * i + 1] = b.len;
      meta[4 * i + 2] = b.rawLength;
      meta[4 * i + 3] = b.compressed ? 1 : 0;
      ids.write(b.id, 32 * i, 32, 'hex');
    });
    const job = this.#nextJob++;
    return new Promise<WorkResult[]>((resolve, reject) => {
      pw.jobs.set(job, { resolve, reject, slot });
      pw.worker.postMessage({ job, sab: slot, len: range.byteLength, n, metaOff });
    });
  }

  #takeSlot(size: number): SharedArrayBuffer {
    if (size > SLOT_SIZE) return new SharedArrayBuffer(size);
    return this.#slots.pop() ?? new SharedArrayBuffer(SLOT_SIZE);
  }

  #giveSlot(slot: SharedArrayBuffer): void {
    if (this.#slots.length < 8 && slot.byteLength === SLOT_SIZE) this.#slots.push(slot);
  }

  /** Wipes the workers' key copies and stops them. */
  async close(): Promise<void> {
    const ws = this.#workers.splice(0);
    this.#broken ??= new Error('blob workers closed');
    await Promise.all(
      ws.map(async (pw) => {
        try {
          pw.worker.postMessage({ zero: true });
        } catch {
          // already gone
        }
        await pw.worker.terminate();
      }),
    );
  }
}
