import type { BlobId, Node, Snapshot, Tree } from '../repository/types.js';
import { IntegrityError } from '../repository/errors.js';
import { MAX_TREE_DEPTH } from '../repository/limits.js';
import { invalidNodeCount, invalidNodes } from '../repository/validate.js';
import type { EngineRepository } from '../backup/types.js';
import { nodeNameBytes } from '../backup/node.js';
import { TreeLoader, type TreePosition } from './tree-loader.js';

/** What the snapshot operations need from the repository; with `loadBlobs` and `lookupBlob`, a listing reads trees ahead. */
type TreeReader = Pick<EngineRepository, 'loadTree' | 'loadIndex' | 'indexStats' | 'loadBlobs' | 'lookupBlob'>;

/** Stored bytes of trees a listing reads ahead of where it is. */
const LIST_TREES_AHEAD_BYTES = 1024 * 1024;

/** Loads the repository's index when it has not been loaded yet (trees are found through it). */
async function ensureIndex(repository: TreeReader): Promise<void> {
  if (repository.loadIndex && repository.indexStats && !repository.indexStats().loaded) await repository.loadIndex();
}

/** One entry of a snapshot listing. `path` is the snapshot path (`/usr/share/doc`). */
export interface ListedNode {
  path: string;
  node: Node;
}

/** A problem found while walking a snapshot: an invalid tree entry, a tree that cannot be loaded. */
export interface TreeWalkError {
  /** Snapshot path of the entry or directory concerned. */
  path: string;
  message: string;
}

/**
 * Where a walk reports problems. With it, each bad entry (or unloadable directory) is reported
 * once and the walk goes on with the rest; without it, the first one throws.
 */
export interface TreeWalkOptions {
  onError?: (error: TreeWalkError) => void;
}

function report(options: TreeWalkOptions, path: string, message: string, cause?: unknown): void {
  if (options.onError) options.onError({ path, message });
  else throw new IntegrityError(`${path}: ${message}`, cause === undefined ? {} : { cause });
}

/** Reports the invalid entries of `tree` (directory `dir`). */
function reportInvalid(tree: Tree, dir: string, treeId: BlobId, options: TreeWalkOptions, side = ''): void {
  for (const bad of invalidNodes(tree)) report(options, joinSnap(dir, bad.name ?? `#${bad.index}`), `invalid entry ${bad.index} of tree ${treeId}${side}: ${bad.reason}`);
  const unlisted = invalidNodeCount(tree) - invalidNodes(tree).length;
  if (unlisted > 0) report(options, dir, `and ${unlisted} more invalid entries of tree ${treeId}${side}`);
}

