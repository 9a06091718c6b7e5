/**
 * Writing files: {@link save} and {@link saveFrom} write a temporary file beside the target and
 * rename it into place ({@link saveWith}), with several write requests in flight ({@link writeAll}).
 */
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { StorageError, assertValidHandle, handlePath, sourceSizeError, type Handle, type SaveSource } from '@kiwi-backup/core';
import type { Conn } from './connection.js';
import { SFTP_FAILURE, SFTP_NO_SUCH_FILE, errCode } from './errors.js';
import type { SftpPool } from './pool.js';
import { PIPELINE, closeHandle, fstat, mkdirs, openFile, req, unlink } from './requests.js';

/** What a temporary file's name has after its target's: `<name>~kiwi-tmp-<12 hex>`. */
export const TMP_MARK = '~kiwi-tmp-';

/** Write all of `buf` at offset 0 with up to {@link PIPELINE} requests in flight. */
/** Write `buf` at file offset `at` (default 0), several requests in flight. */
function writeAll(c: Conn, h: Buffer, buf: Buffer, at = 0): Promise<void> {
  const n = buf.length;
  if (n === 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let next = 0;
    let inflight = 0;
    let failed = false;
    const pump = () => {
      while (!failed && inflight < PIPELINE && next < n) {
        const off = next;
        const len = Math.min(c.maxWrite, n - off);
        next += len;
        inflight++;
        req<void>(c, (cb) => c.sftp.write(h, buf, off, len, at + off, cb)).then(
          () => {
            inflight--;
            if (failed) return;
            if (next >= n && inflight === 0) resolve();
            else pump();
          },
          (err: unknown) => {
            inflight--;
            if (!failed) {
              failed = true;
              reject(err);
            }
          },
        );
      }
    };
    pump();
  });
}

export async function save(pool: SftpPool, handle: Handle, data: Uint8Array): Promise<void> {
  assertValidHandle(handle);
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  await saveWith(pool, handle, buf.length, async (c, h) => {
    await writeAll(c, h, buf);
  });
}

/** Writes the source's chunks as they come, each pipelined like `save`'s buffer; a new attempt opens the source again. */
export async function saveFrom(pool: SftpPool, handle: Handle, source: SaveSource): Promise<void> {
  assertValidHandle(handle);
  const where = handlePath(handle);
  const size = source.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`save ${where}: the source's size must be a non-negative integer, got ${String(size)}`);
  await saveWith(pool, handle, size, async (c, h) => {
    let written = 0;
    for await (const chunk of source.open()) {
      if (written + chunk.byteLength > size) throw sourceSizeError(where, size, `more than ${size}`);
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      await writeAll(c, h, buf, written);
      written += buf.length;
    }
    if (written !== size) throw sourceSizeError(where, size, String(written));
  });
}

/**
 * Write a temporary file beside the target with `write`, check the server holds `expected` bytes,
 * then rename it into place (atomically where the server has posix-rename).
 */
async function saveWith(pool: SftpPool, handle: Handle, expected: number, write: (c: Conn, h: Buffer) => Promise<void>): Promise<void> {
  const rel = handlePath(handle);
  const path = pool.full(rel);
  const dir = posix.dirname(path);
  const tmp = `${path}${TMP_MARK}${randomBytes(6).toString('hex')}`;
  await pool.run('save', rel, async (c) => {
    let h: Buffer;
    try {
      h = await openFile(c, tmp, 'w');
    } catch (err) {
      // Parent directory missing (repository not create()d, or a data/xx dir removed): create it, once.
      if (errCode(err) !== SFTP_NO_SUCH_FILE) throw err;
      await mkdirs(c, dir);
      h = await openFile(c, tmp, 'w');
    }
    try {
      await write(c, h);
      const st = await fstat(c, h);
      if (st.size !== expected) {
        throw new StorageError(
          `SFTP save ${pool.location}/${rel}: the server stored ${st.size} bytes, expected ${expected}`,
          { kind: 'integrity', location: `${pool.location}/${rel}` },
        );
      }
      if (pool.r.fsync && c.fsync) await req<void>(c, (cb) => c.sftp.ext_openssh_fsync(h, cb));
      await closeHandle(c, h);
    } catch (err) {
      if (!c.dead) {
        await closeHandle(c, h).catch(() => undefined);
        await unlink(c, tmp).catch(() => undefined);
      }
      throw err;
    }
    try {
      if (c.posixRename) {
        await req<void>(c, (cb) => c.sftp.ext_openssh_rename(tmp, path, cb));
      } else {
        try {
          await req<void>(c, (cb) => c.sftp.rename(tmp, path, cb));
        } catch (err) {
          // SFTPv3 rename refuses to overwrite: remove the old file, then rename (not atomic on such servers).
          if (errCode(err) !== SFTP_FAILURE) throw err;
          await unlink(c, path).catch(() => undefined);
          await req<void>(c, (cb) => c.sftp.rename(tmp, path, cb));
        }
      }
    } catch (err) {
      if (!c.dead) await unlink(c, tmp).catch(() => undefined);
      throw err;
    }
  });
}
