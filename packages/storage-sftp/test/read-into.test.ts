/**
 * The pipelined reader fills the caller's buffer (LoadOptions.into), so it must not settle while
 * reads are still in flight: a late reply would write into a buffer the caller already reuses.
 * Tested against a fake connection (no server), where the timing is under control.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { deterministicBytes } from '@kiwi-backup/storage-testkit';
import type { Conn } from '../src/connection.js';
import { readAll } from '../src/read.js';

type ReadCb = (err: Error | undefined, bytesRead?: number) => void;

/** A fake connection whose `read` answers from `file`, each chunk after `delayOf(off)` ms, or fails. */
function fakeConn(file: Buffer, delayOf: (position: number) => number, failAt?: number) {
  const log = { writesAfterSettle: 0, settled: false, reads: 0 };
  const conn = {
    id: 1,
    dead: false,
    pending: 0,
    lastReply: Date.now(),
    maxRead: 1024,
    sftp: {
      read(_h: Buffer, buf: Buffer, off: number, len: number, position: number, cb: ReadCb) {
        log.reads++;
        setTimeout(() => {
          if (position === failAt) return cb(Object.assign(new Error('injected failure'), { code: 4 }));
          const n = Math.max(0, Math.min(len, file.byteLength - position));
          if (n > 0 && log.settled) log.writesAfterSettle++;
          if (n > 0) file.copy(buf, off, position, position + n);
          cb(undefined, n);
        }, delayOf(position));
      },
    },
  };
  return { conn, log };
}

/** `readAll` on a fake connection, which has only what reads use. */
function readAllOn(c: unknown, h: Buffer, out: Buffer, position: number): Promise<void> {
  return readAll(c as Conn, h, out, position);
}

describe('SFTP readAll', () => {
  it('fills a view of a bigger buffer exactly, leaving the rest alone', async () => {
    const file = deterministicBytes(20_000, 'readall-file');
    const { conn } = fakeConn(file, (p) => (p / 1024) % 3);
    const into = Buffer.alloc(12_000, 0xee);
    await readAllOn(conn, Buffer.from('h'), into.subarray(0, 10_000), 333);
    expect(into.subarray(0, 10_000).equals(file.subarray(333, 10_333))).toBe(true);
    expect(into.subarray(10_000).every((b) => b === 0xee)).toBe(true);
  });

  it('on a failed read, rejects only after every read in flight has answered', async () => {
    const file = deterministicBytes(64 * 1024, 'readall-fail');
    // The first chunk fails at once; the other 15 in flight answer (and write) 30 ms later.
    const { conn, log } = fakeConn(file, (p) => (p === 0 ? 0 : 30), 0);
    const out = Buffer.alloc(32 * 1024);
    const err = await readAllOn(conn, Buffer.from('h'), out, 0).then(
      () => undefined,
      (e: unknown) => e,
    );
    log.settled = true;
    expect((err as Error).message).toBe('injected failure');
    expect(log.reads).toBe(16);
    const snapshot = Buffer.from(out);
    await sleep(60);
    expect(log.writesAfterSettle).toBe(0);
    expect(out.equals(snapshot)).toBe(true);
  });

  it('at the end of the file, rejects with eof after the reads in flight answered', async () => {
    const file = deterministicBytes(3000, 'readall-eof');
    const { conn, log } = fakeConn(file, (p) => (p >= 3072 ? 0 : 20));
    const out = Buffer.alloc(8 * 1024);
    const err = (await readAllOn(conn, Buffer.from('h'), out, 0).catch((e: unknown) => e)) as { eof?: boolean };
    log.settled = true;
    expect(err.eof).toBe(true);
    expect(out.subarray(0, 3000).equals(file)).toBe(true);
    await sleep(40);
    expect(log.writesAfterSettle).toBe(0);
  });
});
