import { read as fsRead } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Chunker } from './fastcdc.js';
import type { ChunkerParams } from './params.js';
import { BufferPool, sharedBufferPool } from '../buffer-pool.js';

/** Counters filled in while a chunk reader runs (also its generator return value). */
export interface ChunkReadStats {
  /** Bytes read from the file or stream so far. */
  bytesRead: number;
  /** Chunks yielded so far. */
  chunks: number;
}

/** Options of {@link chunkFile} and {@link chunkStream}. */
export interface ChunkReadOptions {
  /** Counters updated in place as data is read; pass one to observe progress. */
  stats?: ChunkReadStats;
  /** Called after every read with the number of bytes just read. */
  onRead?: (bytes: number) => void;
  /** Aborts between reads: the generator throws `signal.reason`. */
  signal?: AbortSignal;
  /**
   * chunkFile only: read at most this many bytes (typically the lstat size) and
   * treat reaching it as end of file. Saves the final zero-byte read (one
   * thread-pool round trip per file) and keeps content consistent with the
   * recorded size. A file that shrank ends early: compare `stats.bytesRead`.
   */
  length?: number;
  /** chunkFile only: bytes per read call (default 4 MiB, at most maxSize). */
  readSize?: number;
}

const DEFAULT_READ_SIZE = 4 * 1024 * 1024;

const noop = (): void => {};

function toChunker(params: ChunkerParams | Chunker): Chunker {
  return params instanceof Chunker ? params : new Chunker(params);
}

