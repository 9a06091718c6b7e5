import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile, utimes } from 'node:fs/promises';
import { lookupPath, readContentInOrder, runBackup, SnapshotFinder } from '../../src/index.js';
import type { Repository } from '../../src/repository/repository.js';
import type { Node, Snapshot, Tree } from '../../src/repository/types.js';
import { MAX_TREE_DEPTH } from '../../src/repository/limits.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

async function put(root: string, rel: string, data: Buffer | string): Promise<void> {
  await mkdir(join(root, rel, '..'), { recursive: true });
  await writeFile(join(root, rel), data);
}

/** Counts the trees the repository hands out (single loads and batched ones). */
function countingTrees(repo: Repository): { repo: Repository; trees: () => number } {
  let n = 0;
  const c = Object.create(repo) as Repository;
  c.loadTree = (id) => {
    n++;
    return repo.loadTree(id);
  };
  c.loadBlobs = (type, ids, onBlob, opts) => {
    if (type === 'tree') n += ids.length;
    return repo.loadBlobs(type, ids, onBlob, opts);
  };
  return { repo: c, trees: () => n };
}

describe('SnapshotFinder', () => {
  it('a plain name matches at any depth, a pattern with a slash from the root; a matching directory stands for its contents', async () => {
    const src = join(work, 'src');
    await put(src, 'notes.txt', 'top');
    await put(src, 'a/b/c/notes.txt', 'deep');
    await put(src, 'a/other.txt', 'x');
    await put(src, 'logs/notes.txt/inner.txt', 'a directory called notes.txt');
    const { repo } = await memoryRepository();
    const r = await runBackup({ repository: repo, sources: [src], parent: null });
    const find = (patterns: string[], opts = {}) => new SnapshotFinder(repo, { patterns, ...opts }).find(r.snapshot!);
    expect((await find(['notes.txt'])).map((m) => m.path)).toEqual([`${src}/a/b/c/notes.txt`, `${src}/logs/notes.txt`, `${src}/notes.txt`]);
    expect((await find([`${src}/a/**/notes.txt`])).map((m) => m.path)).toEqual([`${src}/a/b/c/notes.txt`]);
    expect((await find(['NOTES.TXT'])).length).toBe(0);
    expect((await find(['NOTES.TXT'], { ignoreCase: true })).length).toBe(3);
    expect((await find(['*.txt', '!other.txt'])).map((m) => m.path)).not.toContain(`${src}/a/other.txt`);
  });

  it('--oldest/--newest bound the modification time', async () => {
    const src = join(work, 'src');
    await put(src, 'old.txt', 'o');
    await put(src, 'new.txt', 'n');
    await utimes(join(src, 'old.txt'), new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    await utimes(join(src, 'new.txt'), new Date('2024-01-01T00:00:00Z'), new Date('2024-01-01T00:00:00Z'));
    const { repo } = await memoryRepository();
    const { snapshot } = await runBackup({ repository: repo, sources: [src], parent: null });
    const names = async (o: { oldest?: number; newest?: number }) =>
      (await new SnapshotFinder(repo, { patterns: ['*.txt'], ...o }).find(snapshot!)).map((m) => m.node.name);
    expect(await names({ oldest: Date.parse('2022-01-01T00:00:00Z') })).toEqual(['new.txt']);
    expect(await names({ newest: Date.parse('2022-01-01T00:00:00Z') })).toEqual(['old.txt']);
    expect(await names({ oldest: Date.parse('2020-01-01T00:00:00Z'), newest: Date.parse('2024-01-01T00:00:00Z') })).toEqual(['new.txt', 'old.txt']);
  });

  it('a directory unchanged since an earlier snapshot is not read again: its matches are reused', async () => {
    const src = join(work, 'src');
    for (let d = 0; d < 6; d++) for (let s = 0; s < 3; s++) await put(src, `d${d}/s${s}/file-${d}-${s}.txt`, `${d}${s}`);
    await put(src, 'd0/s0/match.log', 'm');
    await put(src, 'd5/s2/match.log', 'm');
    const { repo: base } = await memoryRepository();
    const first = await runBackup({ repository: base, sources: [src], parent: null });
    await put(src, 'd3/new/match.log', 'new'); // changes d3 and the root only
    const second = await runBackup({ repository: base, sources: [src], parent: null });
    const { repo, trees } = countingTrees(base);
    const finder = new SnapshotFinder(repo, { patterns: ['match.log'] });
    const a = await finder.find(first.snapshot!);
    const readFirst = trees();
    const b = await finder.find(second.snapshot!);
    const readSecond = trees() - readFirst;
    expect(a.map((m) => m.path)).toEqual([`${src}/d0/s0/match.log`, `${src}/d5/s2/match.log`]);
    expect(b.map((m) => m.path)).toEqual([`${src}/d0/s0/match.log`, `${src}/d3/new/match.log`, `${src}/d5/s2/match.log`]);
    // First snapshot: every tree (ancestors of src, src, 6 × (1 + 3)). Second: only the changed path and d3's new dir.
    expect(readFirst).toBe(finder.stats.treesRead - readSecond);
    const ancestors = src.split('/').filter(Boolean).length; // root tree + one per ancestor dir
    expect(readFirst).toBe(ancestors + 1 + 6 * 4);
    expect(readSecond).toBe(ancestors + 1 + 1 + 1); // root…src, d3, d3/new
    expect(finder.stats.treesReused).toBeGreaterThanOrEqual(5);
    // A third search of the same snapshot reads nothing at all.
    await finder.find(second.snapshot!);
    expect(trees()).toBe(readFirst + readSecond);
  });
});

describe('readContentInOrder', () => {
  it('hands out every file blob by blob in file order, across windows and within a file split over windows', async () => {
    const src = join(work, 'src');
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 12; i++) files.set(`f${String(i).padStart(2, '0')}.bin`, pseudoRandom(i === 5 ? 200_000 : 3000 + i * 500, i + 1));
    files.set('empty', Buffer.alloc(0));
    files.set('dup.bin', files.get('f01.bin')!); // same blobs as another file
    for (const [name, data] of files) await put(src, name, data);
    const { repo } = await memoryRepository();
    const { snapshot } = await runBackup({ repository: repo, sources: [src], parent: null });
    const items = [];
    for (const name of [...files.keys()].sort()) {
      const node = (await lookupPath(repo, snapshot as Snapshot, `${src}/${name}`))!;
      items.push({ tag: name, content: node.content ?? [] });
    }
    let loads = 0;
    const counting = Object.create(repo) as Repository;
    counting.loadBlobs = (type, ids, onBlob, opts) => {
      loads++;
      return repo.loadBlobs(type, ids, onBlob, opts);
    };
    const got = new Map<string, Buffer[]>();
    const order: string[] = [];
    for await (const piece of readContentInOrder(counting, items, { windowBytes: 40_000, windowsAhead: 1 })) {
      if (piece.start) order.push(piece.tag);
      const parts = got.get(piece.tag) ?? [];
      if (piece.data) parts.push(Buffer.from(piece.data));
      got.set(piece.tag, parts);
      expect(piece.end).toBe(piece.end); // shape
    }
    expect(order).toEqual([...files.keys()].sort());
    for (const [name, data] of files) expect(Buffer.concat(got.get(name)!).equals(data), name).toBe(true);
    // Windows of 40 KB: the 200 KB file is split over several, the small files share them.
    expect(loads).toBeGreaterThan(4);
    expect(loads).toBeLessThan(items.length);
  });

  it('a missing blob fails with an error naming the item and the blob', async () => {
    const { repo } = await memoryRepository();
    const missing = 'ab'.repeat(32);
    const run = async () => {
      for await (const _ of readContentInOrder(repo, [{ tag: '/x', content: [missing] }])) void _;
    };
    await expect(run()).rejects.toMatchObject({ name: 'OrderedContentError', tag: '/x', blobId: missing });
  });
});

