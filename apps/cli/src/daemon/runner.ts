import { hostname } from 'node:os';
import {
  type Repository,
  parseLockWait,
  parseReadDataSubset,
  runBackup,
  type BackupResult,
  type BackupStats,
  type ErrorWithBackupResult,
  type LockOptions,
  type Logger,
  type PluginRuntime,
  type Snapshot,
} from '@kiwi-backup/core';
import type { Session } from '../session.js';
import { readPasswordFile } from '../password.js';
import { DEFAULT_RETRY_LOCK } from '../lock-wait.js';
import { maskMessage } from '../format.js';
import { describeError, formatBytes } from '../output.js';
import type { RunRecord } from './history.js';
import type { DaemonJob } from './jobs.js';
import type { RunProgress } from './events.js';
import { pathsKey, type RetentionEngine } from './retention.js';

/** What running a task needs from the daemon. */
export interface RunnerContext {
  session: Session;
  plugins: PluginRuntime;
  retention: RetentionEngine;
  log: Logger;
}

/** The password of a job's repository: its `passwordFile`, else what every command uses. */
export async function jobPassword(ctx: Pick<RunnerContext, 'session'>, job: DaemonJob, creating = false): Promise<string> {
  if (job.config.passwordFile) return readPasswordFile(job.config.passwordFile);
  const s = ctx.session.forRepository(job.config.repository);
  try {
    return (await s.password({ creating: creating && s.isDefaultRepo })).password;
  } finally {
    await s.close();
  }
}

/**
 * Open the job's repository for one run, as every command opens it (metadata cache, log); the default
 * repository is created on first use, as `kiwi backup` does. `close()` releases it.
 */
async function openRepository(
  ctx: RunnerContext,
  job: DaemonJob,
  password: string,
  create: boolean,
  signal: AbortSignal,
): Promise<{ repo: Repository; close: () => Promise<void> }> {
  const s = ctx.session.forRepository(job.config.repository);
  // Like every command: wait (5 min by default) for another process's conflicting lock instead of failing,
  // e.g. a `kiwi prune` run by hand while the job's backup starts; a stop ends the wait.
  const lockOptions: LockOptions = {
    retryLockMs: parseLockWait(DEFAULT_RETRY_LOCK),
    signal,
    onWait: (w) =>
      ctx.log.info(
        `${job.name}: repository ${s.printableRepo()} is locked by ${w.holders.map((h) => `pid ${h.pid} on ${h.hostname}`).join(', ')}; waiting up to ${Math.round(w.remainingMs / 1000)} s more for ${w.kind === 'exclusive' ? 'an exclusive' : 'a shared'} lock`,
      ),
  };
  try {
    let exists = true;
    if (create && job.isDefaultRepo) {
      const storage = await s.storage();
      try {
        await storage.stat({ type: 'config', name: 'config' });
      } catch (err) {
        if (!storage.isNotFound(err)) throw err;
        exists = false;
      }
    }
    if (!exists) ctx.log.info(`${job.name}: creating the default repository at ${s.repoUrl}`);
    const repo = exists ? await s.openRepository({ password, lockOptions }) : await s.initRepository({ password, lockOptions });
    return { repo, close: () => s.close() };
  } catch (err) {
    await s.close();
    throw err;
  }
}

export function printableRepository(ctx: Pick<RunnerContext, 'session'>, job: DaemonJob): string {
  return ctx.session.forRepository(job.config.repository).printableRepo();
}

/**
 * A message about a job's run as its record keeps it (history, `/api/status`, the `job_error` event): the
 * job's repository location as written replaced by its printable form, and every URL secret masked, as
 * the CLI prints its errors (see `maskMessage`).
 */
export function jobMessage(ctx: Pick<RunnerContext, 'session'>, job: DaemonJob, message: string): string {
  const s = ctx.session.forRepository(job.config.repository);
  return maskMessage(message, s.repoUrl, s.printableRepo());
}

