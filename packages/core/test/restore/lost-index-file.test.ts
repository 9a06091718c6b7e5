/**
 * A lost index file: `check --read-data` passes with warnings (the packs it listed are read from
 * their headers), so a restore must work too. It plans file content with synchronous index
 * lookups: a blob only an unindexed pack holds has the packs no index lists looked at first.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createMemoryStorage } from '../../../storage-memory/src/index.js';
import { runBackup, restoreSnapshot } from '../../src/index.js';
import { readIndexFiles, rawEntries } from '../../src/maintenance/index-files.js';
import { Repository } from '../../src/repository/repository.js';
import { TEST_CHUNKER } from '../backup/helpers/real-repo.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-lost-index-');
});
afterEach(async () => {
  await removeDir(work);
});

const KDF = { N: 1024, r: 8, p: 1 };

describe('restore with an index file lost', () => {
  it('restores, byte for byte, files whose data only an unindexed pack holds', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'd'), { recursive: true });
    const files = { 'big.bin': pseudoRandom(300_000, 1), 'd/mid.bin': pseudoRandom(90_000, 2), 'd/small.txt': Buffer.from('small\n') };
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(src, name), bytes);

    // An index file per pack: the data packs written during the backup are listed by index
    // files of their own, the trees (written last) by another.
    const storage = createMemoryStorage(`lost-index-${Math.random().toString(36).slice(2)}`);
    const logger = { info: () => undefined, warn: () => undefined };
    const repo = await Repository.init(storage, 'pw', { kdf: KDF, logger, chunker: TEST_CHUNKER, packSize: 64 * 1024, indexEvery: 1 });
    const backup = await runBackup({ repository: repo, sources: [src] });
    expect(backup.status).toBe('success');
    const indexFiles = await readIndexFiles(storage, repo.internals().keys, () => undefined);
    await repo.close();

    // Lose an index file that lists only data packs.
    const dataOnly = indexFiles.filter((f) => f.packs.every((p) => [...rawEntries(p)].every((e) => !e.tree)));
    expect(dataOnly.length).toBeGreaterThan(0);
    const lost = dataOnly[0]!;
    await storage.remove({ type: 'index', name: lost.name });

    const warnings: string[] = [];
    const opened = await Repository.open(storage, 'pw', { kdf: KDF, logger: { info: () => undefined, warn: (m) => warnings.push(m) } });
    const target = join(work, 'target');
    const r = await restoreSnapshot({ repository: opened, snapshotId: backup.snapshotId!, target });
    await opened.close();
    expect(r.errors).toEqual([]);
    for (const [name, bytes] of Object.entries(files)) expect((await readFile(join(target, src, name))).equals(bytes), name).toBe(true);
    expect(r.filesRestored).toBe(3);
    // The restore says what it found (the repair is kiwi repair index).
    expect(warnings.join('\n')).toMatch(/no index file lists .*read from (its|their) headers?.*kiwi repair index/);
  });

  it('a blob in no pack at all still fails its file (and only it), after the packs were looked at', async () => {
    const src = join(work, 'src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'a.bin'), pseudoRandom(80_000, 3));
    const storage = createMemoryStorage(`lost-pack-${Math.random().toString(36).slice(2)}`);
    const logger = { info: () => undefined, warn: () => undefined };
    const repo = await Repository.init(storage, 'pw', { kdf: KDF, logger, chunker: TEST_CHUNKER, packSize: 64 * 1024, indexEvery: 1 });
    const first = await runBackup({ repository: repo, sources: [src] });
    const aPacks = new Set<string>();
    for await (const f of storage.list('data')) aPacks.add(f.name);
    await writeFile(join(src, 'b.bin'), pseudoRandom(80_000, 4));
    const second = await runBackup({ repository: repo, sources: [src] });
    expect([first.status, second.status]).toEqual(['success', 'success']);
    // The data packs of the first backup (only a.bin's blobs, and its trees) and their index files are lost.
    const indexFiles = await readIndexFiles(storage, repo.internals().keys, () => undefined);
    await repo.close();
    const lost = indexFiles.filter((f) => f.packs.every((p) => aPacks.has(p.id) && [...rawEntries(p)].every((e) => !e.tree)));
    expect(lost.length).toBeGreaterThan(0);
    for (const f of lost) {
      await storage.remove({ type: 'index', name: f.name });
      for (const p of f.packs) await storage.remove({ type: 'data', name: p.id });
    }

    const opened = await Repository.open(storage, 'pw', { kdf: KDF, logger });
    const target = join(work, 'target');
    const r = await restoreSnapshot({ repository: opened, snapshotId: second.snapshotId!, target });
    await opened.close();
    expect(r.errors.map((e) => e.path)).toEqual([`${src}/a.bin`]);
    expect(r.errors[0]!.message).toMatch(/not in the repository index/);
    expect(await readFile(join(target, src, 'b.bin'))).toEqual(pseudoRandom(80_000, 4));
  });
});
