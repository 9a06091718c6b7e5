/**
 * Reading files: {@link load}, whole or a range, into a new buffer or the caller's (LoadOptions.into),
 * with several read requests in flight ({@link readAll}).
 */
import { StorageError, allocLoadBuffer, assertValidHandle, handlePath, loadTarget, type Handle, type LoadOptions } from '@kiwi-backup/core';
import type { Conn } from './connection.js';
import type { SftpPool } from './pool.js';
import { PIPELINE, closeHandle, fstat, openFile, req } from './requests.js';

/**
 * Fill `out` from file offset `position`, pipelined. Rejects with `eof` set if the file ends
 * before `out` is full. Settles only once no read is in flight, so nothing writes into `out`
 * afterwards (it may be the caller's reused buffer, LoadOptions.into). The watchdog bounds the
 * wait: a dead connection fails its outstanding requests.
 */
export function readAll(c: Conn, h: Buffer, out: Buffer, position: number): Promise<void> {
  const n = out.length;
  if (n === 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    let inflight = 0;
    let failed = false;
    let firstError: unknown;
    const settleFailure = () => {
      if (failed && inflight === 0) reject(firstError);
    };
    const fail = (err: unknown) => {
      if (!failed) {
        failed = true;
        firstError = err;
      }
      settleFailure();
    };
    const readChunk = (off: number, len: number) => {
      inflight++;
      req<number>(c, (cb) =>
        c.sftp.read(h, out, off, len, position + off, (err, bytesRead) => cb(err, bytesRead)),
      ).then(
        (got) => {
          inflight--;
          if (failed) {
            settleFailure();
            return;
          }
          if (!got) {
            fail(Object.assign(new Error('end of file'), { eof: true }));
            return;
          }
          if (got < len) readChunk(off + got, len - got); // short read: ask for the rest
          else if (next >= n && inflight === 0) resolve();
          else pump();
        },
        (err: unknown) => {
          inflight--;
          fail(err);
        },
      );
    };
    const pump = () => {
      while (!failed && inflight < PIPELINE && next < n) {
        const off = next;
        const len = Math.min(c.maxRead, n - off);
        next += len;
        readChunk(off, len);
      }
    };
    pump();
  });
}

export async function load(pool: SftpPool, handle: Handle, options: LoadOptions = {}): Promise<Buffer> {
  assertValidHandle(handle);
  const rel = handlePath(handle);
  const offset = options.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset} for ${rel}`);
  if (options.length !== undefined && (!Number.isSafeInteger(options.length) || options.length < 0)) {
    throw new RangeError(`invalid length ${options.length} for ${rel}`);
  }
  return await pool.run('load', rel, async (c) => {
    const h = await openFile(c, pool.full(rel), 'r');
    try {
      let length = options.length;
      if (length === undefined) {
        const size = (await fstat(c, h)).size;
        if (offset > size) throw rangeError(pool.location, rel, offset, undefined, size);
        length = size - offset;
      }
      // Read into the caller's buffer when it passed a big enough `into` (LoadOptions.into).
      const out = loadTarget(options) ?? allocLoadBuffer(length, `${pool.location}/${rel}`, options);
      try {
        await readAll(c, h, out, offset);
      } catch (err) {
        if ((err as { eof?: boolean }).eof) {
          const size = (await fstat(c, h).catch(() => undefined))?.size;
          throw rangeError(pool.location, rel, offset, length, size);
        }
        throw err;
      }
      return out;
    } finally {
      if (!c.dead) void closeHandle(c, h).catch(() => undefined);
    }
  });
}

function rangeError(location: string, rel: string, offset: number, length: number | undefined, size: number | undefined): StorageError {
  const range = length === undefined ? `offset ${offset}` : `bytes ${offset}..${offset + length}`;
  return new StorageError(
    `SFTP load ${location}/${rel}: ${range} is past the end of the file${size === undefined ? '' : ` (${size} bytes)`}`,
    { kind: 'other', location: `${location}/${rel}` },
  );
}
