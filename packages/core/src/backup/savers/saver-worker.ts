/**
 * A file saver (worker thread; built as its own entry, `dist/saver-worker.js`): takes a batch of
 * files, and for each reads it, cuts it into content-defined chunks, computes each chunk's blob
 * id and — unless the shared filter says the blob is already stored — compresses (when it pays)
 * and encrypts it into the shared arena, ready to be copied into a pack. Everything per byte that
 * a backup does, but packing, runs here, so a backup uses every core. See saver-pool.ts for the
 * design, protocol.ts for the messages.
 *
 * File I/O is synchronous: the worker is a thread of its own, so blocking on a read blocks nothing
 * else, and a cold-cache read of many small files no longer stalls the main thread.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, type BigIntStats } from 'node:fs';
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { Chunker } from '../../chunker/fastcdc.js';
import { worthCompressing } from '../../compression/probe.js';
import { OVERHEAD, encryptInto } from '../../crypto/aead.js';
import { hmacSha256 } from '../../crypto/mac.js';
import { FILE_OPEN_FLAGS, isSame, reopenInListedDir } from '../listed-file.js';
import { BlobFilter } from './blob-filter.js';
import { ARENA_HALF, HALF_BUSY, OWN_BUFFER_FROM, type BatchJob, type ChunkReport, type FileReport, type FileSpec, type SaverWorkerData, type StatFields, type WorkerMessage } from './protocol.js';

interface CCtx {
  compress(dst: Uint8Array, src: Uint8Array, level: number): number;
}
interface ZstdNapi {
  CCtx: new () => CCtx;
  compressBound(size: number): number;
}

const data = workerData as SaverWorkerData;
const port = parentPort!;
const control = new Int32Array(data.control);
const arena = new Uint8Array(data.arena);
const filter = new BlobFilter(data.filter);
const chunker = new Chunker({ ...data.chunker, seed: data.chunker.seed });
const zstd = createRequire(import.meta.url)('zstd-napi/binding') as ZstdNapi;
const cctx = new zstd.CCtx();
const OPEN_FLAGS = FILE_OPEN_FLAGS;
/** The read window: a whole chunk of up to maxSize, plus room to read ahead. */
const READ_AHEAD = 1024 * 1024;
const buf = Buffer.allocUnsafeSlow(chunker.maxSize + READ_AHEAD);
/** Compression output, grown when a larger chunk needs it. */
let scratch = Buffer.allocUnsafeSlow(zstd.compressBound(chunker.avgSize * 2));

