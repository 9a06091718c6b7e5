/**
 * Read-ahead of the tree blobs of a traversal (a listing, a restore, or a backup's walk of its
 * parent snapshot for change detection). Over a remote storage one ranged read per directory
 * costs a round trip each, and even on a local disk each read is an open, a stat, a read and a
 * close; here trees are requested in batches through `loadBlobs` (neighbouring tree blobs of a
 * pack come in one read), and each tree that arrives queues its sub-directories' trees, so the
 * whole hierarchy is read in a few hundred reads instead of one per directory.
 *
 * Order: every wanted tree has a position, and the next batch takes the queued trees of lowest
 * position. A tree queued by its parent (with `recurse`) is placed right after its parent, its
 * sub-directories in their order: positions are depth-first order, the order in which a listing,
 * a restore or a backup's walk takes them. (Read breadth first, a deep hierarchy outgrows the
 * read-ahead budget level by level, and the traversal ends up reading most trees one by one.)
 * Trees wanted by the caller without a parent position come after everything wanted before.
 *
 * Memory: trees loaded or loading and not yet taken are bounded by {@link TreeLoader.budget}
 * stored bytes (the index's length of each blob); past it, nothing more is started until the
 * traversal takes some back below half of it (then one batch fills it again; a tree it takes
 * that was not started is loaded at once, first in a batch). Queued trees not yet started cost
 * one small record each (id, position); they are the sub-directories listed by trees already
 * loaded. With `dropBehind`, taking a tree forgets every queued or loaded tree of a lower
 * position (the traversal went past it), so they do not hold the budget; a tree listed by
 * several directories (empty directories share one) stays until each of them took it.
 */
import { parseTree } from '../repository/decode.js';
import type { BlobId, BlobType, Tree } from '../repository/types.js';

/** What the tree loader needs from the repository (a `Repository` is one; its methods are called on it). */
export interface TreeSource {
  loadTree(id: BlobId): Promise<Tree>;
  loadBlobs?(
    type: BlobType,
    ids: readonly BlobId[],
    onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void,
    opts?: { maxRead?: number },
  ): Promise<void>;
  lookupBlob?(type: BlobType, id: BlobId): { length: number } | undefined;
}

/** A place in depth-first order: the root is `[0]`, the i-th sub-directory of `p` is `[...p, i]`. */
export type TreePosition = readonly number[];

interface TreeEntry {
  id: BlobId;
  size: number;
  pos: TreePosition;
  /** 0: queued; 1: loading or loaded (counted in the budget); 2: taken or dropped. */
  state: 0 | 1 | 2;
  /** Forgotten without being taken (its sub-directories are not queued). */
  dropped: boolean;
  /** The parsed tree, once it arrived. */
  tree: Tree | undefined;
  /** Takes until it is forgotten (directories that list it). */
  refs: number;
  /** Listed by more than one directory. */
  shared: boolean;
  promise: Promise<Tree>;
  resolve: (t: Tree) => void;
  reject: (e: Error) => void;
}

/** Trees per `loadBlobs` call. */
const TREE_BATCH = 512;
/**
 * Largest ranged read of a tree batch: trees are small, and each read in flight holds a read buffer
 * and a decryption buffer of its size (4 reads in flight).
 */
const TREE_READ = { maxRead: 1024 * 1024 };
/** `loadBlobs` calls for trees at once. */
const TREE_BATCHES_IN_FLIGHT = 2;

function comparePos(a: TreePosition, b: TreePosition): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** A binary min-heap of entries by position. */
class PosHeap {
  readonly items: TreeEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): TreeEntry | undefined {
    return this.items[0];
  }

  push(e: TreeEntry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (comparePos(a[p]!.pos, e.pos) <= 0) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }

  pop(): TreeEntry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && comparePos(a[r]!.pos, a[l]!.pos) < 0 ? r : l;
      if (comparePos(a[c]!.pos, last.pos) >= 0) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }
}

export interface TreeLoaderOptions {
  /** Forget queued and loaded trees behind the one taken (a traversal that takes trees in depth-first order). */
  dropBehind?: boolean;
}

