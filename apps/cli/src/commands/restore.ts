import { resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { OVERWRITE_POLICIES, RestoreTargetError, restoreSnapshot, type OverwritePolicy, type RestoreProgress } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { checkPatterns, stringArg, stringList } from '../args.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { formatBytes, formatDuration } from '../output.js';
import { chooseSnapshot, selectArgs } from '../select.js';
import { escapeControl } from '../format.js';
import { progressLines } from '../progress.js';

export default kiwiCommand({
  meta: { name: 'restore', description: 'Restore a snapshot into a directory' },
  interruptible: true,
  args: {
    snapshot: { type: 'positional', required: true, description: 'Snapshot id (prefix) or "latest"' },
    target: { type: 'string', alias: 't', description: 'Directory to restore into (created if missing)' },
    include: { type: 'string', alias: 'i', description: 'Restore only paths matching this pattern (repeatable; docs/patterns.md)' },
    exclude: { type: 'string', alias: 'e', description: 'Leave out paths matching this pattern (repeatable)' },
    iinclude: { type: 'string', description: 'Like --include, ignoring case (repeatable)' },
    iexclude: { type: 'string', description: 'Like --exclude, ignoring case (repeatable)' },
    overwrite: { type: 'string', description: 'Existing files: always, if-changed (default: same size and mtime are kept), if-newer, never' },
    delete: { type: 'boolean', description: 'Remove files in restored directories that are not in the snapshot' },
    verify: { type: 'boolean', description: 'Read the restored files back and compare them with the snapshot' },
    ...selectArgs,
  },
  async run({ args, session, signal }) {
    const targetArg = stringArg(args.target);
    if (!targetArg) throw new UsageError('restore needs --target <dir>');
    const target = resolve(targetArg);
    const existing = await stat(target).catch(() => undefined);
    if (existing && !existing.isDirectory()) throw new UsageError(`restore target ${target} is not a directory`);
    const overwrite = (stringArg(args.overwrite) ?? 'if-changed') as OverwritePolicy;
    if (!OVERWRITE_POLICIES.includes(overwrite)) {
      throw new UsageError(`--overwrite must be one of ${OVERWRITE_POLICIES.join(', ')} (got "${String(args.overwrite)}")`);
    }
    const patterns = {
      include: stringList(args.include),
      exclude: stringList(args.exclude),
      iinclude: stringList(args.iinclude),
      iexclude: stringList(args.iexclude),
    };
    for (const [k, list] of Object.entries(patterns)) checkPatterns(list, `--${k}`);
    const repo = await session.openRepository();
    // The restore needs the index too: read it while the snapshot is looked up.
    const indexRead = repo.loadIndex();
    indexRead.catch(() => undefined); // awaited below, unless the snapshot lookup fails first
    let found: Awaited<ReturnType<typeof chooseSnapshot>>;
    try {
      found = await chooseSnapshot(repo, String(args.snapshot), args, session.out);
    } catch (err) {
      // Let the index read finish before the repository closes: closed under it, it reports its
      // files as damaged (a false alarm after an unknown snapshot id).
      await indexRead.catch(() => undefined);
      throw err;
    }
    const { id, snapshot } = found;
    await indexRead;
    const out = session.out;
    const started = Date.now();
    out.info(`restoring snapshot ${id.slice(0, 8)} of ${snapshot.paths.join(' ')} to ${target}`);
    // The snapshot's summary has the totals of a whole restore (regular files and their bytes).
    const sum = snapshot.summary;
    const filtered = Object.values(patterns).some((p) => p.length > 0);
    const total = sum && !filtered ? { files: sum.filesNew + sum.filesChanged + sum.filesUnmodified, bytes: sum.totalBytes, final: true } : undefined;
    let last: Readonly<RestoreProgress> | undefined;
    const draw = () => {
      if (!last) return;
      out.progressLines(
        progressLines({
          elapsedMs: Date.now() - started,
          filesDone: last.filesRestored,
          bytesDone: last.bytesWritten,
          errors: last.errors,
          ...(total ? { total } : {}),
          current: last.current ? [last.current] : [],
          verb: 'restored',
        }),
      );
    };
    const ticker = out.progressEnabled ? setInterval(draw, 250) : undefined;
    ticker?.unref();
    let result;
    try {
      result = await restoreSnapshot({
        repository: repo,
        snapshot,
        target,
        ...patterns,
        overwrite,
        delete: Boolean(args.delete),
        verify: Boolean(args.verify),
        signal,
        onProgress: (p: Readonly<RestoreProgress>) => {
          last = p;
          draw();
        },
        onError: (e: { path: string; message: string }) => out.error(`${escapeControl(e.path)}: ${e.message}`, { during: 'restore', item: e.path }),
        onSkip: (e: { path: string; message: string }) => out.warn(`${escapeControl(e.path)}: ${e.message}`, { during: 'restore', item: e.path, not_restored: true }),
      });
    } catch (err) {
      if (err instanceof RestoreTargetError) throw new CliError(err.message, ExitCode.Failure, { cause: err });
      throw err;
    } finally {
      clearInterval(ticker);
      out.clearProgress();
    }
    for (const u of result.unmatchedPatterns) {
      out.error(`--${u.option} pattern "${u.pattern}" matched nothing in snapshot ${id.slice(0, 8)}`, { during: 'restore', pattern: u.pattern, option: u.option });
    }
    const elapsed = Date.now() - started;
    out.emit('summary', {
      snapshot_id: id,
      target,
      files_restored: result.filesRestored,
      dirs_restored: result.dirsRestored,
      symlinks_restored: result.symlinksRestored,
      specials_restored: result.specialsRestored,
      files_unchanged: result.filesUnchanged,
      kept: result.kept,
      deleted: result.deleted,
      verified: result.verified,
      bytes_written: result.bytesWritten,
      errors: result.errorCount,
      not_restored: result.skippedCount,
      unmatched_patterns: result.unmatchedPatterns.length,
      temp_files_removed: result.tempFilesRemoved,
      total_duration: elapsed / 1000,
    });
    const parts = [`restored ${plural(result.filesRestored, 'file')}, ${formatBytes(result.bytesWritten)} in ${formatDuration(elapsed)}`];
    if (result.filesUnchanged) parts.push(`${plural(result.filesUnchanged, 'file')} already up to date`);
    if (result.kept) parts.push(`${plural(result.kept, 'existing entry', 'existing entries')} left as ${result.kept === 1 ? 'it was' : 'they were'} (--overwrite ${overwrite})`);
    if (result.deleted) parts.push(`${result.deleted} deleted`);
    if (args.verify) parts.push(`${plural(result.verified, 'file')} verified`);
    if (result.skippedCount) parts.push(`${plural(result.skippedCount, 'entry', 'entries')} not restored (listed above)`);
    if (result.errorCount) parts.push(plural(result.errorCount, 'error'));
    out.info(parts.join('; '));
    if (signal.aborted) return ExitCode.Interrupted;
    if (result.errorCount > 0 || result.unmatchedPatterns.length > 0) return ExitCode.Failure;
    return result.skippedCount > 0 ? ExitCode.Partial : ExitCode.Ok;
  },
});

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
