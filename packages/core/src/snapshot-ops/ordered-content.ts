/**
 * File content in file order, read in batches: what `kiwi dump` streams (a file to stdout, a
 * directory as a tar stream).
 *
 * A restore may write a file's blobs in any order (pack order, see restore/content.ts); a stream
 * cannot. Here the items (files, in the caller's order) are cut into *windows* of about
 * `windowBytes` of content; each window's distinct blobs are fetched with one `loadBlobs` call
 * (grouped by pack, neighbouring blobs in one ranged read, each verified), and the blobs are then
 * handed out in item order. Up to `windowsAhead` windows load while the consumer takes the current
 * one, so reads overlap with writing. A file larger than a window is split over several windows.
 *
 * Memory is bounded by (windowsAhead + 1) × (windowBytes + one blob): 3 × (8 MiB + 8 MiB) at most
 * with the defaults, however large the files or the directory.
 */
import type { BlobId, BlobType } from '../repository/types.js';

/** What the reader needs from the repository (`Repository` has all of it). */
export interface OrderedContentSource {
  loadBlobs(
    type: BlobType,
    ids: readonly BlobId[],
    onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void | Promise<void>,
    opts?: { maxGap?: number; maxRead?: number; concurrency?: number; transient?: boolean },
  ): Promise<void>;
  lookupBlob(type: BlobType, id: BlobId): { rawLength: number } | undefined;
  loadIndex?(): Promise<unknown>;
  indexStats?(): { loaded: boolean };
}

/** One item to read: the caller's `tag` (e.g. a tar entry) and its content blob ids in order. */
export interface OrderedItem<T> {
  tag: T;
  content: readonly BlobId[];
}

/**
 * One step of the output. Every item yields at least one piece: `start` on its first, `end` on its
 * last (both on the only piece of an item without content, which has no `data`). `data` is the
 * verified plaintext of the next blob; it is the consumer's to keep.
 */
export interface OrderedPiece<T> {
  tag: T;
  start: boolean;
  end: boolean;
  data?: Buffer;
}

export interface OrderedContentOptions {
  /** Content per window, in plaintext bytes (default 8 MiB). */
  windowBytes?: number;
  /** Items per window at most (default 4,096). */
  windowItems?: number;
  /** Windows loading ahead of the one being handed out (default 2). */
  windowsAhead?: number;
}

interface Segment<T> {
  tag: T;
  ids: BlobId[];
  start: boolean;
  end: boolean;
}

interface Window<T> {
  segments: Segment<T>[];
  blobs: Map<BlobId, Buffer>;
  errors: Map<BlobId, Error>;
  loaded: Promise<void>;
}

/** A blob of an item that could not be read: names the blob; the cause is the repository's error. */
export class OrderedContentError<T> extends Error {
  constructor(
    readonly tag: T,
    readonly blobId: BlobId,
    override readonly cause: Error,
  ) {
    super(cause.message, { cause });
    this.name = 'OrderedContentError';
  }
}

/**
 * The content of `items`, blob by blob, in item order (see the file comment). Throws an
 * {@link OrderedContentError} at the first blob that cannot be read. Stopping early (`break`,
 * `return()`) stops reading the items; loads already started finish in the background of the
 * `return()` call.
 */
export async function* readContentInOrder<T>(
  repo: OrderedContentSource,
  items: AsyncIterable<OrderedItem<T>> | Iterable<OrderedItem<T>>,
  opts: OrderedContentOptions = {},
): AsyncGenerator<OrderedPiece<T>, void, undefined> {
  const windowBytes = Math.max(1, opts.windowBytes ?? 8 * 1024 * 1024);
  const windowItems = Math.max(1, opts.windowItems ?? 4096);
  const ahead = Math.max(0, opts.windowsAhead ?? 2);
  if (repo.indexStats && repo.loadIndex && !repo.indexStats().loaded) await repo.loadIndex();
  const source = (Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : (items as Iterable<OrderedItem<T>>)[Symbol.iterator]()) as
    | AsyncIterator<OrderedItem<T>>
    | Iterator<OrderedItem<T>>;
  let exhausted = false;
  /** An item whose content did not fit in the last window: the rest goes into the next. */
  let carry: { item: OrderedItem<T>; next: number } | undefined;

  const plan = async (): Promise<Window<T> | undefined> => {
    const segments: Segment<T>[] = [];
    const ids = new Set<BlobId>();
    let bytes = 0;
    while (bytes < windowBytes && segments.length < windowItems) {
      let item: OrderedItem<T>;
      let from: number;
      if (carry) {
        ({ item, next: from } = carry);
        carry = undefined;
      } else {
        if (exhausted) break;
        const r = await source.next();
        if (r.done) {
          exhausted = true;
          break;
        }
        item = r.value;
        from = 0;
      }
      const content = item.content;
      let i = from;
      while (i < content.length && bytes < windowBytes) {
        const id = content[i]!;
        if (!ids.has(id)) {
          ids.add(id);
          bytes += repo.lookupBlob('data', id)?.rawLength ?? 0;
        }
        i++;
      }
      segments.push({ tag: item.tag, ids: content.slice(from, i), start: from === 0, end: i >= content.length });
      if (i < content.length) carry = { item, next: i };
    }
    if (segments.length === 0) return undefined;
    const window: Window<T> = { segments, blobs: new Map(), errors: new Map(), loaded: Promise.resolve() };
    if (ids.size > 0) {
      window.loaded = repo.loadBlobs('data', [...ids], (id, data, error) => {
        if (data) window.blobs.set(id, data);
        else window.errors.set(id, error ?? new Error(`data blob ${id} could not be read`));
      });
      window.loaded.catch(() => undefined); // awaited when its turn comes
    }
    return window;
  };

  const queue: Window<T>[] = [];
  try {
    for (;;) {
      while (queue.length < ahead + 1 && (!exhausted || carry)) {
        const w = await plan();
        if (!w) break;
        queue.push(w);
      }
      const w = queue.shift();
      if (!w) return;
      await w.loaded;
      for (const seg of w.segments) {
        if (seg.ids.length === 0) {
          yield { tag: seg.tag, start: seg.start, end: seg.end };
          continue;
        }
        for (let i = 0; i < seg.ids.length; i++) {
          const id = seg.ids[i]!;
          const data = w.blobs.get(id);
          if (!data) throw new OrderedContentError(seg.tag, id, w.errors.get(id) ?? new Error(`data blob ${id} was not delivered`));
          yield { tag: seg.tag, start: seg.start && i === 0, end: seg.end && i === seg.ids.length - 1, data };
        }
      }
      w.blobs.clear();
    }
  } finally {
    await Promise.allSettled(queue.map((w) => w.loaded));
    if (!exhausted) await (source as AsyncIterator<OrderedItem<T>>).return?.();
  }
}