describe('SnapshotFinder on a hostile chain of nested directories', () => {
  it('stops at the depth limit and reports it, instead of overflowing the stack', async () => {
    // 20,000 directories, each holding the next and a file notes.txt (ids: the depth, as 64 hex digits).
    const depthOf = (id: string) => Number.parseInt(id, 16);
    const idAt = (d: number) => d.toString(16).padStart(64, '0');
    const node = { mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: '0', ctimeNs: '0', atimeNs: '0', dev: '1', ino: '1' };
    const source = {
      loadTree: async (id: string): Promise<Tree> => {
        const d = depthOf(id);
        const nodes = [{ ...node, name: 'notes.txt', type: 'file', content: [] }] as unknown as Node[];
        if (d < 20_000) nodes.unshift({ ...node, name: 'd', type: 'dir', subtree: idAt(d + 1) } as unknown as Node);
        return { nodes };
      },
    };
    const errors: Array<{ path: string; message: string }> = [];
    const finder = new SnapshotFinder(source as never, { patterns: ['notes.txt'], onError: (path, err) => errors.push({ path, message: err.message }) });
    const matches = await finder.find({ tree: idAt(1) } as Snapshot);
    // Every notes.txt down to the limit, none below it.
    expect(matches.length).toBeGreaterThan(1000);
    expect(matches.length).toBeLessThanOrEqual(MAX_TREE_DEPTH + 1);
    expect(matches[matches.length - 1]!.path).toBe('/notes.txt');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/nested deeper than 1024 levels; not searched below/);
  });
});

