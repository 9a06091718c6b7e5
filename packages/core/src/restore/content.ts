/**
 * File content of a restore, read pack by pack.
 *
 * The traversal hands over files in tree order, each with the list of its
 * content blobs. They collect in a *window*. A sealed window is restored in
 * pack order: the blobs it needs are grouped by the pack that holds them, each
 * pack's needed part is read with one or a few ranged reads (through the
 * repository's `loadBlobs`, which decrypts and verifies every blob), and each
 * blob is handed to the sink for every place in every file of the window that
 * uses it. So within a window a pack is read once however its blobs are spread
 * over files, and a blob is read, decrypted and verified once however often it
 * occurs (duplicated files, runs of zeros). Over remote storage this is what
 * keeps the request count and the bytes read near the minimum.
 *
 * A window is sealed when it is full (files or blob uses), when the reader has
 * nothing queued (so reads never wait for the traversal), or at the end. Two
 * sealed windows may be pending at once; past that, {@link ContentReader.add}
 * waits, which bounds the memory held by the plan.
 *
 * A blob the index does not have is looked for once in the packs no index file
 * lists (an index file may be lost): the repository reads their headers, and
 * the files waiting for it are planned again. Only a blob still not found then
 * fails its file.
 *
 * The reader does no file I/O itself: it calls its {@link ContentSink}, one
 * call at a time per file (so a sink needs no locking per file), and awaits
 * the sink before it lets go of a blob's buffer (back-pressure on reads).
 */
import type { BlobId, BlobType } from '../repository/types.js';

/** Where a blob is stored (what `Repository.lookupBlob` returns). */
export interface ContentLocation {
  pack: string;
  offset: number;
  length: number;
  rawLength: number;
}

/** What the reader needs from the repository. */
export interface ContentSource {
  lookupBlob(type: BlobType, id: BlobId): ContentLocation | undefined;
  loadBlobs(
    type: BlobType,
    ids: readonly BlobId[],
    onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void | Promise<void>,
    opts?: { maxGap?: number; maxRead?: number; concurrency?: number; transient?: boolean; inPlace?: boolean },
  ): Promise<void>;
  /**
   * Read the headers of the packs no index file lists (an index file may be lost), once; a blob
   * found there is then located by {@link lookupBlob}. Optional: without it, asking for a blob
   * no index lists makes the source do it (see ContentReader's #searchUnlisted).
   */
  adoptUnlistedPacks?(): Promise<void>;
}

/**
 * Writes the content of files; `F` is the caller's file description. A `data`
 * buffer is valid only during the call (until the promise it returns settles):
 * it lives in a buffer the repository reuses for later blobs.
 */
export interface ContentSink<F> {
  /** The only blob of a one-blob file: write the whole file (create, write, finish). */
  writeWhole(file: F, data: Buffer): void | Promise<void>;
  /** One blob of a multi-blob file, at byte `offset` (blobs arrive in any order). */
  writeAt(file: F, data: Buffer, offset: number): void | Promise<void>;
  /** Every blob of a multi-blob file is written: finish it (metadata, rename into place). */
  complete(file: F): void | Promise<void>;
  /** The file failed (or the restore stopped): remove what was written of it. */
  discard(file: F): void | Promise<void>;
}

/** A blob of a file that could not be loaded (`blobId`), or a failure of the sink (`blobId` undefined). */
export class ContentError extends Error {
  override readonly name = 'ContentError';
  constructor(
    readonly blobId: BlobId | undefined,
    readonly reason: unknown,
  ) {
    super(reason instanceof Error ? reason.message : String(reason), { cause: reason });
  }
}

export interface ContentReaderOptions {
  /** Pack reads in flight (default 4). */
  readsInFlight?: number;
  /** Gap between needed blobs of a pack bridged by one read (default 512 KiB). */
  maxGap?: number;
  /** Largest single read (default: the repository's, from the storage's `preferredReadSize`, else 4 MiB). */
  maxRead?: number;
  /** Largest window, in files (default 4,096). */
  maxFiles?: number;
  /** Largest window, in blob uses (default 16,384). */
  maxUses?: number;
}

interface Job<F> {
  file: F;
  window: Window;
  /** Blob uses not written yet. */
  remaining: number;
  /** Total uses (1: the file is written whole). */
  uses: number;
  settled: boolean;
  /** Tail of this file's sink calls (they run one at a time). */
  chain: Promise<void>;
  /** Set once the sink has been called for this file (so `discard` has something to remove). */
  touched: boolean;
  resolve: () => void;
  reject: (e: ContentError) => void;
}

