import { describe, expect, it } from 'vitest';
import { Repository } from '../../src/repository/repository.js';
import type { Snapshot, Tree } from '../../src/repository/types.js';
import { FAST_KDF, MapStorage, quietLogger, random, textish } from './helpers.js';

/** A small "backup": some data blobs, a tree listing them, flush, snapshot. */
async function backup(repo: Repository, seed: number, files: Buffer[]): Promise<string> {
  const nodes: Tree['nodes'] = [];
  for (const [i, f] of files.entries()) {
    const { id } = await repo.saveBlob('data', f);
    nodes.push({ name: `f${seed}-${i}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', ctimeNs: '0', inode: '0', dev: '0', size: f.length, content: [id] });
  }
  const tree = await repo.saveTree({ nodes });
  await repo.flush();
  const snap: Snapshot = { time: new Date(Date.UTC(2024, 0, seed)).toISOString(), hostname: 'h', username: 'u', paths: ['/x'], tags: [], tree, programVersion: 't' };
  return repo.saveSnapshot(snap);
}

describe('a crash at any storage write leaves a valid repository', () => {
  it('check is clean and earlier snapshots restore, whichever write was the last', async () => {
    const opts = { kdf: FAST_KDF, logger: quietLogger(), packSize: 8 * 1024, indexEvery: 2 };
    const base = new MapStorage();
    const first = await Repository.init(base, 'pw', opts);
    const files1 = Array.from({ length: 6 }, (_, i) => textish(5000, i));
    const snap1 = await backup(first, 1, files1);
    await first.close();
    const files2 = [...files1.slice(0, 3), ...Array.from({ length: 8 }, () => random(5000))];

    // Count the writes of a full second backup, then crash after each possible number of them.
    const probe = new MapStorage();
    for (const [k, v] of base.files) probe.files.set(k, Buffer.from(v));
    const r = await Repository.open(probe, 'pw', opts);
    await r.loadIndex();
    const before = probe.saves;
    await backup(r, 2, files2);
    const writes = probe.saves - before;
    await r.close();
    expect(writes).toBeGreaterThan(5);

    for (let crashAfter = 0; crashAfter < writes; crashAfter++) {
      const storage = new MapStorage();
      for (const [k, v] of base.files) storage.files.set(k, Buffer.from(v));
      const repo = await Repository.open(storage, 'pw', opts);
      await repo.loadIndex();
      let n = 0;
      storage.beforeSave = () => {
        if (n++ >= crashAfter) throw new Error('simulated crash');
      };
      await expect(backup(repo, 2, files2)).rejects.toThrow(/simulated crash/);
      await repo.close().catch(() => undefined);
      storage.beforeSave = undefined;

      const after = await Repository.open(storage, 'pw', opts);
      const report = await after.check({ readData: true });
      expect(report.errors, `crash after ${crashAfter} writes`).toEqual([]);
      const s1 = await after.loadSnapshot(snap1);
      const tree = await after.loadTree(s1.tree);
      for (const [i, node] of tree.nodes.entries()) expect((await after.loadBlob('data', node.content![0]!)).equals(files1[i]!)).toBe(true);
      // and the next backup completes
      await after.loadIndex();
      const snap2 = await backup(after, 3, files2);
      expect((await after.check({})).errors).toEqual([]);
      expect((await after.findSnapshot('latest')).id).toBe(snap2);
      await after.close();
    }
  });
});
