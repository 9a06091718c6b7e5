/**
 * Finding entries by pattern across snapshots (`kiwi find`).
 *
 * Patterns are the gitignore-style patterns of backup's `--exclude` (walker/excludes.ts's
 * {@link Matcher}), matched against paths relative to the snapshot root (`home/me/notes.txt`,
 * directories with a trailing `/`): a plain name (`notes.txt`, `*.jpg`) matches at any depth, a
 * pattern with a `/` is anchored at the root (`/home/*\/notes.txt`), `**` spans directories, `!`
 * re-includes. A directory that matches stands for everything under it (its entries are not
 * listed again and its trees are not read).
 *
 * Reading: each snapshot's trees are read level by level through a {@link TreeLoader} (a level's
 * trees in batched reads, so the round trips grow with the depth of the tree, not with the number
 * of directories). What a directory holds is remembered by its tree id (and its path, when a
 * pattern depends on the path): a directory that an earlier snapshot already searched (the same
 * tree blob: unchanged since then) is not read again, its matches are reused. The matches of a
 * snapshot come out once its scan is complete, in tree order.
 */
import type { BlobId, Node, Snapshot } from '../repository/types.js';
import { MAX_TREE_DEPTH } from '../repository/limits.js';
import { invalidNodeCount, invalidNodes } from '../repository/validate.js';
import { Matcher } from '../walker/excludes.js';
import { TreeLoader, type TreeSource } from './tree-loader.js';

/** What the finder needs from the repository (`Repository` has all of it). */
export type FindSource = TreeSource & { loadIndex?(): Promise<unknown>; indexStats?(): { loaded: boolean } };

export interface FindOptions {
  /** Gitignore-style patterns (at least one). */
  patterns: readonly string[];
  /** Match case-insensitively (patterns and paths are compared in lower case). */
  ignoreCase?: boolean;
  /** Only entries modified at or after this time (ms since the epoch). */
  oldest?: number;
  /** Only entries modified at or before this time (ms since the epoch). */
  newest?: number;
  /** A tree that could not be read: reported here, and the search goes on without it. Default: it fails the search. */
  onError?: (path: string, err: Error) => void;
  /** Stored bytes of trees read ahead (default 4 MiB). */
  readAheadBytes?: number;
  /** Directories remembered across snapshots at most (default 1,000,000). */
  maxRemembered?: number;
}

/** One matching entry: its snapshot path (`/home/me/notes.txt`) and node. */
export interface FindMatch {
  path: string;
  node: Node;
}

export interface FindStats {
  /** Trees read from the repository. */
  treesRead: number;
  /** Directories whose result came from an earlier snapshot (their trees were not read). */
  treesReused: number;
}

/** A directory's matches: matching nodes, and sub-directories (by name and tree) with matches below. */
type DirResult = ReadonlyArray<Node | { name: string; subtree: BlobId }>;
const NONE: DirResult = Object.freeze([]);

interface Pending {
  rel: string;
  treeId: BlobId;
  key: string;
  items: Array<Node | { name: string; subtree: BlobId; key: string }>;
}

/** Trees `take`n between two `want` calls (each call rescans what is queued). */
const WANT_EVERY = 256;
/** Tree ids handed to one `want` call. */
const WANT_SLICE = 4096;

/** Is every pattern free of `/` (except a trailing one)? Then a directory's result does not depend on its path. */
function pathFree(patterns: readonly string[]): boolean {
  return patterns.every((raw) => {
    let p = raw.trim();
    if (p === '' || p.startsWith('#')) return true;
    if (p.startsWith('!')) p = p.slice(1);
    if (p.endsWith('/')) p = p.slice(0, -1);
    return !p.includes('/');
  });
}

/** Searches snapshots one after another, reusing what it learnt about trees seen before. */
export class SnapshotFinder {
  readonly stats: FindStats = { treesRead: 0, treesReused: 0 };
  readonly #repo: FindSource;
  readonly #matcher: Matcher;
  readonly #lower: boolean;
  readonly #pathFree: boolean;
  readonly #oldestNs: bigint | undefined;
  readonly #newestNs: bigint | undefined;
  readonly #onError: FindOptions['onError'];
  readonly #budget: number;
  readonly #maxRemembered: number;
  readonly #memo = new Map<string, DirResult>();

  constructor(repo: FindSource, opts: FindOptions) {
    const patterns = opts.patterns.filter((p) => p.trim() !== '');
    if (patterns.length === 0) throw new TypeError('find: no pattern given');
    this.#repo = repo;
    this.#lower = opts.ignoreCase === true;
    this.#matcher = new Matcher('', this.#lower ? patterns.map((p) => p.toLowerCase()) : patterns);
    this.#pathFree = pathFree(patterns);
    this.#oldestNs = opts.oldest === undefined ? undefined : BigInt(Math.floor(opts.oldest)) * 1_000_000n;
    this.#newestNs = opts.newest === undefined ? undefined : BigInt(Math.floor(opts.newest)) * 1_000_000n;
    this.#onError = opts.onError;
    this.#budget = opts.readAheadBytes ?? 4 * 1024 * 1024;
    this.#maxRemembered = opts.maxRemembered ?? 1_000_000;
  }

