import type { DaemonJob, JobTask, TaskKind } from './jobs.js';

/** Longest setTimeout Node allows; longer waits are re-armed. */
const MAX_TIMER_MS = 2_147_483_647;

export interface ScheduledTask {
  job: DaemonJob;
  task: JobTask;
}

export function taskKey(job: string, kind: TaskKind): string {
  return `${job}\u0000${kind}`;
}

/**
 * Timers for every task's next scheduled time. When one is due, `onDue(task, scheduledAt)` is called and
 * the next time is computed strictly after the one that fired (so a timer that fires a little early, or a
 * DST fold, never runs a time twice). Times missed while the process was suspended are not replayed one
 * by one: after a wake-up the schedule continues from now.
 */
export class Scheduler {
  readonly #tasks: ScheduledTask[];
  readonly #onDue: (t: ScheduledTask, scheduledAt: Date) => void;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #next = new Map<string, Date>();
  #running = false;

  constructor(tasks: ScheduledTask[], onDue: (t: ScheduledTask, scheduledAt: Date) => void) {
    this.#tasks = tasks;
    this.#onDue = onDue;
  }

  get running(): boolean {
    return this.#running;
  }

  start(now = new Date()): void {
    this.#running = true;
    for (const t of this.#tasks) this.#arm(t, now);
  }

  stop(): void {
    this.#running = false;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /** The next scheduled time of a job's task. */
  nextRun(job: string, kind: TaskKind): Date | undefined {
    return this.#next.get(taskKey(job, kind));
  }

  #arm(t: ScheduledTask, after: Date): void {
    if (!this.#running) return;
    const key = taskKey(t.job.name, t.task.kind);
    let at = t.task.schedule.next(after);
    // After a long suspension, continue from now instead of replaying every missed time.
    const now = Date.now();
    if (at && at.getTime() < now - 1000) at = t.task.schedule.next(new Date(now));
    if (!at) {
      this.#next.delete(key);
      return;
    }
    this.#next.set(key, at);
    this.#wait(t, key, at);
  }

  #wait(t: ScheduledTask, key: string, at: Date): void {
    const delay = Math.min(Math.max(0, at.getTime() - Date.now()), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      if (!this.#running) return;
      // Timers may fire a moment early, and long waits are split: wait out the rest (a run never starts
      // before its time).
      if (Date.now() < at.getTime()) {
        this.#wait(t, key, at);
        return;
      }
      this.#onDue(t, at);
      this.#arm(t, at);
    }, delay);
    this.#timers.set(key, timer);
  }
}

/** A run waiting for, or holding, its repository. */
export interface QueueItem {
  job: DaemonJob;
  kind: TaskKind;
  runId: string;
}

/**
 * Runs tasks one at a time per repository, in the order they came; different repositories run side by
 * side. A task that is already running or waiting is not added again (a job never overlaps itself).
 */
export class RunQueue {
  readonly #execute: (item: QueueItem) => Promise<void>;
  readonly #repos = new Map<string, { running: QueueItem | undefined; waiting: QueueItem[] }>();
  readonly #active = new Set<Promise<void>>();
  #closed = false;

  constructor(execute: (item: QueueItem) => Promise<void>) {
    this.#execute = execute;
  }

  /** Is this job's task running or waiting? */
  busy(job: string, kind?: TaskKind): QueueItem | undefined {
    for (const q of this.#repos.values()) {
      for (const item of [q.running, ...q.waiting]) {
        if (item && item.job.name === job && (kind === undefined || item.kind === kind)) return item;
      }
    }
    return undefined;
  }

  running(): QueueItem[] {
    return [...this.#repos.values()].flatMap((q) => (q.running ? [q.running] : []));
  }

  waiting(): QueueItem[] {
    return [...this.#repos.values()].flatMap((q) => q.waiting);
  }

  /**
   * Add a run. Returns `'started'`, `'queued'` (behind another run on the same repository), or
   * `'busy'` when the job's task is already running or waiting (nothing added), `'closed'` when stopping.
   */
  add(item: QueueItem): 'started' | 'queued' | 'busy' | 'closed' {
    if (this.#closed) return 'closed';
    if (this.busy(item.job.name, item.kind)) return 'busy';
    const key = item.job.repositoryKey;
    let q = this.#repos.get(key);
    if (!q) this.#repos.set(key, (q = { running: undefined, waiting: [] }));
    if (q.running) {
      q.waiting.push(item);
      return 'queued';
    }
    this.#start(key, q, item);
    return 'started';
  }

  #start(key: string, q: { running: QueueItem | undefined; waiting: QueueItem[] }, item: QueueItem): void {
    q.running = item;
    const p = this.#execute(item)
      .catch(() => undefined)
      .finally(() => {
        this.#active.delete(p);
        q.running = undefined;
        const next = this.#closed ? undefined : q.waiting.shift();
        if (next) this.#start(key, q, next);
        else if (!q.waiting.length) this.#repos.delete(key);
      });
    this.#active.add(p);
  }

  /** Stop taking runs and drop the waiting ones (returned); running ones go on until `idle()`. */
  close(): QueueItem[] {
    this.#closed = true;
    const dropped = this.waiting();
    for (const q of this.#repos.values()) q.waiting = [];
    return dropped;
  }

  /** Resolves when no run is going. */
  async idle(): Promise<void> {
    while (this.#active.size) await Promise.allSettled([...this.#active]);
  }
}
