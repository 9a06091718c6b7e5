/**
 * SFTP requests on one connection, counted for the watchdog (see {@link Conn}), as promises.
 */
import { posix } from 'node:path';
import type { Stats } from 'ssh2';
import type { Conn } from './connection.js';
import { SFTP_NO_SUCH_FILE, errCode } from './errors.js';

/** Requests kept in flight per transfer (each up to the server's max read/write length, 255 KiB on OpenSSH). */
export const PIPELINE = 16;

/** Issue one SFTP request with watchdog bookkeeping. */
export function req<T>(c: Conn, send: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  // A plain error: run() wraps it into a transient StorageError naming the operation and file.
  if (c.dead) return Promise.reject(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' }));
  return new Promise<T>((resolve, reject) => {
    // The watchdog's clock ("no reply for requestTimeoutMs") starts when a request goes out on an idle
    // connection: the last reply may be minutes old (a backup walking an unchanged tree sends nothing),
    // and the next tick would drop the connection before the server had a chance to answer.
    if (c.pending === 0) c.lastReply = Date.now();
    c.pending++;
    let settled = false;
    const cb = (err: Error | null | undefined, value?: T) => {
      if (settled) return;
      settled = true;
      c.pending--;
      c.lastReply = Date.now();
      if (err) reject(err);
      else resolve(value as T);
    };
    try {
      send(cb);
    } catch (err) {
      cb(err as Error);
    }
  });
}

export function openFile(c: Conn, path: string, flags: 'r' | 'w'): Promise<Buffer> {
  return req<Buffer>(c, (cb) => c.sftp.open(path, flags, cb));
}

export function closeHandle(c: Conn, h: Buffer): Promise<void> {
  return req<void>(c, (cb) => c.sftp.close(h, cb));
}

export function fstat(c: Conn, h: Buffer): Promise<Stats> {
  return req<Stats>(c, (cb) => c.sftp.fstat(h, cb));
}

export function unlink(c: Conn, path: string): Promise<void> {
  return req<void>(c, (cb) => c.sftp.unlink(path, cb));
}

/** mkdir -p over SFTP. An existing directory is fine. */
export async function mkdirs(c: Conn, dir: string): Promise<void> {
  if (dir === '' || dir === '.' || dir === '/') return;
  try {
    await req<void>(c, (cb) => c.sftp.mkdir(dir, cb));
    return;
  } catch (err) {
    const code = errCode(err);
    if (code === SFTP_NO_SUCH_FILE) {
      await mkdirs(c, posix.dirname(dir));
      try {
        await req<void>(c, (cb) => c.sftp.mkdir(dir, cb));
        return;
      } catch (err2) {
        err = err2;
      }
    }
    // OpenSSH answers FAILURE for "already exists": check it is a directory.
    let st: Stats | undefined;
    try {
      st = await req<Stats>(c, (cb) => c.sftp.stat(dir, cb));
    } catch {
      st = undefined;
    }
    if (st?.isDirectory()) return;
    throw err;
  }
}