  #key(treeId: BlobId, rel: string): string {
    return this.#pathFree ? treeId : `${treeId}\0${rel}`;
  }

  #inTime(node: Node): boolean {
    if (this.#oldestNs === undefined && this.#newestNs === undefined) return true;
    let t: bigint;
    try {
      t = BigInt(node.mtimeNs);
    } catch {
      return false;
    }
    return (this.#oldestNs === undefined || t >= this.#oldestNs) && (this.#newestNs === undefined || t <= this.#newestNs);
  }

  /** The matches in `snapshot`, in tree order (depth first, entries by name). */
  async find(snapshot: Snapshot): Promise<FindMatch[]> {
    if (this.#repo.loadIndex && this.#repo.indexStats && !this.#repo.indexStats().loaded) await this.#repo.loadIndex();
    const results = new Map<string, DirResult>();
    const rootKey = this.#key(snapshot.tree, '');
    if (!this.#memo.has(rootKey)) {
      const complete = await this.#scan(snapshot.tree, rootKey, results);
      if (complete) this.#remember(results);
    } else {
      this.stats.treesReused++;
    }
    const out: FindMatch[] = [];
    this.#collect(rootKey, '', results, out);
    return out;
  }

  /** Reads the trees of one snapshot level by level; fills `results`. False when a tree could not be read. */
  async #scan(root: BlobId, rootKey: string, results: Map<string, DirResult>): Promise<boolean> {
    const loader = new TreeLoader(this.#repo, this.#budget, false);
    const visited: Pending[] = [];
    let complete = true;
    try {
      let level: Pending[] = [{ rel: '', treeId: root, key: rootKey, items: [] }];
      const queued = new Set<string>([rootKey]);
      // The depth of `level`'s directories (the root's entries are at 1). Deeper than MAX_TREE_DEPTH
      // is not searched, as ls, diff, check and restore stop there: a hostile chain of 20,000 nested
      // directories overflowed the stack of the bottom-up pass and of the collection of matches.
      let depth = 0;
      while (level.length > 0) {
        depth++;
        const next: Pending[] = [];
        for (let i = 0; i < level.length; i++) {
          if (i % WANT_EVERY === 0) loader.want(level.slice(i, i + WANT_SLICE).map((d) => d.treeId));
          const dir = level[i]!;
          visited.push(dir);
          let nodes: readonly Node[];
          const where = dir.rel === '' ? '/' : `/${dir.rel}`;
          try {
            const tree = await loader.take(dir.treeId);
            nodes = tree.nodes;
            this.stats.treesRead++;
            if (invalidNodeCount(tree) > 0) {
              // Entries the tree validator refused are not searched: say so (a damaged tree, see `kiwi check`).
              const err = new Error(`tree ${dir.treeId} has ${invalidNodeCount(tree)} invalid entries (${invalidNodes(tree).slice(0, 3).map((b) => b.reason).join('; ')}); they were not searched`);
              if (!this.#onError) throw err;
              this.#onError(where, err);
              complete = false;
            }
          } catch (err) {
            if (!this.#onError) throw err;
            this.#onError(where, err as Error);
            complete = false;
            continue;
          }
          for (const node of nodes) {
            const rel = dir.rel === '' ? node.name : `${dir.rel}/${node.name}`;
            const isDir = node.type === 'dir';
            const test = this.#lower ? rel.toLowerCase() : rel;
            const parent = this.#lower ? dir.rel.toLowerCase() : dir.rel;
            if (this.#matcher.verdict(isDir ? `${test}/` : test, parent) === true) {
              if (this.#inTime(node)) dir.items.push(node);
              continue; // a matching directory stands for everything under it
            }
            if (!isDir || typeof node.subtree !== 'string') continue;
            const key = this.#key(node.subtree, rel);
            const known = this.#memo.get(key);
            if (known !== undefined) {
              this.stats.treesReused++;
              if (known.length > 0) dir.items.push({ name: node.name, subtree: node.subtree, key });
              continue;
            }
            if (depth + 1 > MAX_TREE_DEPTH) {
              const err = new Error(`directories nested deeper than ${MAX_TREE_DEPTH} levels; not searched below`);
              if (!this.#onError) throw err;
              this.#onError(`/${rel}`, err);
              complete = false;
              continue;
            }
            dir.items.push({ name: node.name, subtree: node.subtree, key });
            if (!queued.has(key)) {
              queued.add(key);
              next.push({ rel, treeId: node.subtree, key, items: [] });
            }
          }
        }
        level = next;
      }
    } finally {
      loader.close();
    }
    // Bottom up: a directory keeps only the sub-directories with matches below them.
    const byKey = new Map(visited.map((d) => [d.key, d] as const));
    const resolve = (key: string): DirResult => {
      const done = results.get(key) ?? this.#memo.get(key);
      if (done !== undefined) return done;
      const dir = byKey.get(key);
      if (!dir) return NONE;
      const kept: Array<Node | { name: string; subtree: BlobId }> = [];
      for (const it of dir.items) {
        if (!('key' in it)) kept.push(it);
        else if (resolve(it.key).length > 0) kept.push({ name: it.name, subtree: it.subtree });
      }
      const result = kept.length === 0 ? NONE : kept;
      results.set(key, result);
      return result;
    };
    for (const dir of visited) resolve(dir.key);
    return complete;
  }

  #remember(results: Map<string, DirResult>): void {
    for (const [key, result] of results) {
      if (this.#memo.size >= this.#maxRemembered) return;
      this.#memo.set(key, result);
    }
  }

  #collect(key: string, rel: string, results: Map<string, DirResult>, out: FindMatch[]): void {
    const result = results.get(key) ?? this.#memo.get(key) ?? NONE;
    for (const item of result) {
      const childRel = rel === '' ? item.name : `${rel}/${item.name}`;
      if ('type' in item) out.push({ path: `/${childRel}`, node: item });
      else this.#collect(this.#key(item.subtree, childRel), childRel, results, out);
    }
  }
}