/** Splits a snapshot path into its components (`/a/b/` → `['a','b']`). */
export function splitSnapshotPath(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

function joinSnap(dir: string, name: string): string {
  return dir === '/' || dir === '' ? `/${name}` : `${dir}/${name}`;
}

function findByName(nodes: readonly Node[], name: string): Node | undefined {
  const raw = Buffer.from(name, 'utf8');
  return nodes.find((n) => n.name === name || nodeNameBytes(n).equals(raw));
}

/**
 * Looks up the node at `path` in the snapshot (`/` or `''` is the root, which
 * has no node: then a synthetic directory node with the root tree is returned).
 * Undefined when the path does not exist.
 */
export async function lookupPath(repository: TreeReader, snapshot: Snapshot, path: string): Promise<Node | undefined> {
  const parts = splitSnapshotPath(path);
  if (parts.length === 0) return rootNode(snapshot);
  await ensureIndex(repository);
  let treeId: BlobId | undefined = snapshot.tree;
  let node: Node | undefined;
  for (const part of parts) {
    if (treeId === undefined) return undefined;
    const tree = await repository.loadTree(treeId);
    node = findByName(tree.nodes, part);
    if (!node) return undefined;
    treeId = node.type === 'dir' ? node.subtree : undefined;
  }
  return node;
}

function rootNode(snapshot: Snapshot): Node {
  return {
    name: '',
    type: 'dir',
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtimeNs: (BigInt(Date.parse(snapshot.time) || 0) * 1_000_000n).toString(),
    ctimeNs: '0',
    inode: '0',
    dev: '0',
    size: 0,
    subtree: snapshot.tree,
  };
}

/**
 * Lists a snapshot depth first, entries of each directory in tree order
 * (sorted by name). With `path`, lists that entry and everything below it
 * (a file path yields just the file). Throws if `path` does not exist.
 * Options: `recursive: false` lists only the directory's direct children.
 */
export async function* listTree(
  repository: TreeReader,
  snapshot: Snapshot,
  path = '/',
  options: { recursive?: boolean } & TreeWalkOptions = {},
): AsyncGenerator<ListedNode, void, undefined> {
  for await (const chunk of listTreeChunks(repository, snapshot, path, options)) yield* chunk;
}

/** Entries per chunk of {@link listTreeChunks} (at most). */
const LIST_CHUNK = 2048;

/**
 * {@link listTree} in chunks: the same entries in the same order, handed over in arrays of up to
 * a few thousand (one `await` per chunk, not per entry). Each array is the caller's.
 */
export async function* listTreeChunks(
  repository: TreeReader,
  snapshot: Snapshot,
  path = '/',
  options: { recursive?: boolean } & TreeWalkOptions = {},
): AsyncGenerator<ListedNode[], void, undefined> {
  const recursive = options.recursive ?? true;
  await ensureIndex(repository);
  const parts = splitSnapshotPath(path);
  const start = await lookupPath(repository, snapshot, path);
  if (!start) throw new Error(`path ${path} not found in snapshot`);
  const startPath = parts.length === 0 ? '/' : '/' + parts.join('/');
  if (parts.length > 0) yield [{ path: startPath, node: start }];
  if (start.type !== 'dir' || start.subtree === undefined) return;
  yield* walkTreeAhead(repository, start.subtree, startPath, recursive, options, parts.length);
}

/** A directory being listed: its entries and the next one to list. */
interface ListFrame {
  nodes: readonly Node[];
  next: number;
  dir: string;
  depth: number;
  /** Its place in depth-first order (see TreeLoader.take), and its sub-directories met so far. */
  pos: TreePosition;
  subdirs: number;
}

/**
 * Every node under the tree `treeId`, depth first, in chunks. Trees come in batched reads ahead
 * of the walk, in the order it takes them (over remote storage, one read per directory would cost
 * a round trip each); only a recursive walk reads below the first level. The walk goes on
 * synchronously while the trees it enters have arrived, and waits only for one that has not.
 * Memory: the read-ahead holds at most {@link LIST_TREES_AHEAD_BYTES} stored bytes of trees not yet
 * listed, plus the trees on the current path.
 */
async function* walkTreeAhead(
  repository: TreeReader,
  treeId: BlobId,
  dir: string,
  recursive: boolean,
  options: TreeWalkOptions,
  depth: number,
): AsyncGenerator<ListedNode[]> {
  const trees = new TreeLoader(repository, LIST_TREES_AHEAD_BYTES, recursive, { dropBehind: true });
  try {
    trees.want([treeId]);
    const stack: ListFrame[] = [];
    let out: ListedNode[] = [];
    // Enters the tree `id` of directory `path`; false (reported) when it cannot be read. Problems
    // are reported after the entries before them were handed over, so that they come in order.
    const enter = async function* (id: BlobId, path: string, d: number, pos: TreePosition, loaded?: Tree): AsyncGenerator<ListedNode[], void> {
      let tree = loaded ?? trees.takeLoaded(id, pos);
      if (!tree) {
        if (out.length > 0) {
          yield out;
          out = [];
        }
        try {
          tree = await trees.take(id, pos);
        } catch (err) {
          report(options, path, `directory cannot be read (tree ${id}): ${(err as Error).message}`, err);
          return;
        }
      }
      if (invalidNodeCount(tree) > 0) {
        if (out.length > 0) {
          yield out;
          out = [];
        }
        reportInvalid(tree, path, id, options);
      }
      stack.push({ nodes: tree.nodes, next: 0, dir: path, depth: d, pos, subdirs: 0 });
    };
    yield* enter(treeId, dir, depth, [0]);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      if (frame.next >= frame.nodes.length) {
        stack.pop();
        continue;
      }
      const node = frame.nodes[frame.next++]!;
      const p = joinSnap(frame.dir, node.name);
      out.push({ path: p, node });
      if (recursive && node.type === 'dir' && node.subtree !== undefined) {
        const pos = [...frame.pos, frame.subdirs++];
        if (frame.depth + 1 > MAX_TREE_DEPTH) {
          if (out.length > 0) {
            yield out;
            out = [];
          }
          report(options, p, `directories nested deeper than ${MAX_TREE_DEPTH} levels; not listed below`);
        } else {
          const loaded = trees.takeLoaded(node.subtree, pos);
          if (loaded && invalidNodeCount(loaded) === 0) stack.push({ nodes: loaded.nodes, next: 0, dir: p, depth: frame.depth + 1, pos, subdirs: 0 });
          else yield* enter(node.subtree, p, frame.depth + 1, pos, loaded);
        }
      }
      if (out.length >= LIST_CHUNK) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  } finally {
    trees.close();
  }
}

/**
 * `added`/`removed`; `type` (the entry's type changed); `modified` (a file's
 * content or a symlink's target changed); `metadata` (only mode, owner,
 * mtime, plug-in metadata or device number changed).
 */
export type ChangeKind = 'added' | 'removed' | 'modified' | 'type' | 'metadata';

/** One difference between two snapshots. */
export interface SnapshotChange {
  path: string;
  change: ChangeKind;
  /** The node in the first snapshot (absent for `added`). */
  before?: Node;
  /** The node in the second snapshot (absent for `removed`). */
  after?: Node;
  /**
   * For `modified` and `metadata`: what differs — `content`, `mode`, `owner`,
   * `mtime`, `target` (symlink), `metadata`, `rdev`.
   */
  fields?: string[];
}

function sameContent(a: Node, b: Node): boolean {
  if (a.size !== b.size) return false;
  const ca = a.content ?? [];
  const cb = b.content ?? [];
  return ca.length === cb.length && ca.every((id, i) => id === cb[i]);
}

function changedFields(a: Node, b: Node): string[] {
  const f: string[] = [];
  if (a.type === 'file' && !sameContent(a, b)) f.push('content');
  if (a.mode !== b.mode) f.push('mode');
  if (a.uid !== b.uid || a.gid !== b.gid) f.push('owner');
  if (a.mtimeNs !== b.mtimeNs) f.push('mtime');
  if ((a.linkTarget ?? '') !== (b.linkTarget ?? '') || (a.linkTargetRaw ?? '') !== (b.linkTargetRaw ?? '')) f.push('target');
  if (JSON.stringify(a.metadata ?? null) !== JSON.stringify(b.metadata ?? null)) f.push('metadata');
  if (a.rdev !== b.rdev) f.push('rdev');
  return f;
}

/**
 * Compares two snapshots, yielding changes in path order. Subtrees with the
 * same tree id are identical and skipped without loading. A directory whose
 * own metadata changed is reported as `metadata`; its children are compared
 * too. An added or removed directory is reported once, with everything under
 * it reported as well (`added`/`removed`).
 */
export async function* diffSnapshots(
  repository: TreeReader,
  a: Snapshot,
  b: Snapshot,
  options: TreeWalkOptions = {},
): AsyncGenerator<SnapshotChange, void, undefined> {
  await ensureIndex(repository);
  const sides: DiffSides = {
    a: new TreeLoader(repository, LIST_TREES_AHEAD_BYTES, false),
    b: new TreeLoader(repository, LIST_TREES_AHEAD_BYTES, false),
  };
  try {
    sides.a.want([a.tree]);
    sides.b.want([b.tree]);
    yield* diffTrees(repository, sides, a.tree, b.tree, '/', options, 0, [0]);
  } finally {
    sides.a.close();
    sides.b.close();
  }
}

/**
 * The trees of both sides of a diff, read ahead: when a directory is compared, the trees of its
 * sub-directories that differ are wanted on each side (in one batch per side), before the first
 * of them is compared.
 */
interface DiffSides {
  a: TreeLoader;
  b: TreeLoader;
}

/** The nodes of tree `id` of one side of a diff ([] when absent); undefined (reported) when it cannot be read. */
async function diffSide(trees: TreeLoader, id: BlobId | undefined, dir: string, options: TreeWalkOptions, side: string, pos: TreePosition): Promise<Node[] | undefined> {
  if (id === undefined) return [];
  let tree: Tree;
  try {
    tree = trees.takeLoaded(id, pos) ?? (await trees.take(id, pos));
  } catch (err) {
    report(options, dir, `directory cannot be read in the ${side} snapshot (tree ${id}): ${(err as Error).message}`, err);
    return undefined;
  }
  reportInvalid(tree, dir, id, options, ` (${side} snapshot)`);
  return tree.nodes;
}

async function* diffTrees(
  repository: TreeReader,
  sides: DiffSides,
  aId: BlobId | undefined,
  bId: BlobId | undefined,
  dir: string,
  options: TreeWalkOptions,
  depth: number,
  pos: TreePosition,
): AsyncGenerator<SnapshotChange> {
  if (aId !== undefined && aId === bId) return;
  if (depth > MAX_TREE_DEPTH) {
    report(options, dir, `directories nested deeper than ${MAX_TREE_DEPTH} levels; not compared below`);
    return;
  }
  // A side that cannot be read is reported, and this directory is not compared (its entries would
  // all look added or removed).
  const an = await diffSide(sides.a, aId, dir, options, 'first', pos);
  const bn = await diffSide(sides.b, bId, dir, options, 'second', pos);
  if (an === undefined || bn === undefined) return;
  const sortKey = (n: Node) => nodeNameBytes(n);
  const as = [...an].sort((x, y) => Buffer.compare(sortKey(x), sortKey(y)));
  const bs = [...bn].sort((x, y) => Buffer.compare(sortKey(x), sortKey(y)));
  // The sub-directories compared below (same name, directories on both sides, different trees):
  // their trees are wanted now, numbered in the order they are compared.
  const subA: BlobId[] = [];
  const subB: BlobId[] = [];
  for (let i = 0, j = 0; i < as.length && j < bs.length; ) {
    const cmp = Buffer.compare(sortKey(as[i]!), sortKey(bs[j]!));
    if (cmp < 0) i++;
    else if (cmp > 0) j++;
    else {
      const x = as[i++]!;
      const y = bs[j++]!;
      if (x.type === 'dir' && y.type === 'dir' && x.subtree !== y.subtree) {
        if (x.subtree !== undefined) subA.push(x.subtree);
        if (y.subtree !== undefined) subB.push(y.subtree);
      }
    }
  }
  if (subA.length > 0) sides.a.want(subA, pos);
  if (subB.length > 0) sides.b.want(subB, pos);
  let sub = 0;
  let i = 0;
  let j = 0;
  while (i < as.length || j < bs.length) {
    const x = as[i];
    const y = bs[j];
    const cmp = x === undefined ? 1 : y === undefined ? -1 : Buffer.compare(sortKey(x), sortKey(y));
    if (cmp < 0) {
      yield* allUnder(repository, x!, joinSnap(dir, x!.name), 'removed', options, depth);
      i++;
    } else if (cmp > 0) {
      yield* allUnder(repository, y!, joinSnap(dir, y!.name), 'added', options, depth);
      j++;
    } else {
      const p = joinSnap(dir, x!.name);
      if (x!.type !== y!.type) {
        yield { path: p, change: 'type', before: x!, after: y! };
        if (x!.type === 'dir') yield* under(repository, x!, p, 'removed', options, depth);
        if (y!.type === 'dir') yield* under(repository, y!, p, 'added', options, depth);
      } else {
        const fields = changedFields(x!, y!);
        if (fields.length > 0) {
          const change: ChangeKind = fields.includes('content') || fields.includes('target') ? 'modified' : 'metadata';
          yield { path: p, change, before: x!, after: y!, fields };
        }
        if (x!.type === 'dir' && x!.subtree !== y!.subtree) yield* diffTrees(repository, sides, x!.subtree, y!.subtree, p, options, depth + 1, [...pos, sub++]);
      }
      i++;
      j++;
    }
  }
}

async function* allUnder(
  repository: TreeReader,
  node: Node,
  path: string,
  change: 'added' | 'removed',
  options: TreeWalkOptions,
  depth: number,
): AsyncGenerator<SnapshotChange> {
  yield change === 'added' ? { path, change, after: node } : { path, change, before: node };
  yield* under(repository, node, path, change, options, depth);
}

async function* under(
  repository: TreeReader,
  node: Node,
  path: string,
  change: 'added' | 'removed',
  options: TreeWalkOptions,
  depth: number,
): AsyncGenerator<SnapshotChange> {
  if (node.type !== 'dir' || node.subtree === undefined) return;
  for await (const chunk of walkTreeAhead(repository, node.subtree, path, true, options, depth + 1)) {
    for (const item of chunk) yield change === 'added' ? { path: item.path, change, after: item.node } : { path: item.path, change, before: item.node };
  }
}
