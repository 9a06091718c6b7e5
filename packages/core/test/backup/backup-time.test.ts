import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { runBackup } from '../../src/index.js';
import { memoryRepository } from './helpers/real-repo.js';
import { removeDir, tempDir } from './helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

describe('backup time (restic --time)', () => {
  it('records the given time as the snapshot time; the summary keeps the real start and end', async () => {
    const src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'a');
    const { repo } = await memoryRepository();
    const time = new Date('2021-06-01T08:30:00.000Z');
    const before = Date.now();
    const res = await runBackup({ repository: repo, sources: [src], time });
    expect(res.snapshot!.time).toBe('2021-06-01T08:30:00.000Z');
    expect((await repo.loadSnapshot(res.snapshotId!)).time).toBe('2021-06-01T08:30:00.000Z');
    expect(Date.parse(res.snapshot!.summary!.startTime)).toBeGreaterThanOrEqual(before);
    // Without it, the snapshot time is the start of the backup.
    const now = await runBackup({ repository: repo, sources: [src] });
    expect(now.snapshot!.time).toBe(now.snapshot!.summary!.startTime);
    await repo.close();
  });

  it('refuses an invalid Date', async () => {
    const { repo } = await memoryRepository();
    await expect(runBackup({ repository: repo, sources: [work], time: new Date('nope') })).rejects.toThrow(/time is an invalid Date/);
    await repo.close();
  });
});