function readFd(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fsRead(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/**
 * Reads a file from offset 0 (positional reads; the descriptor's own offset is
 * neither used nor moved) and yields its content-defined chunks in order.
 * A 0-byte file yields nothing; a file no longer than `minSize` yields one chunk.
 *
 * **BUFFER REUSE CONTRACT — READ THIS:** every yielded `Buffer` is a view into a
 * pooled working buffer. It is valid ONLY until the generator is resumed (the
 * next `next()` / loop iteration) or closed; after that its bytes are
 * overwritten. A consumer that keeps a chunk longer (queues it, hands it to a
 * worker, compresses it asynchronously after the loop moves on) must copy it
 * first (`Buffer.from(chunk)`). Hashing/encrypting it before continuing the
 * loop needs no copy.
 *
 * `params` may be a prebuilt {@link Chunker} (cheaper per file). The working
 * buffer (2 × maxSize) comes from `pool` (default: {@link sharedBufferPool})
 * and is returned to it when the generator finishes, throws or is closed.
 * The descriptor is not closed. Returns the final {@link ChunkReadStats}.
 */
export async function* chunkFile(
  fd: FileHandle | number,
  params: ChunkerParams | Chunker,
  pool: BufferPool = sharedBufferPool,
  options: ChunkReadOptions = {},
): AsyncGenerator<Buffer, ChunkReadStats, undefined> {
  const chunker = toChunker(params);
  const maxSize = chunker.maxSize;
  const stats = options.stats ?? { bytesRead: 0, chunks: 0 };
  const { onRead, signal } = options;
  const limit = options.length ?? Infinity;
  const size = maxSize * 2;
  const readSize = Math.max(1, Math.min(options.readSize ?? DEFAULT_READ_SIZE, maxSize));
  const buf = pool.acquire(size);
  let start = 0; // the current chunk begins here
  let end = 0; // valid data ends here
  let scanned = 0; // buf[start, scanned) holds no cut (findBoundary's resumeFrom)
  let pos = 0; // file offset of buf[end]
  let eof = limit <= 0;
  // One read runs ahead into buf[end, …) while chunks (views before `end`)
  // are handed out, so reading overlaps the consumer's work.
  let pending: Promise<number> | undefined;
  const launch = (): void => {
    if (pending !== undefined || eof || end === size) return;
    const want = Math.min(readSize, size - end, limit - pos);
    const p = typeof fd === 'number' ? readFd(fd, buf, end, want, pos) : fd.read(buf, end, want, pos).then((r) => r.bytesRead);
    // It may fail while a chunk is out with the consumer: mark it handled
    // now (the error is rethrown where it is awaited).
    p.catch(noop);
    pending = p;
  };
  try {
    launch();
    for (;;) {
      const cut = chunker.findBoundary(buf, start, end, scanned);
      if (cut >= 0) {
        const chunk = buf.subarray(start, cut);
        start = scanned = cut;
        stats.chunks++;
        yield chunk;
        continue;
      }
      scanned = end;
      if (pending !== undefined) {
        signal?.throwIfAborted();
        const n = await pending;
        pending = undefined;
        if (n === 0) eof = true;
        else {
          end += n;
          pos += n;
          stats.bytesRead += n;
          onRead?.(n);
          if (pos >= limit) eof = true;
        }
        launch();
        continue;
      }
      if (eof) {
        if (start < end) {
          const chunk = buf.subarray(start, end);
          start = end;
          stats.chunks++;
          yield chunk;
        }
        break;
      }
      // No read pending and not at EOF: the buffer is full up to `size`, and
      // end - start < maxSize (else a cut was found), so compaction frees at
      // least maxSize bytes. Nothing is in flight into the moved region.
      buf.copyWithin(0, start, end);
      end -= start;
      scanned -= start;
      start = 0;
      launch();
    }
  } finally {
    // A read still in flight writes into `buf`: wait for it before the buffer
    // goes back to the pool (errors are moot now).
    if (pending !== undefined) await pending.catch(() => 0);
    pool.release(buf);
  }
  return stats;
}

/**
 * Like {@link chunkFile} for any async iterable of bytes (a plug-in's
 * replacement content, a database dump). The input pieces are copied into the
 * pooled working buffer, so they may be of any size and may be reused by the
 * producer once the next piece is requested. Same **buffer reuse contract**:
 * a yielded chunk is valid only until the generator is resumed.
 */
export async function* chunkStream(
  source: AsyncIterable<Uint8Array>,
  params: ChunkerParams | Chunker,
  pool: BufferPool = sharedBufferPool,
  options: ChunkReadOptions = {},
): AsyncGenerator<Buffer, ChunkReadStats, undefined> {
  const chunker = toChunker(params);
  const maxSize = chunker.maxSize;
  const stats = options.stats ?? { bytesRead: 0, chunks: 0 };
  const { onRead, signal } = options;
  const size = maxSize * 2;
  const buf = pool.acquire(size);
  let start = 0;
  let end = 0;
  let scanned = 0;
  try {
    for await (const piece of source) {
      signal?.throwIfAborted();
      if (!(piece instanceof Uint8Array)) {
        throw new TypeError(`chunkStream: source yielded ${typeof piece}, expected Uint8Array/Buffer`);
      }
      stats.bytesRead += piece.length;
      onRead?.(piece.length);
      let off = 0;
      while (off < piece.length) {
        if (end === size) {
          // end - start < maxSize here (all boundaries were cut): compaction frees ≥ maxSize.
          buf.copyWithin(0, start, end);
          end -= start;
          scanned -= start;
          start = 0;
        }
        const n = Math.min(piece.length - off, size - end);
        buf.set(off === 0 && n === piece.length ? piece : piece.subarray(off, off + n), end);
        end += n;
        off += n;
        if (end < size) continue;
        // Buffer full: cut every boundary in it; the tail (< maxSize) is
        // moved to the front before the next copy.
        for (;;) {
          const cut = chunker.findBoundary(buf, start, end, scanned);
          if (cut < 0) {
            scanned = end;
            break;
          }
          scanned = cut;
          const chunk = buf.subarray(start, cut);
          start = cut;
          stats.chunks++;
          yield chunk;
        }
      }
    }
    while (start < end) {
      let cut = chunker.findBoundary(buf, start, end, scanned);
      if (cut < 0) cut = end;
      scanned = cut;
      const chunk = buf.subarray(start, cut);
      start = cut;
      stats.chunks++;
      yield chunk;
    }
  } finally {
    pool.release(buf);
  }
  return stats;
}
