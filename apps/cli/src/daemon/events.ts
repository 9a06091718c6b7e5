import { EventEmitter } from 'node:events';
import { escapeControl } from '../format.js';
import type { Output } from '../output.js';
import { formatBytes, formatDuration } from '../output.js';
import type { RunRecord, RunTrigger } from './history.js';
import type { TaskKind } from './jobs.js';

/** Live counters of a running task (a backup's; a check reports only the phase in `current`). */
export interface RunProgress {
  files: number;
  /** Bytes of the files seen so far (logical). */
  bytes: number;
  bytesRead: number;
  dataAdded: number;
  /** The path being read (backups) or the phase (checks). */
  current: string;
  elapsedMs: number;
  /** The previous successful run's total bytes: the page's bar fills towards it (an estimate). */
  expectedBytes?: number;
}

/** What the daemon reports, live (`GET /api/events`) and to its log. */
export type DaemonEvent =
  | { type: 'daemon'; state: 'started' | 'stopping' | 'stopped'; time: string; url?: string; version?: string; jobs?: string[] }
  | { type: 'queued'; time: string; job: string; kind: TaskKind; runId: string; trigger: RunTrigger; scheduledAt?: string }
  | { type: 'skipped'; time: string; job: string; kind: TaskKind; reason: string; scheduledAt?: string }
  | { type: 'started'; time: string; run: RunRecord }
  | { type: 'progress'; time: string; job: string; kind: TaskKind; runId: string; progress: RunProgress }
  | { type: 'finished'; time: string; run: RunRecord }
  | { type: 'recovery'; time: string; plugin: string; action: string; status: string; message: string }
  | { type: 'log'; time: string; level: 'debug' | 'info' | 'warn' | 'error'; message: string; job?: string };

/** Distributes events to the log and to the API's SSE clients. */
export class EventBus extends EventEmitter<{ event: [DaemonEvent] }> {
  constructor() {
    super();
    this.setMaxListeners(0);
  }

  publish(event: DaemonEvent): void {
    this.emit('event', event);
  }
}

export function now(): string {
  return new Date().toISOString();
}

/** Snake-case keys for `--json` lines, as the other commands print them. */
function jsonLine(e: DaemonEvent): [string, Record<string, unknown>] {
  switch (e.type) {
    case 'daemon':
      return [`daemon_${e.state}`, { time: e.time, ...(e.url ? { url: e.url } : {}), ...(e.version ? { version: e.version } : {}), ...(e.jobs ? { jobs: e.jobs } : {}) }];
    case 'queued':
      return ['job_queued', { time: e.time, job: e.job, task: e.kind, run_id: e.runId, trigger: e.trigger, scheduled_at: e.scheduledAt }];
    case 'skipped':
      return ['job_skipped', { time: e.time, job: e.job, task: e.kind, reason: e.reason, scheduled_at: e.scheduledAt }];
    case 'started':
      return ['job_started', { time: e.time, job: e.run.job, task: e.run.kind, run_id: e.run.id, trigger: e.run.trigger, scheduled_at: e.run.scheduledAt }];
    case 'progress':
      return ['job_progress', { time: e.time, job: e.job, task: e.kind, run_id: e.runId, ...progressJson(e.progress) }];
    case 'finished': {
      const r = e.run;
      const type = r.status === 'failure' || r.status === 'aborted' ? 'job_error' : 'job_finished';
      return [type, { time: e.time, job: r.job, task: r.kind, run_id: r.id, status: r.status, snapshot_id: r.snapshotId, duration_ms: r.durationMs, error: r.error, stats: r.stats, retention: r.retention, check: r.check, recovered: r.recovered }];
    }
    case 'recovery':
      return ['recovery', { time: e.time, plugin: e.plugin, action: e.action, status: e.status, message: e.message }];
    case 'log':
      return ['log', { time: e.time, level: e.level, message: e.message, ...(e.job ? { job: e.job } : {}) }];
  }
}