interface Use<F> {
  job: Job<F>;
  offset: number;
}

interface Window {
  /** Blob ids this window reads, per pack, packs in order of first use. */
  packs: Map<string, BlobId[]>;
  files: number;
  useCount: number;
  /** Files not settled. */
  unsettled: number;
  sealed: boolean;
  done: Promise<void>;
  resolveDone: () => void;
}

const DEFAULTS = {
  readsInFlight: 4,
  maxGap: 512 * 1024,
  maxRead: undefined as number | undefined,
  maxFiles: 4096,
  maxUses: 16_384,
};
/** Sealed windows not finished, at most (the traversal waits past this). */
const WINDOWS_PENDING = 2;

export class ContentReader<F> {
  readonly #opts: typeof DEFAULTS;
  /**
   * Planned uses of each blob not read yet, over all windows: a blob read for
   * one window is also written to the files of later windows that wait for it.
   */
  readonly #uses = new Map<BlobId, Array<Use<F>>>();
  /** Files not settled (for `stop`). */
  readonly #live = new Set<Job<F>>();
  #open: Window | undefined;
  /** Sealed windows not finished. */
  readonly #pending = new Set<Window>();
  readonly #queue: BlobId[][] = [];
  #queueHead = 0;
  #reading = 0;
  /** Reads in flight (a stop waits for them: no read outlives the reader). */
  readonly #reads = new Set<Promise<void>>();
  #sealScheduled = false;
  #stopped: ContentError | undefined;
  #waiters: Array<() => void> = [];
  /** The search for packs no index lists, once a blob was not located (see #searchUnlisted). */
  #unlisted: { searched: boolean; done: Promise<void> } | undefined;
  /** Files waiting for that search to be planned again. */
  readonly #replans = new Set<Promise<void>>();

  constructor(
    readonly source: ContentSource,
    readonly sink: ContentSink<F>,
    options: ContentReaderOptions = {},
  ) {
    this.#opts = { ...DEFAULTS, ...options };
  }

  /**
   * Plans `file` with content `ids` (at least one). Returns `wait` when the
   * traversal should pause until the plan has room again (or, for a file with
   * a blob the index does not have, until the packs no index lists were
   * looked at), and `done`, which settles when the file is written (or
   * rejects with a {@link ContentError}).
   */
  add(file: F, ids: readonly BlobId[]): { done: Promise<void>; wait: Promise<void> | undefined } {
    let resolve!: () => void;
    let reject!: (e: ContentError) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => undefined);
    if (this.#stopped) {
      reject(this.#stopped);
      return { done, wait: undefined };
    }
    // Locate every blob first: an unknown one fails the file before anything is read.
    const located = this.#locate(ids);
    if (!('missing' in located)) return { done, wait: this.#plan(file, ids, located, resolve, reject) };
    if (this.#unlisted?.searched) {
      reject(notIndexed(located.missing));
      return { done, wait: undefined };
    }
    // Perhaps an index file is lost and the blob's pack is listed by none: the file is planned
    // again once the repository has read the headers of such packs, and only then is a blob missing.
    const wait = this.#searchUnlisted(located.missing).then(() => {
      if (this.#stopped) return reject(this.#stopped);
      const again = this.#locate(ids);
      if ('missing' in again) return reject(notIndexed(again.missing));
      return this.#plan(file, ids, again, resolve, reject);
    });
    this.#replans.add(wait);
    void wait.finally(() => this.#replans.delete(wait));
    return { done, wait };
  }

  /** The location of every blob of `ids`, or the first the index does not have. */
  #locate(ids: readonly BlobId[]): ContentLocation[] | { missing: BlobId } {
    const locs: ContentLocation[] = [];
    for (const id of ids) {
      const loc = this.source.lookupBlob('data', id);
      if (!loc) return { missing: id };
      locs.push(loc);
    }
    return locs;
  }

