/**
 * Progress on a terminal, like restic's: elapsed time, percentage and time left once the total is
 * known, files and bytes done of the total, errors so far, and the files being worked on.
 * Rendered by Kiwi itself: the display is a handful of lines redrawn in place; the progress-bar
 * libraries (cli-progress, listr2) draw one bar per task and would still need this text.
 */
import type { BackupStats, LiveProgress, ScanTotals } from '@kiwi-backup/core';
import { formatBytes } from './output.js';
import { plural } from './format.js';

/** `0:07`, `12:34`, `1:02:03`. */
export function clock(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}` : `${m}:${String(s).padStart(2, '0')}`;
}

/** Fraction done (0..1) and the estimated time left, once a total is known. */
export function estimate(doneBytes: number, totalBytes: number, doneFiles: number, totalFiles: number, elapsedMs: number): { fraction: number; remainingMs: number | undefined } {
  // Bytes say more about the time left than file counts; an empty tree has files only.
  const fraction = totalBytes > 0 ? Math.min(1, doneBytes / totalBytes) : totalFiles > 0 ? Math.min(1, doneFiles / totalFiles) : 1;
  const remainingMs = fraction > 0 && fraction < 1 ? (elapsedMs * (1 - fraction)) / fraction : fraction >= 1 ? 0 : undefined;
  return { fraction, remainingMs };
}

/** At most this many "files in progress" lines. */
const MAX_CURRENT = 4;

export interface ProgressFrame {
  elapsedMs: number;
  filesDone: number;
  bytesDone: number;
  errors: number;
  /** Known totals (from a scan, or a snapshot's summary); `final` when they are complete. */
  total?: { files: number; bytes: number; final: boolean };
  current: readonly string[];
  verb: string;
}

/** The lines of one progress display. */
export function progressLines(f: ProgressFrame): string[] {
  // The most useful facts first: a narrow terminal cuts the line's end.
  const head = [`[${clock(f.elapsedMs)}]`];
  if (f.total?.final) {
    const { fraction, remainingMs } = estimate(f.bytesDone, f.total.bytes, f.filesDone, f.total.files, f.elapsedMs);
    head.push(`${(fraction * 100).toFixed(2)}%`);
    if (remainingMs !== undefined) head.push(`ETA ${clock(remainingMs)}`);
  }
  let counts = `${plural(f.filesDone, 'file')} ${formatBytes(f.bytesDone)}`;
  if (!f.total) counts += ` ${f.verb}`;
  else if (f.total.final) counts += ` of ${plural(f.total.files, 'file')} ${formatBytes(f.total.bytes)} ${f.verb}`;
  else counts += ` ${f.verb}, ${plural(f.total.files, 'file')} ${formatBytes(f.total.bytes)} found so far`;
  const lines = [`${head.join(' ')}  ${counts}, ${plural(f.errors, 'error')}`];
  for (const c of f.current.slice(0, MAX_CURRENT)) lines.push(`  ${c}`);
  if (f.current.length > MAX_CURRENT) lines.push(`  … and ${f.current.length - MAX_CURRENT} more`);
  return lines;
}

/** Tracks a backup's progress: its stats, and the totals of the scan that runs ahead of it. */
export class BackupProgress {
  scan: ScanTotals | undefined;
  stats: Readonly<BackupStats> | undefined;
  live: LiveProgress = { filesInProgress: [], bytesInProgress: 0 };
  constructor(readonly started: number) {}

  frame(now = Date.now()): ProgressFrame {
    const s = this.stats;
    return {
      elapsedMs: now - this.started,
      filesDone: s?.totalFiles ?? 0,
      // Finished files, and what was read so far of those being read (a large file moves the percentage too).
      bytesDone: (s?.totalBytes ?? 0) + this.live.bytesInProgress,
      errors: s?.errors ?? 0,
      ...(this.scan ? { total: { files: this.scan.files, bytes: this.scan.bytes, final: this.scan.done } } : {}),
      current: this.live.filesInProgress,
      verb: 'done',
    };
  }

  /** The `--json` status fields (restic's names where they exist). */
  json(now = Date.now()): Record<string, unknown> {
    const f = this.frame(now);
    const out: Record<string, unknown> = { files_in_progress: [...f.current] };
    if (f.total) {
      out.scan_files = f.total.files;
      out.scan_bytes = f.total.bytes;
      out.scan_finished = f.total.final;
      if (f.total.final) {
        const { fraction, remainingMs } = estimate(f.bytesDone, f.total.bytes, f.filesDone, f.total.files, f.elapsedMs);
        out.percent_done = fraction;
        if (remainingMs !== undefined) out.seconds_remaining = Math.round(remainingMs / 1000);
      }
    }
    return out;
  }
}
