/**
 * The restore holds a descriptor per directory (restore/anchors.ts) and bounds how many are open:
 * past the bound its traversal waits for directories below which everything is written. With a
 * tiny bound a tree of many directories still restores exactly (fresh and in place), nothing hangs,
 * and the descriptors open at once stay near the bound.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { link, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { restoreSnapshot, runBackup } from '../../src/index.js';
import { anchorsAvailable, setMadeUpOwnersForTesting, setMaxOpenDirsForTesting } from '../../src/restore/anchors.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  setMaxOpenDirsForTesting(undefined);
  setMadeUpOwnersForTesting(false);
  await removeDir(work);
});

describe.runIf(anchorsAvailable())('directory descriptors of a restore', () => {
  it('with no directory open besides the way down, 240 directories restore exactly, fresh and in place, and the open descriptors stay bounded', async () => {
    const src = join(work, 'src');
    const files = new Map<string, string>();
    for (let d = 0; d < 120; d++) {
      for (const sub of ['', '/inner']) {
        await mkdir(join(src, `d${d}${sub}`), { recursive: true });
        for (let f = 0; f < 3; f++) {
          const rel = `d${d}${sub}/f${f}`;
          files.set(rel, `${rel} `.repeat(1 + ((d + f) % 40)));
          await writeFile(join(src, rel), files.get(rel)!);
        }
      }
    }
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    setMaxOpenDirsForTesting(0);
    const target = join(work, 'target');
    const baseline = readdirSync('/proc/self/fd').length;
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, readdirSync('/proc/self/fd').length - baseline);
    }, 1);
    try {
      for (const overwrite of ['if-changed', 'always'] as const) {
        const rr = await restoreSnapshot({ repository: repo, snapshotId: res.snapshotId!, target, overwrite });
        expect(rr.errors).toEqual([]);
        for (const [rel, text] of files) expect(await readFile(join(target, src, rel), 'utf8'), rel).toBe(text);
      }
    } finally {
      clearInterval(sampler);
    }
    // The bound, the directories on the way down (depth of the source path), and a few files and packs.
    expect(most).toBeLessThan(1 + src.split('/').length + 2 + 24);
    expect(readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(baseline);
  });

  it('a hard link whose first name is in a directory already finished (its descriptor closed) is linked through the way opened again', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'a'), { recursive: true });
    await mkdir(join(src, 'z', 'deep'), { recursive: true });
    await writeFile(join(src, 'a', 'first'), 'shared content');
    await link(join(src, 'a', 'first'), join(src, 'z', 'deep', 'second'));
    for (let i = 0; i < 20; i++) await writeFile(join(src, 'a', `filler${i}`), `filler ${i}`);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    // (No other directory open besides the way down: the traversal enters z only once a is finished and closed.)
    setMaxOpenDirsForTesting(0);
    const target = join(work, 'target');
    const rr = await restoreSnapshot({ repository: repo, snapshotId: res.snapshotId!, target });
    expect(rr.errors).toEqual([]);
    const first = await stat(join(target, src, 'a', 'first'));
    const second = await stat(join(target, src, 'z', 'deep', 'second'));
    expect(second.ino).toBe(first.ino);
    expect(first.nlink).toBe(2);
    expect(await readFile(join(target, src, 'z', 'deep', 'second'), 'utf8')).toBe('shared content');
  });

  it('on a file system whose owners and modes are made up (vfat: made directories do not look like the restore\'s own), the restore still completes exactly', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'a', 'b'), { recursive: true });
    await writeFile(join(src, 'a', 'one'), 'one');
    await writeFile(join(src, 'a', 'b', 'two'), 'two');
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    setMadeUpOwnersForTesting(true);
    const target = join(work, 'target');
    const rr = await restoreSnapshot({ repository: repo, snapshotId: res.snapshotId!, target });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(2);
    expect(await readFile(join(target, src, 'a', 'one'), 'utf8')).toBe('one');
    expect(await readFile(join(target, src, 'a', 'b', 'two'), 'utf8')).toBe('two');
  });
});