  /**
   * Have the repository read the headers of the packs no index file lists, once
   * ({@link ContentSource.adoptUnlistedPacks}; a source without it does so when asked for a blob
   * that no index lists, docs/repository-format.md §12, so it is asked for `id`, read for nothing).
   * A failure is left to the files to report.
   */
  #searchUnlisted(id: BlobId): Promise<void> {
    if (this.#unlisted) return this.#unlisted.done;
    const read = (
      this.source.adoptUnlistedPacks
        ? this.source.adoptUnlistedPacks()
        : this.source.loadBlobs('data', [id], () => undefined, { concurrency: 1, transient: true, inPlace: true })
    ).catch(() => undefined);
    const search = {
      searched: false,
      done: read.then(() => {
        search.searched = true;
        this.#reads.delete(search.done);
      }),
    };
    this.#unlisted = search;
    this.#reads.add(search.done); // a stop waits for it as for every read (no read outlives the reader)
    return search.done;
  }

  /** Plans `file`, whose blobs are at `locs`; returns when the traversal should wait (see {@link add}). */
  #plan(file: F, ids: readonly BlobId[], locs: ContentLocation[], resolve: () => void, reject: (e: ContentError) => void): Promise<void> | undefined {
    const w = (this.#open ??= newWindow());
    const job: Job<F> = {
      file,
      window: w,
      remaining: ids.length,
      uses: ids.length,
      settled: false,
      chain: Promise.resolve(),
      touched: false,
      resolve,
      reject,
    };
    this.#live.add(job);
    w.files++;
    w.unsettled++;
    let offset = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const loc = locs[i]!;
      let list = this.#uses.get(id);
      if (!list) {
        // Not planned yet (or already read): this window reads it.
        list = [];
        this.#uses.set(id, list);
        const inPack = w.packs.get(loc.pack);
        if (inPack) inPack.push(id);
        else w.packs.set(loc.pack, [id]);
      }
      list.push({ job, offset });
      offset += loc.rawLength;
    }
    w.useCount += ids.length;
    if (w.files >= this.#opts.maxFiles || w.useCount >= this.#opts.maxUses) this.#seal();
    else this.#scheduleSeal();
    return this.#pending.size >= WINDOWS_PENDING ? this.#room() : undefined;
  }