/** {@link jobMessage} of an error. */
export function jobError(ctx: Pick<RunnerContext, 'session'>, job: DaemonJob, err: unknown): string {
  return jobMessage(ctx, job, describeError(err));
}

/** Run one backup of `job` (then its retention) and fill in `rec`. Never throws: failures end up in `rec`. */
export async function runBackupTask(
  ctx: RunnerContext,
  job: DaemonJob,
  password: string,
  rec: RunRecord,
  signal: AbortSignal,
  onProgress: (p: RunProgress) => void,
  expectedBytes: number | undefined,
): Promise<void> {
  const started = Date.now();
  let opened: Awaited<ReturnType<typeof openRepository>> | undefined;
  try {
    signal.throwIfAborted();
    opened = await openRepository(ctx, job, password, true, signal);
    const repo = opened.repo;
    const cfg = job.config;
    const host = cfg.host ?? hostname();
    let result: BackupResult;
    try {
      result = await runBackup({
        repository: repo,
        sources: cfg.paths,
        exclude: cfg.exclude ?? [],
        excludeFiles: cfg.excludeFile ?? [],
        oneFileSystem: Boolean(cfg.oneFileSystem),
        tags: cfg.tags ?? [],
        host,
        plugins: ctx.plugins,
        signal,
        logger: ctx.log,
        onProgress: (stats: Readonly<BackupStats>, current: string) =>
          onProgress({
            files: stats.totalFiles,
            bytes: stats.totalBytes,
            bytesRead: stats.bytesRead,
            dataAdded: stats.dataAddedPacked,
            current,
            elapsedMs: Date.now() - started,
            ...(expectedBytes ? { expectedBytes } : {}),
          }),
      });
    } catch (err) {
      const withResult = err as ErrorWithBackupResult;
      if (!withResult.backupResult) throw err;
      result = withResult.backupResult;
      rec.error = jobError(ctx, job, err);
    }
    rec.status = result.status === 'running' ? 'failure' : result.status;
    rec.stats = { ...result.stats };
    if (result.snapshotId) rec.snapshotId = result.snapshotId;
    if (result.errors.length) {
      rec.entryErrors = result.errors.slice(0, 20).map((e) => ({ path: e.path, message: e.message }));
      rec.error ??= `${result.errors.length} entr${result.errors.length === 1 ? 'y' : 'ies'} could not be read, e.g. ${result.errors[0]!.path}: ${result.errors[0]!.message}`;
    }
    if (result.stopErrors.length && !rec.error) rec.error = jobMessage(ctx, job, `onBackupStop: ${result.stopErrors.map((e) => e.message).join('; ')}`);

    // Retention: only after a backup that wrote a snapshot, never after a stop was asked for.
    if (cfg.forget && result.snapshotId && !signal.aborted) {
      const why = ctx.retention.unavailable('forget');
      if (why) {
        rec.retention = { status: 'skipped', message: why };
      } else {
        try {
          const outcome = await ctx.retention.forget({ repository: repo, policy: cfg.forget, host, paths: cfg.paths, signal, log: ctx.log });
          rec.retention = { status: 'done', message: `kept ${outcome.kept.length}, removed ${outcome.removed.length}`, kept: outcome.kept.length, removed: outcome.removed };
        } catch (err) {
          rec.retention = { status: 'failed', message: jobError(ctx, job, err) };
        }
      }
    }
  } catch (err) {
    rec.status = signal.aborted ? 'interrupted' : 'failure';
    rec.error = jobError(ctx, job, err);
  } finally {
    await opened?.close();
  }
}

/** A scheduled prune of the job's repository. */
export async function runPruneTask(ctx: RunnerContext, job: DaemonJob, password: string, rec: RunRecord, signal: AbortSignal): Promise<void> {
  let opened: Awaited<ReturnType<typeof openRepository>> | undefined;
  try {
    opened = await openRepository(ctx, job, password, false, signal);
    const outcome = await ctx.retention.prune({ repository: opened.repo, signal, log: ctx.log });
    rec.status = 'success';
    rec.retention = { status: 'done', message: outcome.message };
  } catch (err) {
    rec.status = signal.aborted ? 'interrupted' : 'failure';
    rec.error = jobError(ctx, job, err);
  } finally {
    await opened?.close();
  }
}

