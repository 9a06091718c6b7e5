/**
 * `check`, snapshot and tree stage: every snapshot file authenticates and parses; every tree a
 * snapshot reaches is in the index, loads and parses, and each entry the tree validator refuses
 * is reported with its snapshot and path; every data blob a file names is in the index. Before anything is called missing, the index files written meanwhile (by a backup
 * running under its shared lock) are read, and what they list is checked as usual.
 *
 * `findAffected` traces lost blobs (damaged or missing packs, blobs no index lists) to the
 * snapshots and files that lose data with them.
 */
import { handlePath } from '../storage/types.js';
import type { CheckIndex } from './check-index.js';
import { eachLimit, msg, type CheckContext, type CheckReporter } from './check-util.js';
import { parseSnapshot, parseTree } from './decode.js';
import { MAX_TREE_DEPTH } from './limits.js';
import { invalidNodeCount, invalidNodes } from './validate.js';
import type { CheckAffected, Snapshot, Tree } from './types.js';
import { loadWholeFile } from './whole-file.js';

export interface LoadedSnapshot {
  id: string;
  snapshot: Snapshot;
}

/** Affected paths listed per snapshot and pack (all are counted). */
const MAX_AFFECTED_PATHS = 50;
/** Affected entries remembered per subtree while tracing. */
const MAX_TRACED_PER_TREE = 10_000;

