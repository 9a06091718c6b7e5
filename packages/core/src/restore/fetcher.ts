/**
 * Read-ahead of file content for the restore. Files announce the blobs they
 * will need, in restore order. Single-blob files (the many small ones) go to
 * one queue that is loaded ahead in batches — through `loadBlobs` when the
 * repository has it, so neighbouring blobs of a pack come in one ranged
 * read — keeping at most `budget` stored bytes loaded or loading and not yet
 * taken. A multi-blob file reads ahead on its own: taking blob i starts the
 * next window (up to {@link WINDOW_BYTES}) of its blobs, so a large file never
 * holds up the small ones behind it.
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
  /** Position in the queue (absolute; -1 for the blobs of a multi-blob file). */
  seq: number;
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
const BATCHES_IN_FLIGHT = 4;
/** Read-ahead of a multi-blob file, in stored bytes (at least one blob). */
const WINDOW_BYTES = 4 * 1024 * 1024;

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
  /** Entries dropped from the front of `#queue` (so an entry is at `seq - #shift`). */
  #shift = 0;
  #seq = 0;
  #used = 0;
  #batches = 0;
  #closed = false;

  constructor(
    readonly source: FetchSource,
    readonly budget: number,
  ) {}

  /** Announce that a file will take `ids` (in order). */
  plan(ids: readonly BlobId[]): Claim {
    if (ids.length > 1) return this.#stream(ids);
    const entries: Array<Entry | undefined> = ids.map((id) => this.#want(id));
    let taken = 0;
    let released = false;
    this.#schedulePump();
    return {
      take: (i: number) => {
        const e = entries[i];
        if (!e || released || i !== taken) throw new Error(`restore: blob ${i} of a file taken out of order`);
        taken++;
        entries[i] = undefined;
        return this.#take(e);
      },
      release: () => {
        if (released) return;
        released = true;
        for (let i = taken; i < entries.length; i++) this.#drop(entries[i]!);
        entries.length = 0;
      },
    };
  }

  /** Stop loading ahead (pending takes still complete). */
  close(): void {
    this.#closed = true;
  }

  /** A multi-blob file: its own entries, loaded a window ahead of the blob being taken. */
  #stream(ids: readonly BlobId[]): Claim {
    // A taken entry is dropped (its resolved promise would keep the blob alive until the file is done).
    const entries: Array<Entry | undefined> = ids.map((id) => this.#entry(id, -1));
    let taken = 0;
    let released = false;
    const startFrom = (i: number) => {
      if (i >= entries.length || entries[i]!.started) return;
      const batch: Entry[] = [];
      let bytes = 0;
      for (let j = i; j < entries.length && !entries[j]!.started && (batch.length === 0 || bytes + entries[j]!.size <= WINDOW_BYTES); j++) {
        batch.push(entries[j]!);
        bytes += entries[j]!.size;
      }
      this.#start(batch, false);
    };
    return {
      take: (i: number) => {
        const e = entries[i];
        if (!e || released || i !== taken) throw new Error(`restore: blob ${i} of a file taken out of order`);
        taken++;
        startFrom(i);
        entries[i] = undefined;
        // Keep at least a window's worth loading ahead of the blob being written.
        let j = i + 1;
        let ahead = 0;
        while (j < entries.length && entries[j]!.started) ahead += entries[j++]!.size;
        if (ahead < WINDOW_BYTES) startFrom(j);
        return e.promise;
      },
      release: () => {
        released = true;
        for (const e of entries) if (e) e.started = true; // nothing more starts
      },
    };
  }

  #entry(id: BlobId, seq: number): Entry {
    let resolve!: (b: Buffer) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    const size = this.source.lookupBlob?.('data', id)?.length ?? UNKNOWN_SIZE;
    return { id, seq, refs: 1, size, started: false, charged: false, promise, resolve, reject };
  }

  #want(id: BlobId): Entry {
    const known = this.#entries.get(id);
    if (known) {
      known.refs++;
      return known;
    }
    const e = this.#entry(id, this.#seq++);
    this.#entries.set(id, e);
    this.#queue.push(e);
    return e;
  }

  #take(e: Entry): Promise<Buffer> {
    if (!e.started) this.#startAt(e); // wanted now: load it (and what follows) even past the budget
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

  #pumpScheduled = false;

  /** Pumps after the current synchronous run, so the files planned together form one batch. */
  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
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
        this.#shift += this.#head;
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (batch.length === 0) return;
      this.#start(batch, true);
    }
  }

  /** Starts a batch at queued entry `first` (taken before the read-ahead reached it). */
  #startAt(first: Entry): void {
    const batch: Entry[] = [first];
    let bytes = first.size;
    for (let k = first.seq - this.#shift + 1; k < this.#queue.length && bytes < BATCH_BYTES && batch.length < BATCH_BLOBS; k++) {
      const e = this.#queue[k]!;
      if (e.started) continue;
      batch.push(e);
      bytes += e.size;
    }
    this.#start(batch, false);
  }

  /** `counted`: a read-ahead batch (limited to {@link BATCHES_IN_FLIGHT}); else one a file waits for. */
  #start(batch: Entry[], counted: boolean): void {
    for (const e of batch) {
      e.started = true;
      if (e.refs > 0 && e.seq >= 0) {
        e.charged = true;
        this.#used += e.size;
      }
    }
    if (counted) this.#batches++;
    // A multi-blob file may use one blob several times (runs of zeros): all its entries get it.
    const byId = new Map<BlobId, Entry[]>();
    for (const e of batch) {
      const list = byId.get(e.id);
      if (list) list.push(e);
      else byId.set(e.id, [e]);
    }
    const deliver = (id: BlobId, data: Buffer | undefined, error?: Error) => {
      const list = byId.get(id);
      if (!list) return;
      byId.delete(id);
      for (const e of list) {
        if (data) e.resolve(data);
        else e.reject(error ?? new Error(`blob ${id} could not be loaded`));
      }
    };
    const ids = [...byId.keys()];
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
        if (counted) this.#batches--;
        this.#pump();
      });
  }
}
