import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackupStats, RecoveryOutcome } from '@kiwi-backup/core';
import type { TaskKind } from './jobs.js';

/** How a run ended (`running` while it runs; `interrupted` also for a run the daemon died in). */
export type RunStatus = 'running' | 'success' | 'partial' | 'failure' | 'aborted' | 'interrupted';
export type RunTrigger = 'schedule' | 'manual' | 'catch-up';

/** One run of a job's task, as kept in the history and shown by the API. */
export interface RunRecord {
  id: string;
  job: string;
  kind: TaskKind;
  trigger: RunTrigger;
  /** The scheduled time it ran for (schedule and catch-up runs). */
  scheduledAt?: string;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  status: RunStatus;
  snapshotId?: string;
  stats?: BackupStats;
  /** The error that ended the run (or the first entry errors, for partial backups). */
  error?: string;
  /** Entries that could not be read (partial backups): the first few. */
  entryErrors?: Array<{ path: string; message: string }>;
  /** The retention step after a backup (forget, then prune when configured). */
  retention?: { status: 'done' | 'skipped' | 'failed'; message: string; kept?: number; removed?: string[] };
  /** A check run's findings. */
  check?: { errors: number; warnings: number; readData: boolean; readDataSubset?: string; problems: string[]; note?: string };
  /** Undo actions run at the daemon's start before this run (see the recovery journal). */
  recovered?: RecoveryOutcome[];
}

/** Runs kept per job. */
export const HISTORY_LIMIT = 100;
/** Lines in a job's file before it is rewritten with only the last {@link HISTORY_LIMIT} runs. */
const COMPACT_AT = 3 * HISTORY_LIMIT;
/** A history file bigger than this is not read whole (it cannot be ours: records are small). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/**
 * The run history: `<datadir>/daemon/history/<job>.jsonl`, one JSON line per change of a run (started,
 * finished), appended and fsynced; the last line of an id wins. Bad lines (a torn write, an edit by hand)
 * are skipped. The file is rewritten atomically with the last 100 runs once it grows past 300 lines.
 */
export class HistoryStore {
  readonly dir: string;
  readonly #cache = new Map<string, RunRecord[]>();
  readonly #lines = new Map<string, number>();
  /** Appends per job, one at a time. */
  readonly #chains = new Map<string, Promise<void>>();

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'daemon', 'history');
  }

  static newRunId(): string {
    return randomBytes(8).toString('hex');
  }

  #file(job: string): string {
    return join(this.dir, `${job}.jsonl`);
  }

  /** Load a job's history (once) and return its runs, oldest first. */
  async load(job: string): Promise<RunRecord[]> {
    const cached = this.#cache.get(job);
    if (cached) return cached;
    let text = '';
    try {
      const st = await stat(this.#file(job));
      if (st.size <= MAX_FILE_BYTES) text = await readFile(this.#file(job), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const byId = new Map<string, RunRecord>();
    let lines = 0;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      lines++;
      const rec = parseRecord(line, job);
      if (!rec) continue;
      byId.delete(rec.id); // keep the order of the last change
      byId.set(rec.id, rec);
    }
    const runs = [...byId.values()].sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0)).slice(-HISTORY_LIMIT);
    this.#cache.set(job, runs);
    this.#lines.set(job, lines);
    return runs;
  }

  /** The last `limit` runs, newest first. */
  async runs(job: string, limit = HISTORY_LIMIT): Promise<RunRecord[]> {
    return (await this.load(job)).slice(-limit).reverse();
  }

  async last(job: string, kind?: TaskKind): Promise<RunRecord | undefined> {
    const runs = await this.load(job);
    for (let i = runs.length - 1; i >= 0; i--) if (!kind || runs[i]!.kind === kind) return runs[i];
    return undefined;
  }

  /** Record a run's current state (call at start and at the end). */
  save(rec: RunRecord): Promise<void> {
    const job = rec.job;
    const prev = this.#chains.get(job) ?? Promise.resolve();
    const next = prev.then(() => this.#save(rec));
    this.#chains.set(job, next.catch(() => undefined));
    return next;
  }

  async #save(rec: RunRecord): Promise<void> {
    const runs = await this.load(rec.job);
    const i = runs.findIndex((r) => r.id === rec.id);
    if (i >= 0) runs.splice(i, 1);
    runs.push(structuredClone(rec));
    if (runs.length > HISTORY_LIMIT) runs.splice(0, runs.length - HISTORY_LIMIT);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const lines = (this.#lines.get(rec.job) ?? 0) + 1;
    if (lines > COMPACT_AT) {
      await this.#rewrite(rec.job, runs);
      return;
    }
    const fh = await open(this.#file(rec.job), 'a', 0o600);
    try {
      await fh.write(`${JSON.stringify(rec)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.#lines.set(rec.job, lines);
  }

  async #rewrite(job: string, runs: RunRecord[]): Promise<void> {
    const tmp = `${this.#file(job)}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.write(runs.map((r) => JSON.stringify(r)).join('\n') + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.#file(job));
    this.#lines.set(job, runs.length);
  }

  /**
   * Runs still `running` in the files belong to a daemon that died during them: record them as
   * interrupted. Returns them.
   */
  async closeAbandoned(jobs: readonly string[], now = new Date()): Promise<RunRecord[]> {
    const closed: RunRecord[] = [];
    for (const job of jobs) {
      for (const run of await this.load(job)) {
        if (run.status !== 'running') continue;
        const done: RunRecord = {
          ...run,
          status: 'interrupted',
          finishedAt: now.toISOString(),
          error: 'the daemon stopped during this run (killed, or the machine went down); nothing after its start was recorded',
        };
        await this.save(done);
        closed.push(done);
      }
    }
    return closed;
  }
}

const KINDS = new Set(['backup', 'prune', 'check']);
const STATUSES = new Set(['running', 'success', 'partial', 'failure', 'aborted', 'interrupted']);

/** A history line, or undefined when it is not one of ours (never trusted blindly: it is a file on disk). */
function parseRecord(line: string, job: string): RunRecord | undefined {
  if (line.length > 1024 * 1024) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.id !== 'string' || !/^[0-9a-f]{16}$/.test(r.id)) return undefined;
  if (r.job !== job || typeof r.kind !== 'string' || !KINDS.has(r.kind)) return undefined;
  if (typeof r.status !== 'string' || !STATUSES.has(r.status)) return undefined;
  if (typeof r.startedAt !== 'string' || Number.isNaN(Date.parse(r.startedAt))) return undefined;
  if (r.trigger !== 'schedule' && r.trigger !== 'manual' && r.trigger !== 'catch-up') return undefined;
  return r as unknown as RunRecord;
}
