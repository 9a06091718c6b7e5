/**
 * Progress of a backup run, alongside every stage: the files being read
 * and how much of them is read so far, passed to `BackupOptions.onProgress` at most every
 * {@link PROGRESS_INTERVAL_MS}.
 */
import type { BackupStats } from '../plugins/types.js';
import type { WalkEntry } from '../walker/index.js';
import type { BackupOptions } from './options.js';

const PROGRESS_INTERVAL_MS = 100;

/** What progress reports need of the run. */
export interface ProgressContext {
  readonly stats: BackupStats;
  readonly opts: Pick<BackupOptions, 'onProgress'>;
}

export class Progress {
  /** Files being read now, for progress displays. */
  readonly reading = new Set<string>();
  /** `stats.bytesRead` of files whose reading finished: the rest of it is in progress. */
  finishedReadBytes = 0;
  lastProgress = 0;

  constructor(private readonly ctx: ProgressContext) {}

  /** {@link report} for a walked entry (its display path made only when it is shown). */
  at(entry: WalkEntry): void {
    if (!this.ctx.opts.onProgress) return;
    const now = Date.now();
    if (now - this.lastProgress >= PROGRESS_INTERVAL_MS) this.report(entry.path);
  }

  report(path: string): void {
    const cb = this.ctx.opts.onProgress;
    if (!cb) return;
    const now = Date.now();
    if (now - this.lastProgress >= PROGRESS_INTERVAL_MS) {
      this.lastProgress = now;
      cb(this.ctx.stats, path, {
        filesInProgress: [...this.reading],
        bytesInProgress: Math.max(0, this.ctx.stats.bytesRead - this.finishedReadBytes),
      });
    }
  }
}
