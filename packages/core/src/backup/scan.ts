import { walk, type WalkEvent, type WalkOptions } from '../walker/index.js';

/** What a backup will go through, counted by a walk that runs ahead of it. */
export interface ScanTotals {
  /** Entries other than directories (regular files, symlinks, devices...), as `BackupStats.totalFiles` counts them. */
  files: number;
  dirs: number;
  /** Bytes of regular files, as `BackupStats.totalBytes` counts them. */
  bytes: number;
  /** Entries the scan could not read (the backup reports them itself). */
  errors: number;
  /** True once the whole tree was walked: the totals are final. */
  done: boolean;
}

export interface ScanOptions extends Pick<WalkOptions, 'exclude' | 'excludeFiles' | 'oneFileSystem' | 'signal'> {
  /** Called with the running totals at most every `intervalMs` (default 250), and once when done. */
  onUpdate?: (totals: Readonly<ScanTotals>) => void;
  intervalMs?: number;
}

/**
 * Walk the backup's sources with the same excludes and count what the backup will process, so a
 * progress display can show a percentage and an estimated time left (as restic's scanner does). It
 * reads no file content: one `lstat` per entry, done ahead of the backup's own walk, which waits
 * on reading. Plug-ins may still skip or add files, so the totals are an estimate.
 * Stops quietly (resolving with what it counted) when `signal` aborts.
 */
export async function scanSources(sources: readonly string[], options: ScanOptions = {}): Promise<ScanTotals> {
  const totals: ScanTotals = { files: 0, dirs: 0, bytes: 0, errors: 0, done: false };
  const interval = options.intervalMs ?? 250;
  let last = 0;
  try {
    const events = walk(sources, {
      exclude: options.exclude ?? [],
      excludeFiles: options.excludeFiles ?? [],
      oneFileSystem: Boolean(options.oneFileSystem),
      ...(options.signal ? { signal: options.signal } : {}),
    }) as AsyncIterable<WalkEvent>;
    for await (const ev of events) {
      if (ev.kind === 'error') totals.errors++;
      else if (ev.kind === 'enter') totals.dirs++;
      else if (ev.kind === 'entry') {
        totals.files++;
        if (ev.entry.type === 'file') totals.bytes += Number(ev.entry.stat.size);
      }
      if (options.onUpdate) {
        const now = Date.now();
        if (now - last >= interval) {
          last = now;
          options.onUpdate(totals);
        }
      }
    }
    totals.done = true;
  } catch (err) {
    if (!options.signal?.aborted) throw err;
  }
  options.onUpdate?.(totals);
  return totals;
}