class FsFailure extends Error {
  constructor(
    readonly op: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------- the arena and reports

/** The arena half being filled, and where. */
let half = 0;
let used = 0;
/** Reports of the current message (files done or in progress), and the open report of the file being read. */
let reports: FileReport[] = [];
let current: FileReport | undefined;
let transfers: ArrayBuffer[] = [];

function post(m: WorkerMessage): void {
  port.postMessage(m, transfers);
  transfers = [];
}

/** Send what the current half holds (and the reports so far), then move to the other half once it is free. */
function flush(last: boolean): void {
  if (current && current.chunks.length > 0) {
    reports.push(current);
    current = { file: current.file, chunks: [] };
  }
  const sealedHere = used > 0;
  // Busy before the message goes: the main thread may copy it out and free the half at once.
  if (sealedHere) Atomics.store(control, HALF_BUSY + half, 1);
  post({ t: 'reports', half: sealedHere ? half : -1, reports, last });
  reports = [];
  if (sealedHere) {
    half ^= 1;
    used = 0;
    // Wait until the main thread has copied out what the other half held.
    while (Atomics.load(control, HALF_BUSY + half) !== 0) Atomics.wait(control, HALF_BUSY + half, 1);
  }
}

/** Compress (when it pays) and encrypt `chunk`; returns where it went. */
function seal(chunk: Buffer): Pick<ChunkReport, 'sealedAt' | 'sealedLength' | 'compressed' | 'own'> {
  let payload: Uint8Array = chunk;
  let compressed = false;
  if (chunk.byteLength >= 64) {
    if (worthCompressing(chunk, (slice) => cctx.compress(scratch, slice, 1))) {
      const bound = zstd.compressBound(chunk.byteLength);
      if (scratch.byteLength < bound) scratch = Buffer.allocUnsafeSlow(bound);
      const n = cctx.compress(scratch, chunk, data.level);
      if (n < chunk.byteLength) {
        payload = scratch.subarray(0, n);
        compressed = true;
      }
    }
  }
  const sealedLength = payload.byteLength + OVERHEAD;
  if (sealedLength >= OWN_BUFFER_FROM) {
    const own = new Uint8Array(sealedLength);
    encryptInto(data.encKey, payload, own, 0);
    transfers.push(own.buffer as ArrayBuffer);
    return { sealedAt: -2, sealedLength, compressed, own };
  }
  if (used + sealedLength > ARENA_HALF) flush(false);
  const at = half * ARENA_HALF + used;
  encryptInto(data.encKey, payload, arena, at);
  used += sealedLength;
  return { sealedAt: at - half * ARENA_HALF, sealedLength, compressed };
}

function chunkDone(chunk: Buffer, offset: number): void {
  const id = hmacSha256(data.idKey, chunk);
  const report: ChunkReport = filter.mightHave(id)
    ? { id: new Uint8Array(id), offset, length: chunk.byteLength, sealedAt: -1, sealedLength: 0, compressed: false }
    : { id: new Uint8Array(id), offset, length: chunk.byteLength, ...seal(chunk) };
  current!.chunks.push(report);
}

// ---------------------------------------------------------------- one file

function statFields(st: BigIntStats): StatFields {
  return {
    dev: st.dev.toString(),
    ino: st.ino.toString(),
    mode: st.mode.toString(),
    nlink: st.nlink.toString(),
    uid: st.uid.toString(),
    gid: st.gid.toString(),
    rdev: st.rdev.toString(),
    size: st.size.toString(),
    blksize: st.blksize.toString(),
    blocks: st.blocks.toString(),
    atimeNs: st.atimeNs.toString(),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    birthtimeNs: st.birthtimeNs.toString(),
  };
}

function saveFile(spec: FileSpec): void {
  let fd: number;
  try {
    fd = openSync(Buffer.from(spec.path, 'latin1'), OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FsFailure('open', code, 'file vanished before it could be read');
    if (code === 'ELOOP') throw new FsFailure('open', code, 'file was replaced by a symlink');
    throw new FsFailure('open', code, (err as Error).message);
  }
  try {
    let st: BigIntStats;
    try {
      st = fstatSync(fd, { bigint: true });
    } catch (err) {
      throw new FsFailure('fstat', (err as NodeJS.ErrnoException).code, (err as Error).message);
    }
    if (spec.dirIno !== undefined && spec.dirDev !== undefined && !isSame(st, { dev: BigInt(spec.dev), ino: BigInt(spec.ino) })) {
      // Not the file the walk listed: replaced in its directory, or reached through a swapped one.
      const first = fd;
      fd = -1;
      closeSync(first);
      try {
        fd = reopenInListedDir(Buffer.from(spec.path, 'latin1'), { dev: BigInt(spec.dirDev), ino: BigInt(spec.dirIno) });
        st = fstatSync(fd, { bigint: true });
      } catch (err) {
        throw new FsFailure(fd < 0 ? 'open' : 'fstat', (err as NodeJS.ErrnoException).code, (err as Error).message);
      }
    }
    if (!st.isFile()) throw new FsFailure('fstat', undefined, 'no longer a regular file');
    if (st.ino.toString() !== spec.ino || st.dev.toString() !== spec.dev || st.size.toString() !== spec.size || st.mtimeNs.toString() !== spec.mtimeNs || st.ctimeNs.toString() !== spec.ctimeNs) {
      current!.stat = statFields(st);
    }
    const size = Number(st.size);
    let start = 0;
    let end = 0;
    let scanned = 0;
    let pos = 0; // file offset of buf[end]
    let eof = size === 0;
    for (;;) {
      const cut = chunker.findBoundary(buf, start, end, scanned);
      if (cut >= 0) {
        chunkDone(buf.subarray(start, cut), pos - (end - start));
        start = scanned = cut;
        continue;
      }
      scanned = end;
      if (eof) {
        if (end > start) chunkDone(buf.subarray(start, end), pos - (end - start));
        break;
      }
      // Move the unfinished chunk to the front, then read more after it.
      if (start > 0) {
        buf.copy(buf, 0, start, end);
        end -= start;
        scanned -= start;
        start = 0;
      }
      let n: number;
      try {
        n = readSync(fd, buf, end, Math.min(buf.byteLength - end, size - pos), pos);
      } catch (err) {
        throw new FsFailure('read', (err as NodeJS.ErrnoException).code, (err as Error).message);
      }
      if (n === 0) eof = true;
      else {
        end += n;
        pos += n;
        if (pos >= size) eof = true;
      }
    }
    let changed = pos !== size;
    if (!changed && size > chunker.minSize) {
      try {
        const after = fstatSync(fd, { bigint: true });
        changed = after.size !== st.size || after.mtimeNs !== st.mtimeNs;
      } catch {
        // fstat on an open descriptor does not fail in practice
      }
    }
    current!.done = { bytesRead: pos, changed };
  } finally {
    try {
      if (fd >= 0) closeSync(fd);
    } catch {
      // nothing to do
    }
  }
}

/** Tests only: `KIWI_TEST_SAVER_CRASH=<n>` ends this thread abruptly when it starts its n-th file. */
const crashAt = Number(process.env.KIWI_TEST_SAVER_CRASH ?? 0);
let filesStarted = 0;

port.on('message', (job: BatchJob) => {
  if (crashAt > 0 && (filesStarted += job.files.length) >= crashAt) process.exit(70);
  try {
    for (let i = 0; i < job.files.length; i++) {
      current = { file: i, chunks: [] };
      try {
        saveFile(job.files[i]!);
      } catch (err) {
        if (!(err instanceof FsFailure)) throw err;
        // The chunks reported so far are dropped by the main thread; the file is an entry error.
        current.error = { op: err.op, ...(err.code ? { code: err.code } : {}), message: err.message };
      }
      reports.push(current);
      current = undefined;
    }
    flush(true);
  } catch (err) {
    post({ t: 'failed', message: err instanceof Error ? err.message : String(err) });
  }
});
