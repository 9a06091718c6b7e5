import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { lstat } from 'node:fs/promises';
import { runBackup, type BackupStats } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringArg, stringList } from '../args.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { formatBytes, formatDuration } from '../output.js';

export default kiwiCommand({
  meta: { name: 'backup', description: 'Back up files and directories into a new snapshot' },
  interruptible: true,
  args: {
    paths: { type: 'positional', required: false, description: 'Files and directories to back up (default: backup.paths in the config)' },
    tag: { type: 'string', description: 'Add a tag to the snapshot (repeatable)' },
    exclude: { type: 'string', alias: 'e', description: 'Exclude a pattern, gitignore syntax (repeatable)' },
    'exclude-file': { type: 'string', description: 'Read exclude patterns from a file (repeatable)' },
    'one-file-system': { type: 'boolean', alias: 'x', description: 'Do not cross file system boundaries' },
    'dry-run': { type: 'boolean', alias: 'n', description: 'Do everything but write to the repository' },
    host: { type: 'string', description: 'Record this host name (default: this machine\'s)' },
    parent: { type: 'string', description: 'Compare with this snapshot for change detection (default: latest of the same host and paths)' },
    force: { type: 'boolean', description: 'Read every file: do not use a parent snapshot' },
  },
  async run({ args, session, signal }) {
    const out = session.out;
    const cfg = session.config.backup ?? {};
    const positional = (args._ ?? []).map(String);
    const paths = (positional.length > 0 ? positional : cfg.paths ?? []).map((p) => resolve(p));
    if (paths.length === 0) throw new UsageError('nothing to back up: name paths, e.g. `kiwi backup ~/Documents`, or set backup.paths in the config');
    const tags = [...(cfg.tags ?? []), ...stringList(args.tag).flatMap((t) => t.split(','))].filter(Boolean);
    const exclude = [...(cfg.exclude ?? []), ...stringList(args.exclude)];
    const excludeFiles = [...(cfg.excludeFile ?? []), ...stringList(args['exclude-file'])];
    const dryRun = Boolean(args['dry-run']);
    if (args.force && args.parent) throw new UsageError('--force and --parent cannot be used together');

    // Refuse before touching (or creating) a repository when no source exists at all.
    const existing = await Promise.all(paths.map((p) => lstat(p).then(() => true, () => false)));
    if (!existing.some(Boolean)) {
      throw new CliError(`none of the sources exist: ${paths.join(', ')}`, ExitCode.Failure);
    }

    const { repository } = await session.openOrCreateDefault();
    const plugins = await session.plugins();
    for (const w of plugins.warnings) out.warn(w);
    await plugins.serverStart();

    const started = Date.now();
    let lastStatus = 0;
    const onProgress = (stats: BackupStats, current?: string) => {
      const now = Date.now();
      if (out.json) {
        if (now - lastStatus < 1000) return;
        lastStatus = now;
        out.emit('status', { ...statsJson(stats), seconds_elapsed: Math.round((now - started) / 1000), current_file: current });
        return;
      }
      out.progress(
        `[${formatDuration(now - started)}] ${stats.totalFiles} files, ${formatBytes(stats.totalBytes)} scanned, ${formatBytes(stats.bytesRead)} read, ${formatBytes(stats.dataAddedPacked)} added${current ? `  ${current}` : ''}`,
      );
    };

    const result = await runBackup({
      repository,
      sources: paths,
      exclude,
      excludeFiles,
      oneFileSystem: Boolean(args['one-file-system'] ?? cfg.oneFileSystem),
      dryRun,
      tags,
      host: stringArg(args.host) ?? hostname(),
      parent: args.force ? null : stringArg(args.parent),
      plugins,
      signal,
      logger: session.log,
      onProgress,
      onError: (e: { path: string; message: string }) => out.error(`${e.path}: ${e.message}`, { during: 'backup', item: e.path }),
    });
    out.clearProgress();

    const elapsed = Date.now() - started;
    const s = result.stats;
    if (out.json) {
      out.emit('summary', {
        ...statsJson(s),
        status: result.status,
        snapshot_id: result.snapshotId,
        dry_run: dryRun,
        total_duration: elapsed / 1000,
        errors: result.errors.length,
      });
    } else if (!out.quiet) {
      const lines = [
        `Files:       ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnmodified} unmodified`,
        `Dirs:        ${s.dirsNew} new, ${s.dirsChanged} changed, ${s.dirsUnmodified} unmodified`,
        `Read:        ${formatBytes(s.bytesRead)} of ${formatBytes(s.totalBytes)} in ${s.totalFiles} files`,
        `Added:       ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored) in ${s.blobsNew} new blobs`,
      ];
      if (result.errors.length) lines.push(`Errors:      ${result.errors.length} entries could not be read (listed above)`);
      lines.push(
        dryRun
          ? `Dry run: nothing written (${formatDuration(elapsed)})`
          : result.snapshotId
            ? `snapshot ${result.snapshotId.slice(0, 8)} saved (${formatDuration(elapsed)})`
            : `no snapshot saved (${result.status})`,
      );
      for (const l of lines) process.stderr.write(`${l}\n`);
      if (result.snapshotId) out.print(result.snapshotId);
    }
    switch (result.status) {
      case 'success':
        return ExitCode.Ok;
      case 'partial':
        return ExitCode.Partial;
      case 'interrupted':
        return ExitCode.Interrupted;
      default:
        return ExitCode.Failure;
    }
  },
});

function statsJson(s: BackupStats): Record<string, number> {
  return {
    files_new: s.filesNew,
    files_changed: s.filesChanged,
    files_unmodified: s.filesUnmodified,
    dirs_new: s.dirsNew,
    dirs_changed: s.dirsChanged,
    dirs_unmodified: s.dirsUnmodified,
    total_files: s.totalFiles,
    total_bytes: s.totalBytes,
    bytes_read: s.bytesRead,
    blobs_new: s.blobsNew,
    data_added: s.dataAdded,
    data_added_packed: s.dataAddedPacked,
    error_count: s.errors,
  };
}