function progressJson(p: RunProgress): Record<string, unknown> {
  return { files: p.files, bytes: p.bytes, bytes_read: p.bytesRead, data_added: p.dataAdded, current: p.current, elapsed_ms: p.elapsedMs };
}

/**
 * The daemon's log: with `--json`, one JSON line per event on stdout (`message_type` daemon_started,
 * job_started, job_progress (at most every 2 s per run), job_finished, job_error, log…); otherwise human
 * lines on stderr, and a live progress line when stderr is a terminal.
 */
export function attachLog(bus: EventBus, out: Output, opts: { verbose: boolean }): () => void {
  const lastProgress = new Map<string, number>();
  const listener = (e: DaemonEvent): void => {
    try {
      write(e);
    } catch {
      // The log's reader went away (a broken pipe): the daemon and its runs go on without it.
    }
  };
  const write = (e: DaemonEvent): void => {
    if (e.type === 'log' && e.level === 'debug' && !opts.verbose) return;
    if (out.json) {
      if (e.type === 'progress') {
        const t = Date.now();
        if (t - (lastProgress.get(e.runId) ?? 0) < 2000) return;
        lastProgress.set(e.runId, t);
      }
      if (e.type === 'finished') lastProgress.delete(e.run.id);
      const [type, data] = jsonLine(e);
      out.emit(type, data);
      return;
    }
    if (e.type === 'progress') {
      const p = e.progress;
      out.progress(`[${formatDuration(p.elapsedMs)}] ${e.job}: ${p.files} files, ${formatBytes(p.bytes)} scanned, ${formatBytes(p.dataAdded)} added  ${p.current}`);
      return;
    }
    const line = humanLine(e);
    if (!line) return;
    out.clearProgress();
    const stamp = new Date(e.time).toLocaleString('sv-SE', { hour12: false });
    try {
      // One line per event, escaped as every human printer does: a file name, a plug-in's or an adapter's
      // message cannot fake a line of its own or send escapes to the terminal.
      process.stderr.write(`${stamp} ${escapeControl(line)}\n`);
    } catch {
      // no reader
    }
  };
  bus.on('event', listener);
  return () => bus.off('event', listener);
}

function humanLine(e: DaemonEvent): string | undefined {
  switch (e.type) {
    case 'daemon':
      if (e.state === 'started') return `kiwi daemon ${e.version ?? ''} running: ${e.jobs?.length ?? 0} job(s) (${(e.jobs ?? []).join(', ')}); API and page on ${e.url}`;
      return e.state === 'stopping' ? 'daemon stopping' : 'daemon stopped';
    case 'queued':
      return `${e.job}: ${e.kind} queued (${e.trigger}) behind another run on the same repository`;
    case 'skipped':
      return `${e.job}: ${e.kind} not started: ${e.reason}`;
    case 'started':
      return `${e.run.job}: ${e.run.kind} started (${e.run.trigger}${e.run.scheduledAt ? ` for ${new Date(e.run.scheduledAt).toLocaleString('sv-SE', { hour12: false })}` : ''})`;
    case 'finished': {
      const r = e.run;
      const took = r.durationMs !== undefined ? ` in ${formatDuration(r.durationMs)}` : '';
      const parts = [`${r.job}: ${r.kind} ${r.status}${took}`];
      if (r.snapshotId) parts.push(`snapshot ${r.snapshotId.slice(0, 8)}`);
      if (r.stats) parts.push(`${r.stats.totalFiles} files, ${formatBytes(r.stats.dataAddedPacked)} added`);
      if (r.retention) parts.push(`retention ${r.retention.status}: ${r.retention.message}`);
      if (r.check) parts.push(`${r.check.errors} error(s), ${r.check.warnings} warning(s)`);
      if (r.error) parts.push(`error: ${r.error}`);
      return parts.join('; ');
    }
    case 'recovery':
      return `recovery: ${e.plugin} "${e.action}" ${e.status}: ${e.message}`;
    case 'log':
      return `${e.level === 'info' ? '' : `${e.level}: `}${e.job ? `${e.job}: ` : ''}${e.message}`;
    case 'progress':
      return undefined;
  }
}