export class TreeLoader {
  readonly #entries = new Map<BlobId, TreeEntry>();
  /** Wanted, not started; lowest position first (entries no longer queued are skipped when met). */
  readonly #queue = new PosHeap();
  /** Started and not taken (for `dropBehind`). */
  readonly #held = new PosHeap();
  #used = 0;
  #batches = 0;
  #closed = false;
  /** Next position of a tree wanted without a parent. */
  #top = 0;
  /** The position of the tree taken last. */
  #current: TreePosition | undefined;
  readonly #dropBehind: boolean;

  /**
   * `recurse`: whether an arrived tree queues its sub-directories' trees
   * (false when an include filter decides which directories are entered).
   */
  constructor(
    readonly source: TreeSource,
    readonly budget: number,
    readonly recurse: boolean,
    options: TreeLoaderOptions = {},
  ) {
    this.#dropBehind = options.dropBehind === true;
  }

  /** Stored bytes of trees loading or loaded and not taken (at most about {@link budget}). */
  get heldBytes(): number {
    return this.#used;
  }

  /**
   * Queue trees to load ahead (ignored without `loadBlobs`, or when already queued, or unknown to
   * the index). `parent`: the position of the tree that lists them (they come right after it, in
   * this order); without it, after everything wanted so far.
   */
  want(ids: readonly BlobId[], parent?: TreePosition): void {
    if (this.#closed || !this.source.loadBlobs) return;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const known = this.#entries.get(id);
      if (known) {
        // Listed by another directory too (an empty directory, a copy): taken once more.
        if (parent) {
          known.refs++;
          known.shared = true;
        }
        continue;
      }
      const size = this.source.lookupBlob?.('tree', id)?.length;
      if (size === undefined) continue; // unknown: the traversal loads it (and reports the error)
      const pos = parent ? [...parent, i] : [this.#top++];
      this.#add(id, size, pos);
    }
    this.#pump();
  }

  #add(id: BlobId, size: number, pos: TreePosition): TreeEntry {
    let resolve!: (t: Tree) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<Tree>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined);
    const e: TreeEntry = { id, size, pos, state: 0, dropped: false, tree: undefined, refs: 1, shared: false, promise, resolve, reject };
    this.#entries.set(id, e);
    this.#queue.push(e);
    return e;
  }

  /**
   * The tree `id` when it has arrived (then forgotten, as {@link take} does), else undefined (and
   * nothing changes): lets a traversal go on synchronously while the trees are there.
   */
  takeLoaded(id: BlobId, at?: TreePosition): Tree | undefined {
    const e = this.#entries.get(id);
    const tree = e?.tree;
    if (!tree) return undefined;
    void this.take(id, at);
    return tree;
  }

  /**
   * The tree `id`: from the read-ahead when it is there (then forgotten, once taken as often as
   * sub-directories listed it), else loaded now, with the next queued trees in the same batch. A
   * tree that was not wanted (a second directory with the same tree, met after the first was
   * taken) is placed at the traversal's current position, so that its sub-directories are read
   * ahead too. `at`: where the traversal is (the position of the directory it enters, as
   * {@link want} numbers them: the root `[0]`, its i-th sub-directory `[0, i]`); a traversal in
   * depth-first order should give it (with `dropBehind`, what lies before it is forgotten).
   */
  take(id: BlobId, at?: TreePosition): Promise<Tree> {
    let e = this.#entries.get(id);
    if (!e) {
      const size = this.#closed || !this.source.loadBlobs ? undefined : this.source.lookupBlob?.('tree', id)?.length;
      if (size === undefined) {
        if (at) this.#moveTo(at);
        return this.source.loadTree(id);
      }
      e = this.#add(id, size, at ?? this.#current ?? [this.#top++]);
    }
    const last = --e.refs <= 0;
    if (last) this.#entries.delete(id);
    let loading: Promise<Tree> | undefined;
    if (e.state === 0) {
      if (this.#closed || !this.source.loadBlobs) {
        if (last) e.state = 2;
        loading = this.source.loadTree(id);
      } else {
        // Wanted now and not started: load it at once, the next queued trees with it.
        e.state = 1;
        this.#used += e.size;
        this.#startBatch(this.#fill([e]));
      }
    }
    if (last && e.state === 1) {
      this.#used -= e.size;
      e.state = 2;
      e.tree = undefined;
    }
    // Where the traversal is: its own word, else the tree's place (unless several directories list it).
    if (at) this.#moveTo(at);
    else if (!e.shared) this.#moveTo(e.pos);
    this.#pump();
    return loading ?? e.promise;
  }

  #moveTo(pos: TreePosition): void {
    this.#current = pos;
    if (this.#dropBehind) this.#forgetBefore(pos);
  }

  /** Forget queued and loaded trees of positions before `pos`. */
  #forgetBefore(pos: TreePosition): void {
    for (const heap of [this.#queue, this.#held]) {
      for (let top = heap.peek(); top !== undefined && (top.state === 2 || comparePos(top.pos, pos) < 0); top = heap.peek()) {
        heap.pop();
        // A tree listed by several directories stays until each took it (its place is its first).
        if (top.state === 2 || top.shared) continue;
        if (top.state === 1) this.#used -= top.size;
        top.state = 2;
        top.dropped = true;
        top.tree = undefined;
        this.#entries.delete(top.id);
      }
    }
  }

  /** Stop loading ahead. */
  close(): void {
    this.#closed = true;
    this.#queue.clear();
    this.#held.clear();
  }

  #pump(): void {
    // Past half the budget, wait until the traversal took more: one big batch rather than one
    // per tree taken.
    while (!this.#closed && this.source.loadBlobs && this.#batches < TREE_BATCHES_IN_FLIGHT && this.#queue.size > 0 && this.#used <= this.budget / 2) {
      const batch = this.#fill([]);
      if (batch.length === 0) return;
      this.#startBatch(batch);
    }
  }

  /** Adds the queued trees of lowest position to `batch`, as many as the batch size and the budget allow (each marked started). */
  #fill(batch: TreeEntry[]): TreeEntry[] {
    while (batch.length < TREE_BATCH) {
      const e = this.#queue.peek();
      if (!e) break;
      if (e.state !== 0) {
        this.#queue.pop();
        continue;
      }
      // The budget: always let one tree through when nothing is held (a tree larger than it).
      if (this.#used + e.size > this.budget && (this.#used > 0 || batch.length > 0)) break;
      this.#queue.pop();
      e.state = 1;
      this.#used += e.size;
      batch.push(e);
    }
    return batch;
  }

  /** Loads `batch` (entries already marked started and counted in the budget) with one `loadBlobs` call. */
  #startBatch(batch: TreeEntry[]): void {
    const load = this.source.loadBlobs!;
    const byId = new Map<BlobId, TreeEntry>();
    for (const e of batch) {
      byId.set(e.id, e);
      if (this.#dropBehind) this.#held.push(e);
    }
    this.#batches++;
    const deliver = (id: BlobId, data: Buffer | undefined, error?: Error) => {
      const e = byId.get(id);
      if (!e) return;
      byId.delete(id);
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
      if (!e.dropped) e.tree = tree;
      e.resolve(tree);
      // A tree dropped before it arrived (the traversal went past it) does not queue its own.
      if (this.recurse && !e.dropped && !this.#closed) {
        const subs: BlobId[] = [];
        const nodes = tree.nodes;
        for (let i = 0; i < nodes.length; i++) {
          const n = nodes[i]!;
          if (n.type === 'dir' && typeof n.subtree === 'string') subs.push(n.subtree);
        }
        if (subs.length > 0) this.want(subs, e.pos);
      }
    };
    void load
      .call(this.source, 'tree', batch.map((e) => e.id), deliver, TREE_READ)
      .then(
        () => {
          for (const id of [...byId.keys()]) deliver(id, undefined, new Error(`tree blob ${id} was not delivered by the repository`));
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