export async function loadSnapshots(ctx: CheckContext, files: ReadonlyArray<{ name: string; size: number }>, report: CheckReporter): Promise<LoadedSnapshot[]> {
  const snapshots: LoadedSnapshot[] = [];
  let done = 0;
  await eachLimit(files, 4, async ({ name, size }) => {
    const file = `snapshots/${name}`;
    try {
      const bytes = await loadWholeFile(ctx.storage, { type: 'snapshot', name }, size);
      snapshots.push({ id: name, snapshot: parseSnapshot(await ctx.openMetadata(bytes, file, name), file) });
      report.stats.snapshots++;
    } catch (err) {
      if (!ctx.storage.isNotFound(err)) report.error(file, msg(err), `kiwi forget ${name.slice(0, 8)} (a damaged snapshot file cannot be repaired; its data stays in the repository until prune)`);
    }
    report.progress({ phase: 'snapshots', done: ++done, total: files.length });
  });
  return snapshots.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Load and parse one tree blob through the check's own index. */
export async function loadCheckTree(ctx: CheckContext, index: CheckIndex, id: string): Promise<Tree> {
  const loc = index.idx.lookup('tree', id);
  if (!loc) throw new Error(`tree ${id} is not in the index`);
  const bytes = await ctx.storage.load({ type: 'data', name: loc.pack }, { offset: loc.offset, length: loc.length });
  return parseTree(await ctx.openBlob(loc, bytes), id);
}

interface Pending {
  id: string;
  path: string;
  snapshot: string;
  /** Directory levels below the snapshot's root. */
  depth: number;
}

export async function walkTrees(ctx: CheckContext, snapshots: LoadedSnapshot[], index: CheckIndex, report: CheckReporter): Promise<void> {
  const seenTrees = new Set<string>();
  const seenData = new Set<string>();
  let missingTrees: Pending[] = [];
  let missingData: Pending[] = [];

  const walk = async (stack: Pending[]) => {
    while (stack.length > 0) {
      const { id, path, snapshot, depth } = stack.pop()!;
      if (seenTrees.has(id)) continue;
      const loc = index.idx.lookup('tree', id);
      if (!loc) {
        missingTrees.push({ id, path, snapshot, depth });
        continue;
      }
      seenTrees.add(id);
      const packFile = handlePath({ type: 'data', name: loc.pack });
      let tree: Tree;
      try {
        tree = await loadCheckTree(ctx, index, id);
      } catch (err) {
        report.error(packFile, `tree ${id} (${path}, snapshot ${snapshot.slice(0, 8)}) cannot be loaded: ${msg(err)}`, `kiwi repair packs ${loc.pack.slice(0, 12)}, then kiwi repair snapshots`);
        index.lose('tree', id, packFile);
        continue;
      }
      report.stats.trees++;
      const childPath = (name: string) => (path === '/' ? `/${name}` : `${path}/${name}`);
      // Entries the validator (the one restore and ls use) refused: each one named with its snapshot and path.
      for (const bad of invalidNodes(tree)) {
        report.error(`snapshots/${snapshot}`, `${childPath(bad.name ?? `#${bad.index}`)}: invalid entry ${bad.index} of tree ${id}: ${bad.reason}`, 'kiwi repair snapshots');
      }
      const unlisted = invalidNodeCount(tree) - invalidNodes(tree).length;
      if (unlisted > 0) report.error(`snapshots/${snapshot}`, `${path}: and ${unlisted} more invalid entries of tree ${id}`, 'kiwi repair snapshots');
      for (const node of tree.nodes) {
        const child = childPath(node.name);
        if (node.type === 'file') {
          for (const c of node.content ?? []) {
            if (seenData.has(c)) continue;
            seenData.add(c);
            if (!index.idx.has('data', c)) missingData.push({ id: c, path: child, snapshot, depth });
          }
        } else if (node.type === 'dir' && node.subtree !== undefined) {
          if (depth + 1 > MAX_TREE_DEPTH) report.error(`snapshots/${snapshot}`, `${child}: directories nested deeper than ${MAX_TREE_DEPTH} levels (not checked below)`, 'kiwi repair snapshots');
          else stack.push({ id: node.subtree, path: child, snapshot, depth: depth + 1 });
        }
      }
      report.progress({ phase: 'trees', done: report.stats.trees, total: report.stats.trees + stack.length });
    }
  };

  await walk(snapshots.map(({ id, snapshot }) => ({ id: snapshot.tree, path: '/', snapshot: id, depth: 0 })));

  // Before calling anything missing: read the index files written since the index was read.
  if ((missingTrees.length > 0 || missingData.length > 0) && (await index.readNew()) > 0) {
    const trees = missingTrees;
    const data = missingData;
    missingTrees = [];
    missingData = [];
    for (const d of data) if (!index.idx.has('data', d.id)) missingData.push(d);
    await walk(trees);
  }
  for (const t of missingTrees) {
    report.error(`snapshots/${t.snapshot}`, `tree ${t.id} (${t.path}) is not in the index`, 'kiwi repair index (if its pack still exists), else kiwi repair snapshots');
    index.lose('tree', t.id, 'index');
  }
  for (const d of missingData) {
    report.error(`snapshots/${d.snapshot}`, `${d.path}: data blob ${d.id} is not in the index`, 'kiwi repair index (if its pack still exists), else kiwi repair snapshots');
    index.lose('data', d.id, 'index');
  }
}

/** For every lost blob's pack: which snapshots and files lose data. */
export async function findAffected(ctx: CheckContext, snapshots: LoadedSnapshot[], index: CheckIndex): Promise<CheckAffected[]> {
  /** Affected entries below a tree, relative to it (null: the tree cannot be read; its loss is reported already). */
  const memo = new Map<string, Array<{ path: string; file: string }>>();
  const NONE: Array<{ path: string; file: string }> = [];

  const below = async (treeId: string): Promise<Array<{ path: string; file: string }>> => {
    const known = memo.get(treeId);
    if (known) return known;
    memo.set(treeId, NONE); // a cycle (only in a forged repository) ends here
    let tree: Tree;
    try {
      tree = await loadCheckTree(ctx, index, treeId);
    } catch {
      return NONE;
    }
    const out: Array<{ path: string; file: string }> = [];
    for (const node of tree.nodes) {
      if (out.length >= MAX_TRACED_PER_TREE) break;
      if (node.type === 'file') {
        const files = new Set<string>();
        for (const c of node.content ?? []) {
          const file = index.isLost('data', c);
          if (file) files.add(file);
        }
        for (const file of files) out.push({ path: node.name, file });
      } else if (node.type === 'dir' && typeof node.subtree === 'string') {
        const file = index.isLost('tree', node.subtree);
        if (file) out.push({ path: `${node.name}/`, file });
        else for (const e of await below(node.subtree)) out.push({ path: `${node.name}/${e.path}`, file: e.file });
      }
    }
    const result = out.length > 0 ? out : NONE;
    memo.set(treeId, result);
    return result;
  };

  const byFile = new Map<string, Map<string, { paths: string[]; more: number }>>();
  for (const { id, snapshot } of snapshots) {
    const rootLost = index.isLost('tree', snapshot.tree);
    const entries = rootLost ? [{ path: '', file: rootLost }] : await below(snapshot.tree);
    for (const e of entries) {
      let snaps = byFile.get(e.file);
      if (!snaps) byFile.set(e.file, (snaps = new Map()));
      let s = snaps.get(id);
      if (!s) snaps.set(id, (s = { paths: [], more: 0 }));
      if (s.paths.length < MAX_AFFECTED_PATHS) s.paths.push(`/${e.path}`);
      else s.more++;
    }
  }
  return [...byFile].map(([file, snaps]) => ({ file, snapshots: [...snaps].map(([id, s]) => ({ id, paths: s.paths, more: s.more })) }));
}
