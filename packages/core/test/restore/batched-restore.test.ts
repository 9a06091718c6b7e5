import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { runBackup, restoreSnapshot } from '../../src/index.js';
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

/** Many small files in sibling directories, a large multi-blob file and one with repeated content. */
async function makeTree(src: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (let d = 0; d < 6; d++) {
    for (let f = 0; f < 25; f++) {
      const rel = `d${d}/f${f}.txt`;
      files.set(rel, pseudoRandom(200 + ((d * 31 + f * 17) % 900), d * 100 + f + 1));
    }
  }
  files.set('big/large.bin', pseudoRandom(300 * 1024, 7));
  files.set('big/zeros.bin', Buffer.alloc(200 * 1024));
  for (const [rel, data] of files) {
    await mkdir(join(src, rel, '..'), { recursive: true });
    await writeFile(join(src, rel), data);
  }
  return files;
}

/** Records the data blob ids the restore asks the repository for. */
function spy(repo: Repository): { repo: Repository; requested: string[] } {
  const requested: string[] = [];
  const wrapped = Object.create(repo) as Repository;
  wrapped.loadBlobs = (type, ids, onBlob, opts) => {
    requested.push(...ids);
    return repo.loadBlobs(type, ids, onBlob, opts);
  };
  wrapped.loadBlob = (type, id, opts) => {
    if (type === 'data') requested.push(id);
    return repo.loadBlob(type, id, opts);
  };
  return { repo: wrapped, requested };
}

describe('restore through batched blob loads', () => {
  it('restores every file exactly, including a multi-blob file with repeated blobs', async () => {
    const src = join(work, 'src');
    const files = await makeTree(src);
    const { repo, reopen } = await memoryRepository({ packSize: 64 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.errors).toEqual([]);
    await repo.close();
    const repo2 = await reopen();
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target, contentReader: { maxFiles: 8, maxUses: 16, readsInFlight: 2, maxRead: 16 * 1024 } });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(files.size);
    for (const [rel, data] of files) expect((await readFile(join(target, src, rel))).equals(data), rel).toBe(true);
    await repo2.close();
  });

  it('plans files ahead of their writes: a pack of 150 small files is read in a few batches, not file by file', async () => {
    const src = join(work, 'src');
    const files = await makeTree(src);
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    let calls = 0;
    const wrapped = Object.create(repo) as Repository;
    wrapped.loadBlobs = (type, ids, onBlob, opts) => {
      if (type === 'data') calls++;
      return repo.loadBlobs(type, ids, onBlob, opts);
    };
    const rr = await restoreSnapshot({ repository: wrapped, snapshot: res.snapshot!, target: join(work, 'out') });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(files.size);
    expect(calls).toBeLessThan(20);
    await repo.close();
  });

  it('with include patterns, loads only the content of included files (siblings are not read ahead)', async () => {
    const src = join(work, 'src');
    const files = await makeTree(src);
    const { repo, reopen } = await memoryRepository({ packSize: 64 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    await repo.close();
    const repo2 = await reopen();
    const { repo: spied, requested } = spy(repo2);
    const target = join(work, 'out');
    // A glob, so the restore enters the sibling directories too; 'big' comes first and its
    // siblings' trees are loaded ahead while it is restored.
    const rr = await restoreSnapshot({ repository: spied, snapshotId: res.snapshotId!, target, include: [`${join(src, 'bi')}*`] });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(2);
    expect(existsSync(join(target, src, 'd1'))).toBe(false);
    expect((await readFile(join(target, src, 'big/large.bin'))).equals(files.get('big/large.bin')!)).toBe(true);
    const notWanted = new Set<string>();
    for (const [rel, data] of files) if (rel.startsWith('d')) notWanted.add(repo2.blobId(data));
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((id) => notWanted.has(id))).toEqual([]);
    await repo2.close();
  });

  it('reports a damaged blob for its file only; the files sharing its read are restored', async () => {
    const src = join(work, 'src');
    const files = await makeTree(src);
    const { repo, storage, reopen } = await memoryRepository({ packSize: 1024 * 1024 });
    const res = await runBackup({ repository: repo, sources: [src] });
    await repo.close();
    const repo2 = await reopen();
    await repo2.loadIndex();
    const victim = 'd3/f4.txt';
    const loc = repo2.lookupBlob('data', repo2.blobId(files.get(victim)!))!;
    const path = `data/${loc.pack.slice(0, 2)}/${loc.pack}`;
    const packBytes = await storage.load({ type: 'data', name: loc.pack });
    packBytes[loc.offset + 40]! ^= 0x10;
    await storage.save({ type: 'data', name: loc.pack }, packBytes);
    const target = join(work, 'out');
    const rr = await restoreSnapshot({ repository: repo2, snapshotId: res.snapshotId!, target });
    expect(rr.errors.length).toBe(1);
    expect(rr.errors[0]!.path).toBe(join(src, victim));
    expect(rr.errors[0]!.message).toContain(loc.id);
    expect(rr.errors[0]!.message).toContain(path);
    expect(existsSync(join(target, src, victim))).toBe(false);
    for (const [rel, data] of files) if (rel !== victim) expect((await readFile(join(target, src, rel))).equals(data), rel).toBe(true);
    await repo2.close();
  });
});
