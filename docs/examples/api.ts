// A complete program against @kiwi-backup/core: create a repository on local disk, back up a
// directory, list the snapshots and the files of one, restore it, check the repository.
// Run: node api.js <work-dir> (after compiling). The tests type-check and run this file.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Repository, listTree, restoreSnapshot, runBackup, openStorage, type Storage } from '@kiwi-backup/core';
import { createLocalStorage, localAdapter } from '@kiwi-backup/storage-local';

const work = process.argv[2] ?? '/tmp/kiwi-api-example';
const source = join(work, 'documents');
await mkdir(join(source, 'letters'), { recursive: true });
await writeFile(join(source, 'letters', 'hello.txt'), 'Hello, Kiwi!\n');

// 1. A repository: storage (here a local directory) plus a password.
const storage: Storage = createLocalStorage(join(work, 'repository'));
await storage.create();
const created = await Repository.init(storage, 'correct horse battery staple');
console.log(`created repository ${created.id}`);
await created.close();

// 2. Open it again, as a later run would (a URL works too: openStorage picks the adapter by scheme).
const reopened: Storage = await openStorage(join(work, 'repository'), { adapters: { local: localAdapter } });
const repo = await Repository.open(reopened, 'correct horse battery staple');
try {
  // 3. Back up: a snapshot of the source directory.
  const backup = await runBackup({
    repository: repo,
    sources: [source],
    tags: ['example'],
    onProgress: (stats) => process.stdout.write(`\r${stats.totalFiles} files`),
  });
  console.log(`\nsnapshot ${backup.snapshotId} (${backup.status}): ${backup.stats.filesNew} new files`);

  // 4. List snapshots, and the files of the latest one.
  for (const { id, snapshot } of await repo.listSnapshots()) {
    console.log(`${id.slice(0, 8)} ${snapshot.time} ${snapshot.hostname} ${snapshot.paths.join(' ')}`);
  }
  const { id, snapshot } = await repo.findSnapshot('latest');
  for await (const { path, node } of listTree(repo, snapshot)) console.log(`${node.type.padEnd(4)} ${path}`);

  // 5. Restore it into another directory: the snapshot's absolute paths are recreated below it.
  const target = join(work, 'restored');
  const restored = await restoreSnapshot({ repository: repo, snapshot, target });
  console.log(`restored ${restored.filesRestored} files from ${id.slice(0, 8)}, ${restored.errors.length} errors`);
  const text = await readFile(join(target, source, 'letters', 'hello.txt'), 'utf8');
  if (text !== 'Hello, Kiwi!\n') throw new Error('the restored file differs');

  // 6. Check the repository's structure (readData: true also reads and verifies every blob).
  const report = await repo.check({ readData: true });
  console.log(`check: ${report.errors.length} errors`);
} finally {
  await repo.close();
}