  /** The traversal is over: restore what is planned. Resolves when every planned file has settled. */
  async finish(): Promise<void> {
    while (this.#replans.size > 0) await Promise.all([...this.#replans]);
    this.#seal();
    while (this.#pending.size > 0) await Promise.all([...this.#pending].map((w) => w.done));
  }

  /**
   * Stops reading: files not written yet fail with `reason` (their partial
   * content discarded). Reads in flight are cut short at their next blob;
   * resolves when every planned file has settled and no read is in flight
   * (so the caller may close the repository).
   */
  async stop(reason: unknown): Promise<void> {
    this.#stopped ??= new ContentError(undefined, reason);
    const err = this.#stopped;
    this.#queue.length = 0;
    this.#queueHead = 0;
    const jobs = [...this.#live];
    for (const job of jobs) this.#fail(job, err);
    await Promise.all(jobs.map((j) => j.chain));
    await Promise.all([...this.#reads]);
    this.#wake();
  }

  #room(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#waiters.push(resolve);
      this.#wake();
    });
  }

  #wake(): void {
    if (this.#pending.size >= WINDOWS_PENDING && !this.#stopped) return;
    const ws = this.#waiters;
    this.#waiters = [];
    for (const r of ws) r();
  }

  /** Seal the open window soon if the reader has nothing queued (lets the traversal add a few more first). */
  #scheduleSeal(): void {
    if (this.#sealScheduled || this.#queueHead < this.#queue.length) return;
    this.#sealScheduled = true;
    setImmediate(() => {
      this.#sealScheduled = false;
      if (this.#queueHead >= this.#queue.length && this.#pending.size < WINDOWS_PENDING) this.#seal();
    });
  }

  #seal(): void {
    const w = this.#open;
    if (!w || this.#stopped) return;
    this.#open = undefined;
    w.sealed = true;
    this.#pending.add(w);
    for (const ids of w.packs.values()) this.#queue.push(ids);
    w.packs.clear();
    this.#settleCheck(w);
    this.#pump();
  }

  #pump(): void {
    while (!this.#stopped && this.#reading < this.#opts.readsInFlight && this.#queueHead < this.#queue.length) {
      const ids = this.#queue[this.#queueHead++]!;
      if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#queueHead);
        this.#queueHead = 0;
      }
      // Blobs already delivered through an earlier window's read are not read again.
      const wanted = ids.filter((id) => this.#uses.has(id));
      if (wanted.length === 0) continue;
      this.#reading++;
      const read: Promise<void> = this.#read(wanted).finally(() => {
        this.#reading--;
        this.#reads.delete(read);
        this.#pump();
        if (this.#queueHead >= this.#queue.length && this.#open) this.#scheduleSeal();
      });
      this.#reads.add(read);
    }
  }

  /** Reads blobs of one pack and hands them to the sink for every file waiting for them. */
  async #read(ids: BlobId[]): Promise<void> {
    // Ids this read has not delivered yet (an id delivered here may be planned again later, by a later window).
    const left = new Set(ids);
    const deliver = (id: BlobId, data: Buffer | undefined, error?: Error): Promise<void> | undefined => {
      if (!left.delete(id)) return undefined;
      const uses = this.#uses.get(id);
      if (!uses) return undefined;
      this.#uses.delete(id);
      const writes: Array<Promise<void>> = [];
      for (const use of uses) {
        const job = use.job;
        if (job.settled) continue;
        if (!data) {
          this.#fail(job, new ContentError(id, error ?? new Error(`data blob ${id} could not be loaded`)));
          continue;
        }
        writes.push(this.#write(job, data, use.offset));
      }
      if (writes.length <= 1) return writes[0];
      return Promise.all(writes).then(() => undefined);
    };
    // After a stop, the next blob handed over ends the read (every file was failed by the stop).
    const onBlob = (id: BlobId, data: Buffer | undefined, error?: Error): Promise<void> | undefined => {
      if (this.#stopped) throw this.#stopped;
      return deliver(id, data, error);
    };
    try {
      await this.source.loadBlobs('data', ids, onBlob, { maxGap: this.#opts.maxGap, maxRead: this.#opts.maxRead, concurrency: 1, transient: true, inPlace: true });
      for (const id of [...left]) await deliver(id, undefined, new Error(`data blob ${id} was not delivered by the repository`));
    } catch (err) {
      if (this.#stopped) return;
      for (const id of [...left]) await deliver(id, undefined, err as Error);
    }
  }

  /** One use of a blob: queued behind the file's earlier sink calls. */
  #write(job: Job<F>, data: Buffer, offset: number): Promise<void> {
    const step = async () => {
      if (job.settled) return;
      job.touched = true;
      try {
        if (job.uses === 1) {
          await this.sink.writeWhole(job.file, data);
        } else {
          await this.sink.writeAt(job.file, data, offset);
          if (job.remaining === 1) await this.sink.complete(job.file);
        }
      } catch (err) {
        this.#fail(job, err instanceof ContentError ? err : new ContentError(undefined, err));
        return;
      }
      if (job.settled) return;
      if (--job.remaining === 0) this.#settle(job, undefined);
    };
    const p = job.chain.then(step);
    job.chain = p;
    return p;
  }

  /** Fails a file: no more writes, its partial content discarded (after the calls already queued). */
  #fail(job: Job<F>, err: ContentError): void {
    if (job.settled) return;
    job.settled = true;
    job.chain = job.chain.then(async () => {
      if (job.touched) {
        try {
          await this.sink.discard(job.file);
        } catch {
          // the file's error is what gets reported
        }
      }
      this.#settle(job, err);
    });
  }

  #settle(job: Job<F>, err: ContentError | undefined): void {
    job.settled = true;
    if (!this.#live.delete(job)) return;
    if (err) job.reject(err);
    else job.resolve();
    const w = job.window;
    w.unsettled--;
    this.#settleCheck(w);
  }

  /** A sealed window is finished when every file in it has settled. */
  #settleCheck(w: Window): void {
    if (!w.sealed || w.unsettled > 0 || !this.#pending.delete(w)) return;
    w.resolveDone();
    this.#wake();
    // Room for a window again: the open one is sealed if nothing is queued, so planned files never
    // wait for the traversal to add more (it may be waiting for those very files to finish).
    if (this.#open && this.#queueHead >= this.#queue.length) this.#scheduleSeal();
  }
}

function notIndexed(id: BlobId): ContentError {
  return new ContentError(id, new Error(`data blob ${id} is not in the repository index`));
}

function newWindow(): Window {
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  return { packs: new Map(), files: 0, useCount: 0, unsettled: 0, sealed: false, done, resolveDone };
}