/** A scheduled `check` of the job's repository (with `readData` or, when supported, `readDataSubset`). */
export async function runCheckTask(
  ctx: RunnerContext,
  job: DaemonJob,
  password: string,
  rec: RunRecord,
  signal: AbortSignal,
  onProgress: (p: RunProgress) => void,
): Promise<void> {
  const started = Date.now();
  const cfg = job.config.check ?? { schedule: '' };
  let opened: Awaited<ReturnType<typeof openRepository>> | undefined;
  try {
    opened = await openRepository(ctx, job, password, false, signal);
    const options: Parameters<Repository['check']>[0] = {
      readData: Boolean(cfg.readData),
      onProgress: (p: { phase?: string; done?: number; total?: number }) =>
        onProgress({ files: p.done ?? 0, bytes: 0, bytesRead: 0, dataAdded: 0, current: `${p.phase ?? ''} ${p.done ?? ''}${p.total ? `/${p.total}` : ''}`.trim(), elapsedMs: Date.now() - started }),
    };
    // The config loader checked the text; parse it as `kiwi check --read-data-subset` does.
    if (cfg.readDataSubset) options.readDataSubset = parseReadDataSubset(cfg.readDataSubset);
    signal.throwIfAborted();
    const report = await opened.repo.check(options);
    // The counts, not the lists: those keep the first 10,000 problems only.
    const { errors, warnings } = report.counts;
    rec.check = {
      errors,
      warnings,
      readData: Boolean(cfg.readData),
      ...(cfg.readDataSubset ? { readDataSubset: cfg.readDataSubset } : {}),
      // Storage errors end up in the problems: masked as every message of a run (an adapter may quote its URL).
      problems: [...report.errors, ...report.warnings].slice(0, 20).map((p) => jobMessage(ctx, job, `${p.file}: ${p.message}`)),
    };
    if (report.stats.bytesVerified) rec.check.note = `${formatBytes(report.stats.bytesVerified)} of pack data read and verified`;
    rec.status = errors ? 'failure' : 'success';
    if (errors) rec.error = jobMessage(ctx, job, `check found ${errors} error(s), e.g. ${report.errors[0]!.file}: ${report.errors[0]!.message}`);
  } catch (err) {
    rec.status = signal.aborted ? 'interrupted' : 'failure';
    rec.error = jobError(ctx, job, err);
  } finally {
    await opened?.close();
  }
}

/** A snapshot as the API lists it. */
export interface SnapshotSummaryJson {
  id: string;
  shortId: string;
  time: string;
  hostname: string;
  paths: string[];
  tags: string[];
  files?: number;
  bytes?: number;
  dataAdded?: number;
}

/** The job's snapshots (same host and paths), newest first. */
export async function listJobSnapshots(ctx: RunnerContext, job: DaemonJob, password: string): Promise<SnapshotSummaryJson[]> {
  const opened = await openRepository(ctx, job, password, false, new AbortController().signal);
  try {
    const host = job.config.host ?? hostname();
    const paths = pathsKey(job.config.paths);
    const all: Array<{ id: string; snapshot: Snapshot }> = await opened.repo.listSnapshots();
    return all
      .filter(({ snapshot: s }) => s.hostname === host && pathsKey(s.paths) === paths)
      .sort((a, b) => (a.snapshot.time < b.snapshot.time ? 1 : a.snapshot.time > b.snapshot.time ? -1 : 0))
      .map(({ id, snapshot: s }) => ({
        id,
        shortId: id.slice(0, 8),
        time: s.time,
        hostname: s.hostname,
        paths: s.paths,
        tags: s.tags,
        ...(s.summary ? { files: s.summary.totalFiles, bytes: s.summary.totalBytes, dataAdded: s.summary.dataAddedPacked } : {}),
      }));
  } finally {
    await opened.close();
  }
}
