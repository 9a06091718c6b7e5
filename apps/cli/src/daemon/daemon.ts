import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { PluginRuntime, RecoveryOutcome } from '@kiwi-backup/core';
import type { Session } from '../session.js';
import { describeError } from '../output.js';
import { now, type EventBus, type RunProgress } from './events.js';
import { HistoryStore, type RunRecord, type RunTrigger } from './history.js';
import type { DaemonApi } from './http.js';
import type { DaemonJob, TaskKind } from './jobs.js';
import type { RetentionEngine } from './retention.js';
import { jobError, listJobSnapshots, printableRepository, runBackupTask, runCheckTask, runPruneTask, type RunnerContext, type SnapshotSummaryJson } from './runner.js';
import { RunQueue, Scheduler, type QueueItem, type ScheduledTask } from './scheduler.js';

export interface DaemonInit {
  session: Session;
  plugins: PluginRuntime;
  jobs: DaemonJob[];
  /** Each job's repository password, resolved at start. */
  passwords: Map<string, string>;
  retention: RetentionEngine;
  bus: EventBus;
  version: string;
  /** Undo actions run at start: recorded in the first run's result. */
  recovered: RecoveryOutcome[];
}

/** How often the daemon notes that it is alive (for catch-up after it was down). */
const ALIVE_EVERY_MS = 30_000;
/** Progress events per run at most this often. */
const PROGRESS_EVERY_MS = 500;

interface Running {
  rec: RunRecord;
  progress: RunProgress | undefined;
  controller: AbortController;
}

/**
 * The scheduler, the per-repository run queue and the run history, tied together; the HTTP API reads and
 * drives it through {@link DaemonApi}.
 */
export class Daemon implements DaemonApi {
  readonly bus: EventBus;
  readonly history: HistoryStore;
  readonly #init: DaemonInit;
  readonly #jobs = new Map<string, DaemonJob>();
  readonly #scheduler: Scheduler;
  readonly #queue: RunQueue;
  readonly #running = new Map<string, Running>();
  readonly #pending = new Map<string, { trigger: RunTrigger; scheduledAt?: Date }>();
  readonly #snapshots = new Map<string, Promise<SnapshotSummaryJson[]>>();
  readonly #ctx: RunnerContext;
  readonly #startedAt = new Date();
  readonly #stop = new AbortController();
  #recovered: RecoveryOutcome[];
  #alive: NodeJS.Timeout | undefined;
  #state: 'starting' | 'running' | 'stopping' | 'stopped' = 'starting';

  constructor(init: DaemonInit) {
    this.#init = init;
    this.bus = init.bus;
    this.history = new HistoryStore(init.session.dataDir);
    for (const j of init.jobs) this.#jobs.set(j.name, j);
    this.#recovered = init.recovered.filter((o) => o.status !== 'skipped');
    this.#ctx = { session: init.session, plugins: init.plugins, retention: init.retention, log: init.session.log };
    const tasks: ScheduledTask[] = init.jobs.flatMap((job) =>
      job.tasks.filter((t) => t.kind !== 'prune' || !init.retention.unavailable('prune')).map((task) => ({ job, task })),
    );
    this.#scheduler = new Scheduler(tasks, (t, at) => void this.request(t.job, t.task.kind, 'schedule', at));
    this.#queue = new RunQueue((item) => this.#execute(item));
  }

  get #statePath(): string {
    return join(this.#init.session.dataDir, 'daemon', 'state.json');
  }

