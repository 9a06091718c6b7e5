/**
 * The file savers' protocol: how the backup's main thread and its saver workers talk (see
 * saver-pool.ts for the design). Nothing is asked per chunk: a worker decides alone, with a
 * shared filter of the blobs already stored, which chunks to compress and encrypt, and reports
 * whole files (or, for big files, arena-fulls of chunks) in one message.
 *
 * Shared memory per worker:
 * - `control` (Int32Array): `HALF_BUSY + h` is 1 while arena half `h` holds sealed blobs the main
 *   thread has not copied into packs yet; the main thread clears it (Atomics.notify) once copied.
 *   The worker waits for a free half before it seals more: back-pressure from the packer.
 * - `arena`: two halves of {@link ARENA_HALF} bytes for sealed blobs; a sealed blob larger than
 *   {@link OWN_BUFFER_FROM} travels in a buffer of its own, transferred with the message.
 * Shared by all workers:
 * - `filter`: a Bloom filter of the data blob ids already stored or claimed (the main thread only
 *   ever sets bits). A chunk it says is known is not sealed; the main thread checks each such
 *   answer against its index and reads the rare false positive itself.
 */

export const HALF_BUSY = 0;
export const CONTROL_WORDS = 2;
/** Bytes of each arena half. */
export const ARENA_HALF = 8 * 1024 * 1024;
/** Sealed blobs at least this large get a buffer of their own instead of arena space. */
export const OWN_BUFFER_FROM = 4 * 1024 * 1024;
/** Small files a worker takes in one job. */
export const BATCH_FILES = 32;

/** What the worker is given once. */
export interface SaverWorkerData {
  encKey: Uint8Array;
  idKey: Uint8Array;
  chunker: { minSize: number; avgSize: number; maxSize: number; seed: Uint8Array };
  level: number;
  control: SharedArrayBuffer;
  arena: SharedArrayBuffer;
  filter: SharedArrayBuffer;
}

/** One file to read: its path and what the walk's lstat saw (decimal strings). */
export interface FileSpec {
  /**
   * The path's exact bytes as a latin1 string (one char per byte). Not a Buffer: the walk's paths are
   * views of Node's 8 KiB buffer pool, and a message copies a view's whole ArrayBuffer, 8 KiB per file.
   */
  path: string;
  ino: string;
  dev: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  /** The directory the walk listed the file in (absent for a source): see listed-file.ts. */
  dirDev?: string;
  dirIno?: string;
}

/** Main → worker: read, chunk and seal these files, in order. */
export interface BatchJob {
  t: 'batch';
  files: FileSpec[];
}

/** The fstat of the opened file, when it differs from the walk's lstat (decimal strings). */
export interface StatFields {
  dev: string;
  ino: string;
  mode: string;
  nlink: string;
  uid: string;
  gid: string;
  rdev: string;
  size: string;
  blksize: string;
  blocks: string;
  atimeNs: string;
  mtimeNs: string;
  ctimeNs: string;
  birthtimeNs: string;
}

/** One chunk of a file, in order. */
export interface ChunkReport {
  /** The blob id, raw (32 bytes). */
  id: Uint8Array;
  /** Where the chunk is in the file. */
  offset: number;
  length: number;
  /** Sealed in the arena half of its message at this offset; -1: not sealed (the filter says it is known); -2: in `own`. */
  sealedAt: number;
  sealedLength: number;
  compressed: boolean;
  /** The sealed blob, when it did not go into the arena. */
  own?: Uint8Array;
}

/** Worker → main: progress on the files of the current batch. */
export interface FileReport {
  /** Index of the file in its batch. */
  file: number;
  chunks: ChunkReport[];
  /** The opened file's fstat, when it differs from the walk's (in the file's first report). */
  stat?: StatFields;
  /** Set in the file's last report. */
  done?: { bytesRead: number; changed: boolean };
  error?: { op: string; code?: string; message: string };
}

export type WorkerMessage =
  /** Files' reports; `half` is the arena half their sealed chunks are in (-1: none). The batch ends with `last`. */
  | { t: 'reports'; half: number; reports: FileReport[]; last: boolean }
  | { t: 'failed'; message: string };
