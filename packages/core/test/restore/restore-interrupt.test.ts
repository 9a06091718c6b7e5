import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { restoreSnapshot, runBackup } from '../../src/index.js';
import type { Repository } from '../../src/repository/repository.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

/** Every path below `dir` (files and directories). */
async function walkAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await walkAll(p)));
  }
  return out;
}

describe('an interrupted restore', () => {
  it('rejects with the reason, leaves no temporary file behind, and a new restore completes', async () => {
    const src = join(work, 'src');
    const files = new Map<string, Buffer>();
    for (let d = 0; d < 8; d++) {
      for (let f = 0; f < 30; f++) files.set(`d${d}/f${f}.bin`, pseudoRandom(2000 + f * 50, d * 100 + f + 1));
      files.set(`d${d}/big.bin`, pseudoRandom(600 * 1024, d + 1000)); // several blobs, written at offsets
    }
    for (const [rel, data] of files) {
      await mkdir(join(src, rel, '..'), { recursive: true });
      await writeFile(join(src, rel), data);
    }
    const { repo, reopen } = await memoryRepository({ packSize: 256 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    await repo.close();

    // The signal fires once a few dozen blobs have been handed to the restore.
    const repo2 = await reopen();
    const ac = new AbortController();
    const reason = new Error('SIGINT');
    let delivered = 0;
    const spied = Object.create(repo2) as Repository;
    spied.loadBlobs = (type, ids, onBlob, opts) =>
      repo2.loadBlobs(
        type,
        ids,
        (id, data, err) => {
          if (type === 'data' && ++delivered === 40) ac.abort(reason);
          return onBlob(id, data, err);
        },
        opts,
      );
    const target = join(work, 'out');
    const err = await restoreSnapshot({ repository: spied, snapshotId: res.snapshotId!, target, signal: ac.signal, contentReader: { readsInFlight: 1, maxRead: 64 * 1024 } }).catch(
      (e: unknown) => e,
    );
    expect(ac.signal.aborted).toBe(true);
    expect(err).toBe(reason);
    const left = await walkAll(target);
    expect(left.filter((p) => p.includes('.kiwi-restore-'))).toEqual([]);
    // Whatever was restored before the stop is complete (renamed into place only when whole).
    const restored = left.filter((p) => p.endsWith('.bin'));
    expect(restored.length).toBeLessThan(files.size);
    for (const p of restored) expect((await readFile(p)).equals(files.get(p.slice(join(target, src).length + 1))!), p).toBe(true);

    const again = join(work, 'again');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target: again });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(files.size);
    await repo2.close();
  });
});