  /** Close runs a dead daemon left open, start the timers, and run what `catchUp` jobs missed. */
  async start(): Promise<void> {
    const closed = await this.history.closeAbandoned([...this.#jobs.keys()]);
    for (const r of closed) this.#log('warn', `a ${r.kind} run that started ${r.startedAt} never finished (the daemon was stopped); recorded as interrupted`, r.job);
    const lastAlive = await this.#readLastAlive();
    this.#scheduler.start();
    this.#state = 'running';
    await this.#writeAlive();
    this.#alive = setInterval(() => void this.#writeAlive(), ALIVE_EVERY_MS);
    this.#alive.unref();
    if (lastAlive) await this.#catchUp(lastAlive);
  }

  async #catchUp(lastAlive: Date): Promise<void> {
    const nowDate = new Date();
    for (const job of this.#jobs.values()) {
      if (!job.config.catchUp) continue;
      for (const task of job.tasks) {
        if (task.kind === 'prune' && this.#init.retention.unavailable('prune')) continue;
        const last = await this.history.last(job.name, task.kind);
        const lastScheduled = last?.scheduledAt ? new Date(last.scheduledAt) : undefined;
        const from = lastScheduled && lastScheduled > lastAlive ? lastScheduled : lastAlive;
        const missed = task.schedule.next(from);
        if (missed && missed <= nowDate) {
          this.#log('info', `${task.kind} missed its run at ${missed.toISOString()} while the daemon was down (catchUp): running it now`, job.name);
          void this.request(job, task.kind, 'catch-up', missed);
        }
      }
    }
  }

  async #readLastAlive(): Promise<Date | undefined> {
    try {
      const v = JSON.parse(await readFile(this.#statePath, 'utf8')) as { lastAlive?: unknown };
      const t = typeof v.lastAlive === 'string' ? Date.parse(v.lastAlive) : NaN;
      return Number.isNaN(t) ? undefined : new Date(t);
    } catch {
      return undefined;
    }
  }

  async #writeAlive(): Promise<void> {
    const tmp = `${this.#statePath}.${process.pid}.tmp`;
    try {
      await mkdir(join(this.#init.session.dataDir, 'daemon'), { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify({ lastAlive: new Date().toISOString(), pid: process.pid }));
      } finally {
        await fh.close();
      }
      await rename(tmp, this.#statePath);
    } catch (err) {
      this.#log('warn', `cannot record that the daemon is alive in ${this.#statePath}: ${describeError(err)}`);
    }
  }

  /** Stop scheduling, drop waiting runs, interrupt running ones and wait for them (their onBackupStop hooks run). */
  async stop(reason?: unknown): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') return this.#queue.idle();
    this.#state = 'stopping';
    this.#scheduler.stop();
    if (this.#alive) clearInterval(this.#alive);
    for (const item of this.#queue.close()) {
      this.#pending.delete(item.runId);
      this.#log('info', `${item.kind} was waiting for its repository and will not run (the daemon is stopping)`, item.job.name);
    }
    this.#stop.abort(reason ?? new Error('the daemon is stopping'));
    await this.#queue.idle();
    await this.#writeAlive();
    this.#state = 'stopped';
  }

  /** Ask for a run: refused (and logged) when the job's task is already running or waiting. */
  async request(job: DaemonJob, kind: TaskKind, trigger: RunTrigger, scheduledAt?: Date): Promise<{ result: 'started' | 'queued' | 'busy' | 'closed'; runId?: string }> {
    const runId = HistoryStore.newRunId();
    const busy = this.#queue.busy(job.name, kind);
    if (busy) {
      const reason = `the previous run is still ${this.#running.has(busy.runId) ? 'running' : 'waiting'}`;
      if (trigger !== 'manual') {
        this.bus.publish({ type: 'skipped', time: now(), job: job.name, kind, reason: `${reason}; skipping the run scheduled for ${scheduledAt?.toISOString() ?? 'now'}`, ...(scheduledAt ? { scheduledAt: scheduledAt.toISOString() } : {}) });
      }
      return { result: 'busy' };
    }
    this.#pending.set(runId, { trigger, ...(scheduledAt ? { scheduledAt } : {}) });
    const result = this.#queue.add({ job, kind, runId });
    if (result === 'busy' || result === 'closed') {
      this.#pending.delete(runId);
      return { result };
    }
    if (result === 'queued') {
      this.bus.publish({ type: 'queued', time: now(), job: job.name, kind, runId, trigger, ...(scheduledAt ? { scheduledAt: scheduledAt.toISOString() } : {}) });
    }
    return { result, runId };
  }

  async #execute(item: QueueItem): Promise<void> {
    const { job, kind, runId } = item;
    const pending = this.#pending.get(runId);
    this.#pending.delete(runId);
    const controller = new AbortController();
    const onStop = () => controller.abort(this.#stop.signal.reason);
    if (this.#stop.signal.aborted) onStop();
    else this.#stop.signal.addEventListener('abort', onStop, { once: true });
    const rec: RunRecord = {
      id: runId,
      job: job.name,
      kind,
      trigger: pending?.trigger ?? 'manual',
      ...(pending?.scheduledAt ? { scheduledAt: pending.scheduledAt.toISOString() } : {}),
      startedAt: now(),
      status: 'running',
    };
    if (this.#recovered.length) {
      rec.recovered = this.#recovered;
      this.#recovered = [];
    }
    const running: Running = { rec, progress: undefined, controller };
    this.#running.set(runId, running);
    const started = Date.now();
    try {
      await this.history.save(rec).catch((err: unknown) => this.#log('error', `cannot write the run history: ${describeError(err)}`, job.name));
      this.bus.publish({ type: 'started', time: now(), run: { ...rec } });
      let lastPublished = 0;
      const onProgress = (p: RunProgress): void => {
        running.progress = p;
        const t = Date.now();
        if (t - lastPublished < PROGRESS_EVERY_MS) return;
        lastPublished = t;
        this.bus.publish({ type: 'progress', time: now(), job: job.name, kind, runId, progress: p });
      };
      const password = this.#init.passwords.get(job.name) ?? '';
      if (kind === 'backup') {
        const previous = (await this.history.runs(job.name)).find((r) => r.kind === 'backup' && (r.status === 'success' || r.status === 'partial') && r.stats);
        await runBackupTask(this.#ctx, job, password, rec, controller.signal, onProgress, previous?.stats?.totalBytes);
      } else if (kind === 'prune') {
        await runPruneTask(this.#ctx, job, password, rec, controller.signal);
      } else {
        await runCheckTask(this.#ctx, job, password, rec, controller.signal, onProgress);
      }
    } catch (err) {
      rec.status = controller.signal.aborted ? 'interrupted' : 'failure';
      rec.error = jobError(this.#ctx, job, err);
    } finally {
      this.#stop.signal.removeEventListener('abort', onStop);
      if (rec.status === 'running') rec.status = 'failure';
      rec.finishedAt = now();
      rec.durationMs = Date.now() - started;
      this.#running.delete(runId);
      this.#snapshots.delete(job.name);
      await this.history.save(rec).catch((err: unknown) => this.#log('error', `cannot write the run history: ${describeError(err)}`, job.name));
      this.bus.publish({ type: 'finished', time: now(), run: { ...rec } });
    }
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, job?: string): void {
    this.bus.publish({ type: 'log', time: now(), level, message, ...(job ? { job } : {}) });
  }

  // ------------------------------------------------------------------ DaemonApi

  healthy(): boolean {
    return this.#state === 'running' && this.#scheduler.running;
  }

  hasJob(name: string): boolean {
    return this.#jobs.has(name);
  }

  async runs(name: string, limit: number): Promise<RunRecord[]> {
    const runs = await this.history.runs(name, limit);
    return runs.map((r) => {
      const live = this.#running.get(r.id);
      return live ? { ...r, progress: live.progress } : r;
    });
  }

  snapshots(name: string): Promise<SnapshotSummaryJson[]> {
    const job = this.#jobs.get(name)!;
    let p = this.#snapshots.get(name);
    if (!p) {
      // The API shows the error: masked as the run history's (an adapter may quote its URL, password and all).
      p = listJobSnapshots(this.#ctx, job, this.#init.passwords.get(name) ?? '').catch((err: unknown) => {
        throw new Error(jobError(this.#ctx, job, err), { cause: err });
      });
      this.#snapshots.set(name, p);
      p.catch(() => this.#snapshots.delete(name));
    }
    return p;
  }

  async runNow(name: string, kind: TaskKind): Promise<{ result: 'started' | 'queued' | 'busy' | 'closed' | 'unavailable'; runId?: string; message?: string }> {
    const job = this.#jobs.get(name)!;
    const why = kind === 'prune' ? this.#init.retention.unavailable('prune') : undefined;
    if (why) return { result: 'unavailable', message: why };
    if (this.#state !== 'running') return { result: 'closed' };
    return this.request(job, kind, 'manual');
  }

  async status(): Promise<unknown> {
    const jobs = [];
    for (const job of this.#jobs.values()) {
      const runs = await this.history.runs(job.name, 100);
      const live = [...this.#running.values()].find((r) => r.rec.job === job.name);
      const lastRun = runs.find((r) => r.status !== 'running');
      const lastBackup = runs.find((r) => r.kind === 'backup' && r.status !== 'running');
      jobs.push({
        name: job.name,
        repository: printableRepository(this.#ctx, job),
        paths: job.config.paths,
        tags: job.config.tags ?? [],
        schedule: job.config.schedule,
        timezone: job.config.timezone ?? null,
        nextRun: this.#scheduler.nextRun(job.name, 'backup')?.toISOString() ?? null,
        tasks: job.tasks.map((t) => ({
          kind: t.kind,
          schedule: t.schedule.expression,
          nextRun: this.#scheduler.nextRun(job.name, t.kind)?.toISOString() ?? null,
          ...(t.kind === 'prune' && this.#init.retention.unavailable('prune') ? { unavailable: this.#init.retention.unavailable('prune') } : {}),
        })),
        running: live ? { runId: live.rec.id, kind: live.rec.kind, trigger: live.rec.trigger, startedAt: live.rec.startedAt, progress: live.progress ?? null } : null,
        queued: this.#queue.waiting().filter((q) => q.job.name === job.name).map((q) => ({ runId: q.runId, kind: q.kind })),
        lastRun: lastRun ?? null,
        lastBackup: lastBackup ?? null,
        runs: runs.length,
      });
    }
    return {
      version: this.#init.version,
      pid: process.pid,
      state: this.#state,
      startedAt: this.#startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.#startedAt.getTime()) / 1000),
      retention: { forget: this.#init.retention.unavailable('forget') ?? 'available', prune: this.#init.retention.unavailable('prune') ?? 'available' },
      jobs,
    };
  }
}
