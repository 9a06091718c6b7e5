/**
 * Read-ahead of file content for the restore: files announce the blobs they
 * will need (in restore order), and the fetcher loads them ahead in batches —
 * through `loadBlobs` when the repository has it, so neighbouring blobs of a
 * pack come in one ranged read — keeping at most `budget` stored bytes loaded
 * or loading and not yet taken.
 */
import type { BlobId, BlobType } from '../repository/types.js';

/** What the fetcher needs from the repository. */
export interface FetchSource {
  loadBlob(type: BlobType, id: BlobId): Promise<Buffer>;
  loadBlobs?(type: BlobType, ids: readonly BlobId[], onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void): Promise<void>;
  /** Stored size of a blob (for the memory budget); unknown blobs count as 1 MiB. */
  lookupBlob?(type: BlobType, id: BlobId): { length: number } | undefined;
}

interface Entry {
  id: BlobId;
  /** Planned uses not taken yet. */
  refs: number;
  size: number;
  started: boolean;
  /** Counted in `used` (loading or loaded, with uses left). */
  charged: boolean;
  promise: Promise<Buffer>;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

const UNKNOWN_SIZE = 1024 * 1024;
/** Stored bytes per batch handed to `loadBlobs`. */
const BATCH_BYTES = 8 * 1024 * 1024;
const BATCH_BLOBS = 512;
/** Batches loading at once. */
const BATCHES_IN_FLIGHT = 2;

/** A file's claim on planned blobs: take each in order, release what is left at the end. */
export interface Claim {
  take(i: number): Promise<Buffer>;
  /** Drops the uses not taken (on failure or abort), so their memory is freed. */
  release(): void;
}

export class BlobFetcher {
  readonly #entries = new Map<BlobId, Entry>();
  /** Entries planned and not started, in plan order (may hold started or dropped ones; skipped). */
  #queue: Entry[] = [];
  #head = 0;
  #used = 0;
  #batches = 0;
  #closed = false;

  constructor(
    readonly source: FetchSource,
    readonly budget: number,
  ) {}

  /** Announce that a file will take `ids` (in order). */
  plan(ids: readonly BlobId[]): Claim {
    const entries: Entry[] = ids.map((id) => this.#want(id));
    let taken = 0;
    let released = false;
    this.#pump();
    return {
      take: (i: number) => {
        const e = entries[i];
        if (!e || released || i !== taken) throw new Error(`restore: blob ${i} of a file taken out of order`);
        taken++;
        return this.#take(e);
      },
      release: () => {
        if (released) return;
        released = true;
        for (let i = taken; i < entries.length; i++) this.#drop(entries[i]!);
      },
    };
  }

  /** Stop loading ahead (pending takes still complete). */
  close(): void {
    this.#closed = true;
  }

  #want(id: BlobId): Entry {
    const known = this.#entries.get(id);
    if (known) {
      known.refs++;
      return known;
    }
    let resolve!: (b: Buffer) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    const size = this.source.lookupBlob?.('data', id)?.length ?? UNKNOWN_SIZE;
    const e: Entry = { id, refs: 1, size, started: false, charged: false, promise, resolve, reject };
    this.#entries.set(id, e);
    this.#queue.push(e);
    return e;
  }

  #take(e: Entry): Promise<Buffer> {
    if (!e.started) this.#start([e]); // wanted now: load it even past the budget
    e.refs--;
    if (e.refs === 0) this.#finish(e);
    return e.promise;
  }

  #drop(e: Entry): void {
    e.refs--;
    if (e.refs === 0) {
      if (!e.started) e.started = true; // never load it (skipped in the queue)
      this.#finish(e);
    }
  }

  /** No more uses: forget the entry and give its bytes back to the budget. */
  #finish(e: Entry): void {
    if (this.#entries.get(e.id) === e) this.#entries.delete(e.id);
    if (e.charged) {
      e.charged = false;
      this.#used -= e.size;
    }
    this.#pump();
  }

  #pump(): void {
    while (!this.#closed && this.#batches < BATCHES_IN_FLIGHT && this.#used < this.budget) {
      const batch: Entry[] = [];
      let bytes = 0;
      while (this.#head < this.#queue.length && bytes < BATCH_BYTES && batch.length < BATCH_BLOBS && this.#used + bytes < this.budget) {
        const e = this.#queue[this.#head++]!;
        if (e.started) continue;
        batch.push(e);
        bytes += e.size;
      }
      if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (batch.length === 0) return;
      this.#start(batch);
    }
  }

  #start(batch: Entry[]): void {
    for (const e of batch) {
      e.started = true;
      if (e.refs > 0) {
        e.charged = true;
        this.#used += e.size;
      }
    }
    this.#batches++;
    const byId = new Map(batch.map((e) => [e.id, e]));
    const deliver = (id: BlobId, data: Buffer | undefined, error?: Error) => {
      const e = byId.get(id);
      if (!e) return;
      byId.delete(id);
      if (data) e.resolve(data);
      else e.reject(error ?? new Error(`blob ${id} could not be loaded`));
    };
    const ids = batch.map((e) => e.id);
    const src = this.source;
    const run = src.loadBlobs
      ? src.loadBlobs('data', ids, deliver)
      : Promise.all(ids.map((id) => src.loadBlob('data', id).then((b) => deliver(id, b), (err: unknown) => deliver(id, undefined, err as Error))));
    void run
      .then(
        () => {
          for (const id of byId.keys()) deliver(id, undefined, new Error(`blob ${id} was not delivered by the repository`));
        },
        (err: unknown) => {
          for (const id of [...byId.keys()]) deliver(id, undefined, err as Error);
        },
      )
      .finally(() => {
        this.#batches--;
        this.#pump();
      });
  }
}
