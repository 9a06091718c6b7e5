import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { lstat } from 'node:fs/promises';
import { assertPattern, builtinExcludes, parseByteSize, runBackup, scanSources, type BackupStats, type ContentSource, type LiveProgress, type ScanTotals } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { checkPatterns, stringArg, stringList } from '../args.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { formatBytes, formatDuration } from '../output.js';
import { commandOutput, stdinFileName } from '../stdin-source.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { parseTimeArg } from '../time-arg.js';
import { ownDataExcludes } from '../own-data.js';
import { escapeControl, plural } from '../format.js';
import { readExcludeFile } from '../small-file.js';
import { BackupProgress, progressLines } from '../progress.js';

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
    'exclude-caches': { type: 'boolean', description: 'Leave out the contents of directories holding a valid CACHEDIR.TAG (the tag file is kept)' },
    'exclude-if-present': { type: 'string', description: 'Leave out the contents of directories holding this file ("name" or "name:header"; repeatable)' },
    'exclude-larger-than': { type: 'string', description: 'Leave out files larger than this (e.g. 500K, 10M, 2G)' },
    iexclude: { type: 'string', description: 'Exclude a pattern like --exclude, ignoring case (repeatable)' },
    stdin: { type: 'boolean', description: 'Back up what is read from standard input, as one file (see --stdin-filename)' },
    'stdin-filename': { type: 'string', description: 'Name of the file --stdin or --stdin-from-command stores (default: stdin)' },
    'stdin-from-command': { type: 'string', description: 'Run this shell command and back up its output as one file; the backup fails if the command does' },
    time: { type: 'string', description: 'Record this time as the snapshot time, ISO 8601 (e.g. 2024-05-01T14:30:00Z; without an offset: local time)' },
    ...retryLockArgs,
  },
  async run({ args, session, signal }) {
    const out = session.out;
    const loaded = await session.plugins();
    for (const w of loaded.warnings) out.warn(w);
    // Before anything else: undo what a killed Kiwi left behind (a stopped database…); logged as it happens.
    const recovered = (await loaded.recover({ signal })).filter((o) => o.status !== 'skipped');

    const cfg = session.config.backup ?? {};
    const positional = (args._ ?? []).map(String);
    const fromCommand = stringArg(args['stdin-from-command']);
    const stdinMode = Boolean(args.stdin) || fromCommand !== undefined;
    if (args.stdin && fromCommand !== undefined) throw new UsageError('--stdin and --stdin-from-command cannot be used together');
    if (!stdinMode && args['stdin-filename'] !== undefined) throw new UsageError('--stdin-filename goes with --stdin or --stdin-from-command');
    if (stdinMode && positional.length > 0) throw new UsageError(`${fromCommand !== undefined ? '--stdin-from-command' : '--stdin'} backs up one stream: name no paths (got ${positional.join(' ')})`);
    if (args.stdin && process.stdin.isTTY) throw new UsageError('--stdin reads a pipe or a file, and standard input is a terminal (e.g. `pg_dump db | kiwi backup --stdin --stdin-filename db.sql`)');
    const stdinName = stdinMode ? stdinFileName(stringArg(args['stdin-filename']) ?? 'stdin') : undefined;
    const paths = stdinMode ? [] : (positional.length > 0 ? positional : cfg.paths ?? []).map((p) => resolve(p));
    if (!stdinMode && paths.length === 0) throw new UsageError('nothing to back up: name paths, e.g. `kiwi backup ~/Documents`, or set backup.paths in the config');
    const tags = [...(cfg.tags ?? []), ...stringList(args.tag).flatMap((t) => t.split(','))].filter(Boolean);
    const exclude = [...(cfg.exclude ?? []), ...stringList(args.exclude)];
    const excludeFiles = [...(cfg.excludeFile ?? []), ...stringList(args['exclude-file'])];
    // A pattern file that cannot be read is a configuration error (exit 2), found before the repository is
    // opened; so is one that is not a regular file (`/dev/zero` once filled the memory; a pipe would be
    // empty when the walk reads it again).
    for (const f of excludeFiles) {
      const lines = (await readExcludeFile(f)).split(/\r?\n/);
      lines.forEach((line, i) => assertPattern(line, `exclude file ${f}, line ${i + 1}:`));
    }
    // A pattern that cannot match what it says would exclude nothing, silently: refused up front.
    checkPatterns(cfg.exclude ?? [], "the config's backup.exclude pattern");
    checkPatterns(stringList(args.exclude), '--exclude');
    checkPatterns(cfg.iexclude ?? [], "the config's backup.iexclude pattern");
    checkPatterns(stringList(args.iexclude), '--iexclude');
    const dryRun = Boolean(args['dry-run']);
    if (args.force && args.parent) throw new UsageError('--force and --parent cannot be used together');
    const builtins = excludeMiddleware(args, cfg);
    const timeArg = stringArg(args.time);
    const time = timeArg === undefined ? undefined : parseTimeArg(timeArg);
    const lockOptions = lockOptionsFor(args, session, signal);

    // Refuse before touching (or creating) a repository when no source exists at all.
    const existing = await Promise.all(paths.map((p) => lstat(p).then(() => true, () => false)));
    if (!stdinMode && !existing.some(Boolean)) {
      throw new CliError(`none of the sources exist: ${paths.join(', ')}`, ExitCode.Failure);
    }

    // Never Kiwi's own data directory, cache or the repository itself (a note on the first run, below).
    const cacheDirArg = stringArg(args['cache-dir']);
    const own = await ownDataExcludes(session, paths, ...(cacheDirArg ? [resolve(cacheDirArg)] : []));
    exclude.push(...own.patterns);

    const { repository } = await session.openOrCreateDefault({ lockOptions });
    // Built-in onFile middleware (the exclude options) runs in front of the plug-ins; none without those options.
    const plugins = await loaded.withBuiltins(builtins);
    await plugins.serverStart();

    const started = Date.now();
    const oneFileSystem = Boolean(args['one-file-system'] ?? cfg.oneFileSystem);
    // Progress: a scan counts what the backup will go through, ahead of it, for a percentage and an ETA.
    const progress = new BackupProgress(started);
    const showProgress = out.progressEnabled || out.json;
    const scanStop = new AbortController();
    const scan =
      showProgress && paths.length > 0
        ? scanSources(paths, {
            exclude,
            excludeFiles,
            oneFileSystem,
            signal: scanStop.signal,
            onUpdate: (totals: ScanTotals) => (progress.scan = totals),
          }).catch(() => undefined) // the backup reports what the scan could not read
        : undefined;
    let lastStatus = 0;
    const draw = (force = false) => {
      const now = Date.now();
      if (out.json) {
        if (!force && now - lastStatus < 1000) return;
        lastStatus = now;
        if (progress.stats) {
          out.emit('status', { ...statsJson(progress.stats), seconds_elapsed: Math.round((now - started) / 1000), ...progress.json(now) });
        }
        return;
      }
      out.progressLines(progressLines(progress.frame(now)), force);
    };
    const onProgress = (stats: BackupStats, _current: string, live: LiveProgress) => {
      progress.stats = stats;
      progress.live = live;
      draw();
    };
    // Redraw while a large file is read (the backup reports progress as it moves between files).
    const ticker = showProgress ? setInterval(() => draw(), 250) : undefined;
    ticker?.unref();

    let stderrTail = '';
    const files: Array<{ path: string; content: ContentSource }> = [];
    if (stdinName !== undefined) {
      const content: ContentSource =
        fromCommand !== undefined
          ? commandOutput(fromCommand, { signal, onStderr: (tail) => (stderrTail = tail) })
          : () => process.stdin;
      files.push({ path: stdinName, content });
    }
    let result: Awaited<ReturnType<typeof runBackup>>;
    try {
      result = await runBackup({
        repository,
        sources: paths,
        ...(files.length ? { files } : {}),
        exclude,
        excludeFiles,
        oneFileSystem,
        dryRun,
        tags,
        host: stringArg(args.host) ?? hostname(),
        ...(time ? { time } : {}),
        parent: args.force ? null : stringArg(args.parent),
        plugins,
        signal,
        logger: session.log,
        onProgress,
        onError: (e: { path: string; message: string }) => out.error(`${escapeControl(e.path)}: ${e.message}`, { during: 'backup', item: e.path }),
      });
    } finally {
      clearInterval(ticker);
      scanStop.abort();
      await scan;
      out.clearProgress();
    }
    if (own.paths.length && result.parentId === undefined) {
      out.info(`note: not backed up, as Kiwi's own data (a repository cannot hold itself): ${own.paths.join(', ')}`);
    }
    if (stderrTail) out.warn(`${fromCommand} wrote to stderr:\n${stderrTail}`);

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
        ...(recovered.length ? { recovered } : {}),
      });
    } else if (!out.quiet) {
      // Each count once, so the lines add up: regular files by change, then the other entries.
      const regular = s.filesNew + s.filesChanged + s.filesUnmodified;
      const others = Math.max(0, s.totalFiles - regular);
      const lines = [
        `Files:       ${plural(regular, 'file')}: ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnmodified} unmodified`,
        ...(others ? [`Other:       ${plural(others, 'entry', 'entries')} (symbolic links, devices, sockets, pipes)`] : []),
        `Dirs:        ${plural(s.dirsNew + s.dirsChanged + s.dirsUnmodified, 'directory', 'directories')}: ${s.dirsNew} new, ${s.dirsChanged} changed, ${s.dirsUnmodified} unmodified`,
        `Read:        ${formatBytes(s.bytesRead)} of ${formatBytes(s.totalBytes)} (unmodified files are not read)`,
        `Added:       ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedPacked)} stored) in ${plural(s.blobsNew, 'new blob')}`,
      ];
      if (result.errors.length) {
        lines.push(`Errors:      ${plural(result.errors.length, 'entry', 'entries')} could not be read (listed above)`);
      }
      for (const r of recovered) lines.push(`Recovered:   ${r.plugin} "${r.action}" ${r.status === 'done' ? r.message : `FAILED: ${r.message}`}`);
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

/** The built-in onFile middleware the exclude options ask for (options and config `backup` keys). */
function excludeMiddleware(args: Record<string, unknown>, cfg: { excludeCaches?: boolean; excludeIfPresent?: string[]; excludeLargerThan?: string | number; iexclude?: string[] }) {
  const largerArg = stringArg(args['exclude-larger-than']) ?? (cfg.excludeLargerThan !== undefined ? String(cfg.excludeLargerThan) : undefined);
  let excludeLargerThan: number | undefined;
  if (largerArg !== undefined) {
    try {
      excludeLargerThan = parseByteSize(largerArg);
    } catch (err) {
      throw new UsageError(`--exclude-larger-than: ${(err as Error).message}`);
    }
  }
  try {
    return builtinExcludes({
      excludeCaches: Boolean(args['exclude-caches'] ?? cfg.excludeCaches),
      excludeIfPresent: [...(cfg.excludeIfPresent ?? []), ...stringList(args['exclude-if-present'])],
      ...(excludeLargerThan !== undefined ? { excludeLargerThan } : {}),
      iexclude: [...(cfg.iexclude ?? []), ...stringList(args.iexclude)],
    });
  } catch (err) {
    throw new UsageError(`--exclude-if-present ${(err as Error).message}`);
  }
}
