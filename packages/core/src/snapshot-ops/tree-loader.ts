/**
 * Read-ahead of the tree blobs of a traversal (a restore, or a backup's walk of
 * its parent snapshot for change detection). Over a remote storage one
 * ranged read per directory costs a round trip each; here trees are
 * requested in batches through `loadBlobs` (neighbouring tree blobs of a
 * pack come in one read), and each tree that arrives queues its
 * sub-directories' trees, so the whole hierarchy is read a few round trips
 * deep instead of one per directory. Parsed trees not yet taken are bounded
 * by {@link TreeLoader.budget} stored bytes; past it, trees load on demand.
 */
import { parseTree } from '../repository/decode.js';
import type { BlobId, BlobType, Tree } from '../repository/types.js';

/** What the tree loader needs from the repository (a `Repository` is one; its methods are called on it). */
export interface TreeSource {
  loadTree(id: BlobId): Promise<Tree>;
  loadBlobs?(type: BlobType, ids: readonly BlobId[], onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void): Promise<void>;
  lookupBlob?(type: BlobType, id: BlobId): { length: number } | undefined;
}

interface TreeEntry {
  size: number;
  started: boolean;
  promise: Promise<Tree>;
  resolve: (t: Tree) => void;
  reject: (e: Error) => void;
}

/** Trees per `loadBlobs` call. */
const TREE_BATCH = 1024;
/** `loadBlobs` calls for trees at once. */
const TREE_BATCHES_IN_FLIGHT = 2;

export class TreeLoader {
  readonly #entries = new Map<BlobId, TreeEntry>();
  #queue: BlobId[] = [];
  #used = 0;
  #batches = 0;
  #closed = false;

  /**
   * `recurse`: whether an arrived tree queues its sub-directories' trees
   * (false when an include filter decides which directories are entered).
   */
  constructor(
    readonly source: TreeSource,
    readonly budget: number,
    readonly recurse: boolean,
  ) {}

  /** Queue trees to load ahead (ignored without `loadBlobs`, when known, or over budget). */
  want(ids: readonly BlobId[]): void {
    if (this.#closed || !this.source.loadBlobs) return;
    for (const id of ids) {
      if (this.#entries.has(id)) continue;
      const size = this.source.lookupBlob?.('tree', id)?.length;
      if (size === undefined) continue; // unknown: the traversal loads it (and reports the error)
      if (this.#used + size > this.budget) break;
      let resolve!: (t: Tree) => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<Tree>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => undefined);
      this.#entries.set(id, { size, started: false, promise, resolve, reject });
      this.#used += size;
      this.#queue.push(id);
    }
    this.#pump();
  }

  /** The tree `id`: from the read-ahead when it is there (then forgotten), else loaded now. */
  take(id: BlobId): Promise<Tree> {
    const e = this.#entries.get(id);
    if (!e) return this.source.loadTree(id);
    this.#entries.delete(id);
    this.#used -= e.size;
    if (!e.started) {
      // Wanted now: load it alone rather than wait for a batch slot.
      e.started = true;
      return this.source.loadTree(id);
    }
    return e.promise;
  }

  /** Stop loading ahead. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
  }

  #pump(): void {
    const load = this.source.loadBlobs;
    while (!this.#closed && load && this.#batches < TREE_BATCHES_IN_FLIGHT && this.#queue.length > 0) {
      const ids: BlobId[] = [];
      const batch = new Map<BlobId, TreeEntry>();
      while (this.#queue.length > 0 && ids.length < TREE_BATCH) {
        const id = this.#queue.shift()!;
        const e = this.#entries.get(id);
        if (!e || e.started) continue;
        e.started = true;
        ids.push(id);
        batch.set(id, e);
      }
      if (ids.length === 0) return;
      this.#batches++;
      const deliver = (id: BlobId, data: Buffer | undefined, error?: Error) => {
        const e = batch.get(id);
        if (!e) return;
        batch.delete(id);
        if (!data) {
          e.reject(error ?? new Error(`tree blob ${id} could not be loaded`));
          return;
        }
        let tree: Tree;
        try {
          tree = parseTree(data, id);
        } catch (err) {
          e.reject(err as Error);
          return;
        }
        e.resolve(tree);
        if (this.recurse) {
          const subs: BlobId[] = [];
          for (const n of tree.nodes) if (n.type === 'dir' && typeof n.subtree === 'string') subs.push(n.subtree);
          if (subs.length > 0) this.want(subs);
        }
      };
      void load
        .call(this.source, 'tree', ids, deliver)
        .then(
          () => {
            for (const id of [...batch.keys()]) deliver(id, undefined, new Error(`tree blob ${id} was not delivered by the repository`));
          },
          (err: unknown) => {
            for (const id of [...batch.keys()]) deliver(id, undefined, err as Error);
          },
        )
        .finally(() => {
          this.#batches--;
          this.#pump();
        });
    }
  }
}
