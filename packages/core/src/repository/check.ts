/**
 * `check`: verify a repository's structure and, with `readData`, every byte of its packs.
 * Every problem names the storage path of the file concerned and, where one exists, the
 * command that repairs it; damaged or missing packs are traced to the snapshots and files
 * that lose data with them.
 *
 * Order matters while backups run (they may, under their shared locks): the snapshots are
 * listed before the index is read — a backup writes its index files before its snapshot, so
 * every snapshot listed here is covered by the index read after — and before anything is
 * called missing, index files written meanwhile are read too.
 *
 * Stages: config and keys (here), index files and packs (check-index.ts), snapshots and
 * trees (check-trees.ts), pack data (check-data.ts).
 */
import { parseKeyFile, sha256Hex } from '../crypto/keys.js';
import { verifyPackData } from './check-data.js';
import { CheckIndex } from './check-index.js';
import { findAffected, loadSnapshots, walkTrees } from './check-trees.js';
import { CheckReporter, msg, type CheckContext } from './check-util.js';
import { listFiles } from './open.js';
import type { CheckOptions, CheckReport } from './types.js';
import { loadWholeFile } from './whole-file.js';

export type { CheckContext } from './check-util.js';

export async function checkRepository(ctx: CheckContext, opts: CheckOptions): Promise<CheckReport> {
  const { storage } = ctx;
  const report = new CheckReporter(opts.onProgress ?? (() => undefined));

  // -- config (read at open; re-read here in case it changed since)
  try {
    const cfg = JSON.parse(ctx.decrypt(await loadWholeFile(storage, { type: 'config', name: 'config' })).toString('utf8')) as { version?: unknown };
    if (cfg.version !== 1) report.error('config', `unsupported repository version ${String(cfg.version)}`);
  } catch (err) {
    report.error('config', storage.isNotFound(err) ? 'is missing' : `cannot be read or authenticated: ${msg(err)}`);
  }

  // -- key files
  const keyFiles = await listFiles(storage, 'key');
  let done = 0;
  for (const { name, size } of keyFiles) {
    const file = `keys/${name}`;
    try {
      const bytes = await loadWholeFile(storage, { type: 'key', name }, size);
      if (sha256Hex(bytes) !== name) throw new Error(`content does not match its name (SHA-256 of its ${bytes.byteLength} bytes differs): the file is damaged`);
      parseKeyFile(bytes, file);
      report.stats.keys++;
    } catch (err) {
      if (!storage.isNotFound(err)) report.error(file, msg(err), `if another key opens the repository: kiwi key remove ${name.slice(0, 8)}`);
    }
    report.progress({ phase: 'keys', done: ++done, total: keyFiles.length });
  }

  // -- snapshots are listed before the index is read (see the module comment)
  const snapshotFiles = await listFiles(storage, 'snapshot');
  const index = new CheckIndex(ctx, report);
  await index.readNew();
  const packFiles = await listFiles(storage, 'data');
  await index.checkPacks(packFiles);

  const snapshots = await loadSnapshots(ctx, snapshotFiles, report);
  await walkTrees(ctx, snapshots, index, report);

  if (opts.readData || opts.readDataSubset) await verifyPackData(ctx, packFiles, index, report, opts.readDataSubset);

  if (index.lost.size > 0) report.affected = await findAffected(ctx, snapshots, index);
  return report.report();
}
