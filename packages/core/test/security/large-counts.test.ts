/**
 * Counts the repository chooses (entries of a tree, packs no index file lists, snapshots of a
 * group) are handled one by one, never spread into a function's arguments: past ~100,000
 * arguments V8 overflows the stack, and the reader failed with a RangeError instead of doing its
 * work. Each test failed that way before the fix.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { repairSnapshots } from '../../src/maintenance/repair-snapshots.js';
import { encodePackHeader } from '../../src/repository/pack-format.js';
import { Repository } from '../../src/repository/repository.js';
import { invalidNodeCount, invalidNodes, validateTree } from '../../src/repository/validate.js';
import { planRetention } from '../../src/retention/index.js';
import { listTree } from '../../src/snapshot-ops/snapshot-ops.js';
import { HostileRepo, dirNode, fileNode } from '../../src/testing/hostile.js';
import { FAST_KDF, newRepo, quietLogger, type MapStorage } from '../repository/helpers.js';

/** Well past the ~125,000 arguments a call can take on Node's default stack. */
const MANY = 200_000;

/** MANY file nodes named f000000… and a second `f000000`. */
function bigDirectory(): Array<Record<string, unknown>> {
  const nodes: Array<Record<string, unknown>> = [];
  for (let i = 0; i < MANY; i++) nodes.push(fileNode(`f${String(i).padStart(6, '0')}`));
  nodes.push(fileNode('f000000', { inode: '2' }));
  return nodes;
}

describe('a large tree with a repeated name', () => {
  it('keeps its other entries and lists the repeated ones as invalid', () => {
    const tree = validateTree({ nodes: bigDirectory() }, 'ab'.repeat(32));
    expect(tree.nodes.length).toBe(MANY - 1);
    expect(tree.nodes[0]!.name).toBe('f000001');
    expect(invalidNodeCount(tree)).toBe(2);
    expect(invalidNodes(tree)).toEqual([
      { index: 0, name: 'f000000', reason: 'duplicate name in this tree' },
      { index: MANY, name: 'f000000', reason: 'duplicate name in this tree' },
    ]);
  });

  it('repair snapshots leaves out only the repeated entries, not the whole directory', async () => {
    const { repo, storage } = await newRepo();
    await repo.close();
    const h = await HostileRepo.open(storage, 'secret');
    const big = await h.writeTree(bigDirectory());
    const root = await h.writeTree([dirNode('big', big), fileNode('z')]);
    await h.writeRawSnapshot(h.snapshotJson(root));
    const reopened = await Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
    const r = await repairSnapshots(reopened);
    expect(r.snapshots).toHaveLength(1);
    expect(r.snapshots[0]!.removed).toEqual(['/big/f000000', '/big/f000000']);
    const fresh = await reopened.loadSnapshot(r.snapshots[0]!.newId!);
    let files = 0;
    for await (const e of listTree(reopened, fresh, '/big')) if (e.node.type === 'file') files++;
    expect(files).toBe(MANY - 1);
    await reopened.close();
  }, 60_000);
});

describe('a large repository whose index files were deleted', () => {
  it('adopts every pack from its header, and the next index file lists them', async () => {
    const { repo, storage } = await newRepo();
    await repo.close();
    const h = await HostileRepo.open(storage, 'secret');
    // One small data blob per pack, written straight into the map (as a backup would have, before
    // someone deleted index/).
    for (let i = 0; i < MANY; i++) {
      const plain = Buffer.from(`blob ${i}`);
      const stored = h.keys.encrypt(plain);
      const header = h.keys.encrypt(encodePackHeader([{ flags: 0, id: Buffer.from(h.blobId(plain), 'hex'), offset: 0, length: stored.byteLength, rawLength: plain.byteLength }]));
      const trailer = Buffer.alloc(4);
      trailer.writeUInt32LE(header.byteLength);
      const bytes = Buffer.concat([stored, header, trailer]);
      const name = createHash('sha256').update(bytes).digest('hex');
      (storage as MapStorage).files.set(`data/${name.slice(0, 2)}/${name}`, bytes);
    }
    const reopened = await Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
    const loaded = await reopened.loadIndex({ verifyPacks: true });
    expect(loaded.adoptedPacks).toHaveLength(MANY);
    expect(reopened.indexStats().blobs).toBe(MANY);
    expect(reopened.writeStats().unindexedPacks).toBe(MANY);
    await reopened.flush();
    await reopened.close();
    const healed = await Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
    const again = await healed.loadIndex({ verifyPacks: true });
    expect(again.adoptedPacks).toHaveLength(0);
    expect(again.blobs).toBe(MANY);
    await healed.close();
  }, 120_000);
});

describe('retention over a large group of snapshots', () => {
  it('plans without overflowing the stack', () => {
    const t0 = Date.parse('2020-01-01T00:00:00Z');
    const items = Array.from({ length: MANY }, (_, i) => ({
      id: i.toString(16).padStart(64, '0'),
      snapshot: { time: new Date(t0 + i * 300_000).toISOString(), hostname: 'h', paths: ['/a'], tags: [] as string[] },
    }));
    const plan = planRetention(items, { policy: { keepDaily: 7 }, now: t0 + MANY * 300_000 });
    expect(plan.keep).toHaveLength(7);
    expect(plan.remove).toHaveLength(MANY - 7);
    const all = planRetention(items, { policy: { keepLast: -1 }, now: t0 + MANY * 300_000 });
    expect(all.keep).toHaveLength(MANY);
    expect(all.remove).toHaveLength(0);
  });
});
