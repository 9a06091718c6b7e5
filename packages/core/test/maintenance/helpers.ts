import { join } from 'node:path';
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { expect } from 'vitest';
import { restoreSnapshot, runBackup } from '../../src/index.js';
import { Repository } from '../../src/repository/repository.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { describeTree, pseudoRandom } from '../backup/helpers/fs-tree.js';

/** Three generations of a source (each replaces some files), one snapshot each. */
export async function generations(work: string, packSize = 40 * 1024) {
  const src = join(work, 'src');
  await mkdir(join(src, 'keep'), { recursive: true });
  await writeFile(join(src, 'keep/stable.bin'), pseudoRandom(60_000, 1));
  const { repo, storage } = await memoryRepository({ packSize });
  const snaps: Array<{ id: string; tree: Map<string, unknown> }> = [];
  for (let g = 0; g < 3; g++) {
    await rm(join(src, 'gen'), { recursive: true, force: true });
    await mkdir(join(src, 'gen'));
    for (let i = 0; i < 4; i++) await writeFile(join(src, 'gen', `f${i}.bin`), pseudoRandom(25_000, 100 * (g + 1) + i));
    const r = await runBackup({ repository: repo, sources: [src], parent: null });
    expect(r.status).toBe('success');
    snaps.push({ id: r.snapshotId!, tree: await describeTree(src) });
  }
  await repo.close();
  const open = (logger: { info(m: string): void; warn(m: string): void } = { info() {}, warn() {} }) =>
    Repository.open(storage, 'test-password', { kdf: { N: 1024, r: 8, p: 1 }, logger });
  return { src, storage, snaps, open };
}


/** Restore `snapshotId` under `work/restore-<label>` and expect the tree at `src` in it to be `expected` (bytes, modes, times). */
export async function expectRestores(work: string, repo: Repository, snapshotId: string, expected: Map<string, unknown>, src: string, label: string): Promise<void> {
  const target = join(work, `restore-${label}`);
  const r = await restoreSnapshot({ repository: repo, snapshotId, target });
  expect(r.errors, label).toEqual([]);
  const after = await describeTree(join(target, src));
  expect([...after.keys()].sort(), label).toEqual([...expected.keys()].sort());
  for (const [p, info] of expected) expect(after.get(p), `${label}: ${p}`).toEqual(info);
}
