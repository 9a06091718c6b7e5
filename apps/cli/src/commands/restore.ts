import { resolve } from 'node:path';
import { restoreSnapshot } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringArg, stringList } from '../args.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import { formatBytes, formatDuration } from '../output.js';
import { chooseSnapshot, selectArgs } from '../select.js';

export default kiwiCommand({
  meta: { name: 'restore', description: 'Restore a snapshot into a directory' },
  interruptible: true,
  args: {
    snapshot: { type: 'positional', required: true, description: 'Snapshot id (prefix) or "latest"' },
    target: { type: 'string', alias: 't', description: 'Directory to restore into (created if missing)' },
    include: { type: 'string', alias: 'i', description: 'Restore only paths matching this pattern (repeatable)' },
    ...selectArgs,
  },
  async run({ args, session, signal }) {
    const targetArg = stringArg(args.target);
    if (!targetArg) throw new UsageError('restore needs --target <dir>');
    const target = resolve(targetArg);
    const repo = await session.openRepository();
    // The restore needs the index too: read it while the snapshot is looked up.
    const indexRead = repo.loadIndex();
    indexRead.catch(() => undefined); // awaited below, unless the snapshot lookup fails first
    const { id, snapshot } = await chooseSnapshot(repo, String(args.snapshot), args, session.out);
    await indexRead;
    const out = session.out;
    const started = Date.now();
    out.info(`restoring snapshot ${id.slice(0, 8)} of ${snapshot.paths.join(' ')} to ${target}`);
    const include = stringList(args.include);
    const result = await restoreSnapshot({
      repository: repo,
      snapshot,
      target,
      ...(include.length ? { include } : {}),
      signal,
      onProgress: (p: { filesRestored: number; bytesWritten: number; current?: string }) => {
        out.progress(`${p.filesRestored} files, ${formatBytes(p.bytesWritten)} restored ${p.current ?? ''}`);
      },
      onError: (e: { path: string; message: string }) => out.error(`${e.path}: ${e.message}`, { during: 'restore', item: e.path }),
    });
    out.clearProgress();
    const elapsed = Date.now() - started;
    out.emit('summary', {
      snapshot_id: id,
      target,
      files_restored: result.filesRestored,
      bytes_written: result.bytesWritten,
      errors: result.errors.length,
      total_duration: elapsed / 1000,
    });
    out.info(`restored ${result.filesRestored} files, ${formatBytes(result.bytesWritten)} in ${formatDuration(elapsed)}${result.errors.length ? `; ${result.errors.length} errors` : ''}`);
    if (signal.aborted) return ExitCode.Interrupted;
    return result.errors.length ? ExitCode.Failure : ExitCode.Ok;
  },
});
