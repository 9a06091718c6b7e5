/**
 * `verify`: each restored file is read back and compared with the snapshot.
 * The file is read blob by blob (the blob lengths come from the index) and
 * the keyed hash of each part must equal its blob id, so no repository data
 * is read again and nothing is re-chunked: one read of the file and one
 * HMAC-SHA-256 over it. A repository without an index lookup (a test
 * stand-in) has the blobs loaded and compared byte for byte instead.
 *
 * Files are verified as soon as they are in place, while the restore goes on
 * (their pages are still cached), two at a time; the traversal waits when
 * too many are queued.
 */
import { close as fsClose, constants as fsConstants, fstat as fsFstat, open as fsOpen, read as fsRead } from 'node:fs';
import { promisify } from 'node:util';
import type { BlobId, Node } from '../repository/types.js';

const openFd = promisify(fsOpen) as (path: Buffer, flags: number) => Promise<number>;
const closeFd = promisify(fsClose);
const fstatFd = promisify(fsFstat);
function readFd(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsRead(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
// (O_NONBLOCK: a FIFO put in the file's place fails the check instead of blocking the open.)
const READ_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | fsConstants.O_NONBLOCK;
const WORKERS = 2;
const QUEUE_MAX = 256;

/** What verification needs from the repository. */
export interface VerifySource {
  blobId?(data: Uint8Array): BlobId;
  lookupBlob?(type: 'data', id: BlobId): { rawLength: number } | undefined;
  loadBlob(type: 'data', id: BlobId): Promise<Buffer>;
}

interface Job {
  fsPath: Buffer;
  node: Node;
  snapPath: string;
  /** Settles the job's `done` (verified, mismatch reported, or dropped by `stop`). */
  settle: () => void;
}

export class Verifier {
  verified = 0;
  readonly #queue: Job[] = [];
  #head = 0;
  #running = 0;
  #idle: Array<() => void> = [];
  #room: Array<() => void> = [];
  #stopped = false;

  constructor(
    readonly source: VerifySource,
    readonly onMismatch: (snapPath: string, err: Error) => void,
  ) {}

  /**
   * Queues a restored file. `done` resolves when it is verified (a mismatch goes to `onMismatch`)
   * or dropped by `stop`; `room`, when set, is a promise to wait on because the queue is full.
   * The file's path must stay valid until `done` (its directory open, see anchors.ts).
   */
  add(fsPath: Buffer, node: Node, snapPath: string): { done: Promise<void>; room: Promise<void> | undefined } {
    if (this.#stopped) return { done: Promise.resolve(), room: undefined };
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    this.#queue.push({ fsPath, node, snapPath, settle });
    this.#pump();
    if (this.#queue.length - this.#head < QUEUE_MAX) return { done, room: undefined };
    return { done, room: new Promise((r) => this.#room.push(r)) };
  }

  /** Resolves when every queued file is verified. */
  finish(): Promise<void> {
    if (this.#running === 0 && this.#head >= this.#queue.length) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Drops what is queued (the restore stopped). */
  stop(): Promise<void> {
    this.#stopped = true;
    for (let i = this.#head; i < this.#queue.length; i++) this.#queue[i]!.settle();
    this.#queue.length = 0;
    this.#head = 0;
    this.#wake();
    return this.finish();
  }

  #pump(): void {
    while (this.#running < WORKERS && this.#head < this.#queue.length) {
      const job = this.#queue[this.#head++]!;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      this.#running++;
      void this.#verify(job)
        .then(
          () => {
            this.verified++;
          },
          (err: unknown) => this.onMismatch(job.snapPath, err instanceof Error ? err : new Error(String(err))),
        )
        .finally(() => {
          job.settle();
          this.#running--;
          this.#pump();
          this.#wake();
        });
    }
  }

  #wake(): void {
    if (this.#queue.length - this.#head < QUEUE_MAX) {
      const r = this.#room;
      this.#room = [];
      for (const f of r) f();
    }
    if (this.#running === 0 && this.#head >= this.#queue.length) {
      const r = this.#idle;
      this.#idle = [];
      for (const f of r) f();
    }
  }

  #buf: Buffer[] = [];

  async #verify(job: Job): Promise<void> {
    const { node } = job;
    const fd = await openFd(job.fsPath, READ_FLAGS);
    const buf = this.#buf.pop();
    let mine = buf;
    try {
      const st = await fstatFd(fd);
      if (!st.isFile()) throw new Error('verify: not a regular file');
      if (st.size !== node.size) throw new Error(`verify: ${st.size} bytes, the snapshot has ${node.size}`);
      let pos = 0;
      for (const id of node.content ?? []) {
        const len = this.source.lookupBlob && this.source.blobId ? this.source.lookupBlob('data', id)?.rawLength : undefined;
        const expected = len === undefined ? await this.source.loadBlob('data', id) : undefined;
        const n = len ?? expected!.length;
        if (!mine || mine.length < n) mine = Buffer.allocUnsafe(Math.max(n, 64 * 1024));
        let got = 0;
        while (got < n) {
          const r = await readFd(fd, mine, got, n - got, pos + got);
          if (r === 0) break;
          got += r;
        }
        const part = mine.subarray(0, got);
        const same = got === n && (expected ? part.equals(expected) : this.source.blobId!(part) === id);
        if (!same) throw new Error(`verify: the content differs from the snapshot at bytes ${pos}–${pos + n} (blob ${id})`);
        pos += n;
      }
      if (pos !== node.size) throw new Error(`verify: the snapshot's blobs hold ${pos} bytes, its size says ${node.size}`);
    } finally {
      if (mine && this.#buf.length < WORKERS) this.#buf.push(mine);
      await closeFd(fd);
    }
  }
}
