/**
 * The tree read-ahead follows the traversal: trees are read in depth-first order, in batches, a
 * deep hierarchy without one read per directory, memory bounded by the budget; a tree that
 * cannot be read is reported for its directory, the rest is listed.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { listTree, listTreeChunks } from '../../src/index.js';
import { canonicalJson } from '../../src/repository/canonical.js';
import type { BlobId, Node, Snapshot, Tree } from '../../src/repository/types.js';
import { parseTree } from '../../src/repository/decode.js';
import { TreeLoader } from '../../src/snapshot-ops/tree-loader.js';

const idOf = (bytes: Buffer): BlobId => createHash('sha256').update(bytes).digest('hex');

function file(name: string, size: number): Node {
  return { name, type: 'file', mode: 0o644, uid: 1000, gid: 1000, mtimeNs: '1700000000000000000', ctimeNs: '1700000000000000000', inode: '1', dev: '1', size, content: size > 0 ? [idOf(Buffer.from(name))] : [] };
}

function dir(name: string, subtree: BlobId): Node {
  return { name, type: 'dir', mode: 0o755, uid: 1000, gid: 1000, mtimeNs: '1700000000000000000', ctimeNs: '1700000000000000000', inode: '2', dev: '1', size: 0, subtree };
}

/** An in-memory set of tree blobs with the calls a tree reader makes, counted. */
class FakeTrees {
  readonly blobs = new Map<BlobId, Buffer>();
  singles = 0;
  batches = 0;
  batched = 0;
  missing = new Set<BlobId>();
  put(nodes: Node[]): BlobId {
    const bytes = Buffer.from(canonicalJson({ nodes }), 'utf8');
    const id = idOf(bytes);
    this.blobs.set(id, bytes);
    return id;
  }
  async loadTree(id: BlobId): Promise<Tree> {
    this.singles++;
    await new Promise((r) => setImmediate(r));
    if (this.missing.has(id)) throw new Error(`tree blob ${id} is gone`);
    return parseTree(this.blobs.get(id)!, id);
  }
  async loadBlobs(_type: string, ids: readonly BlobId[], onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void): Promise<void> {
    this.batches++;
    this.batched += ids.length;
    await new Promise((r) => setImmediate(r));
    for (const id of ids) {
      if (this.missing.has(id)) onBlob(id, undefined, new Error(`tree blob ${id} is gone`));
      else onBlob(id, this.blobs.get(id));
    }
  }
  lookupBlob(_type: string, id: BlobId): { length: number } | undefined {
    const b = this.blobs.get(id);
    return b ? { length: b.byteLength } : undefined;
  }
}

/**
 * A hierarchy of `depth` levels, `fanout` sub-directories and 3 files per directory; every leaf
 * directory shares one empty tree (as empty directories do). Returns the root and the paths in
 * depth-first order.
 */
function hierarchy(t: FakeTrees, depth: number, fanout: number): { root: BlobId; paths: string[]; dirs: number } {
  const empty = t.put([]);
  let dirs = 0;
  const build = (level: number, prefix: string): { id: BlobId; paths: string[] } => {
    dirs++;
    const nodes: Node[] = [];
    const paths: string[] = [];
    for (let f = 0; f < 3; f++) {
      nodes.push(file(`f${f}-${prefix.replace(/\//g, '_')}`, f * 10));
    }
    if (level < depth) {
      for (let d = 0; d < fanout; d++) nodes.push(dir(`d${d}`, ''));
    } else {
      nodes.push(dir('empty', empty));
    }
    nodes.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (const n of nodes) {
      const p = `${prefix}/${n.name}`;
      paths.push(p);
      if (n.type === 'dir' && n.name !== 'empty') {
        const sub = build(level + 1, p);
        n.subtree = sub.id;
        paths.push(...sub.paths);
      }
    }
    return { id: t.put(nodes), paths };
  };
  const r = build(0, '');
  return { root: r.id, paths: r.paths, dirs };
}

function snapshotOf(root: BlobId): Snapshot {
  return { time: '2024-01-01T00:00:00Z', hostname: 'h', username: 'u', paths: ['/x'], tags: [], tree: root, programVersion: 'test' } as Snapshot;
}

describe('tree read-ahead in depth-first order', () => {
  it('lists a deep hierarchy (thousands of directories) in order, in batches, with no tree read alone', async () => {
    const t = new FakeTrees();
    const { root, paths, dirs } = hierarchy(t, 6, 4); // 5,461 directories, 7 levels
    expect(dirs).toBeGreaterThan(5000);
    const listed: string[] = [];
    let chunks = 0;
    for await (const chunk of listTreeChunks(t as never, snapshotOf(root), '/')) {
      chunks++;
      for (const item of chunk) listed.push(item.path);
    }
    expect(listed).toEqual(paths);
    // One chunk per wait for a tree (and per 2,048 entries), not per directory.
    expect(chunks).toBeLessThan(dirs / 5);
    // lookupPath reads the root once on its own; every other tree comes in batches.
    expect(t.singles).toBeLessThanOrEqual(1);
    expect(t.batches).toBeLessThan(dirs / 20);
    // Every tree read once (the shared empty tree at most once per batch that met it).
    expect(t.batched).toBeLessThan(dirs * 1.1);
  });

  it('keeps what it holds within its budget', async () => {
    const t = new FakeTrees();
    const { root } = hierarchy(t, 5, 4);
    const budget = 16 * 1024;
    const loader = new TreeLoader(t, budget, true, { dropBehind: true });
    const largest = Math.max(...[...t.blobs.values()].map((b) => b.byteLength));
    let most = 0;
    let taken = 0;
    const visit = async (id: BlobId, pos: number[]): Promise<void> => {
      const tree = await loader.take(id, pos);
      taken++;
      most = Math.max(most, loader.heldBytes);
      let i = 0;
      for (const n of tree.nodes) if (n.type === 'dir') await visit(n.subtree!, [...pos, i++]);
    };
    loader.want([root]);
    await visit(root, [0]);
    loader.close();
    expect(taken).toBeGreaterThan(1000);
    expect(most).toBeLessThanOrEqual(budget + largest);
    expect(t.singles).toBe(0);
  });

  it('a tree that cannot be read is reported for its directory; everything else is listed', async () => {
    const t = new FakeTrees();
    const { root, paths } = hierarchy(t, 5, 3);
    // A directory deep in the middle of the walk.
    const victimPath = '/d1/d2/d0';
    let tree = parseTree(t.blobs.get(root)!, root);
    for (const part of victimPath.split('/').filter(Boolean)) {
      const n = tree.nodes.find((x) => x.name === part)!;
      if (part === 'd0') t.missing.add(n.subtree!);
      else tree = parseTree(t.blobs.get(n.subtree!)!, n.subtree!);
    }
    const errors: Array<{ path: string; message: string }> = [];
    const listed: string[] = [];
    for await (const item of listTree(t as never, snapshotOf(root), '/', { onError: (e) => errors.push(e) })) listed.push(item.path);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.path).toBe(victimPath);
    expect(errors[0]!.message).toMatch(/^directory cannot be read \(tree [0-9a-f]{64}\): tree blob [0-9a-f]{64} is gone$/);
    expect(listed).toEqual(paths.filter((p) => !p.startsWith(`${victimPath}/`)));
    // Without onError, the listing fails at that directory.
    await expect(async () => {
      for await (const _ of listTree(t as never, snapshotOf(root), '/')) void _;
    }).rejects.toThrow(/\/d1\/d2\/d0: directory cannot be read/);
  });
});
