/**
 * Writing the content of a sparse file (a node with `sparse`) so that its
 * runs of zeros stay holes: content is written in runs of 4 KiB blocks
 * (aligned to the file offset) that hold a non-zero byte; all-zero blocks
 * are skipped, and the file gets its length from `ftruncate` at the end.
 * Only nodes marked sparse take this path (a file of written zeros comes back
 * as written zeros); the zero test is a `memcmp` against a zero page, which
 * stops at the first non-zero byte.
 */
import { write as fsWrite, writeSync } from 'node:fs';

export const HOLE_BLOCK = 4096;
const ZERO = Buffer.alloc(HOLE_BLOCK);

/** Runs [start, end) of `buf` (file offset `pos`) that hold data, in block steps aligned to the file. */
function* dataRuns(buf: Buffer, pos: number): Generator<[number, number]> {
  let runStart = -1;
  let off = 0;
  while (off < buf.length) {
    const next = Math.min(buf.length, off + (HOLE_BLOCK - ((pos + off) % HOLE_BLOCK)));
    const zero = buf.compare(ZERO, 0, next - off, off, next) === 0;
    if (!zero && runStart < 0) runStart = off;
    if (zero && runStart >= 0) {
      yield [runStart, off];
      runStart = -1;
    }
    off = next;
  }
  if (runStart >= 0) yield [runStart, buf.length];
}

function writeAt(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Writes the data blocks of `buf` at file position `pos`, leaving all-zero blocks unwritten. */
export async function writeSparseAt(fd: number, buf: Buffer, pos: number): Promise<void> {
  for (const [start, end] of dataRuns(buf, pos)) {
    let off = start;
    while (off < end) off += await writeAt(fd, buf, off, end - off, pos + off);
  }
}

/** The synchronous {@link writeSparseAt}. */
export function writeSparseAtSync(fd: number, buf: Buffer, pos: number): void {
  for (const [start, end] of dataRuns(buf, pos)) {
    let off = start;
    while (off < end) off += writeSync(fd, buf, off, end - off, pos + off);
  }
}
