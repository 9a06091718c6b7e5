import { inspect } from 'node:util';
import { stdout, type StdoutWriter } from './stdout.js';
import { escapeControl, escapeControlKeepLines, maskSecrets } from './format.js';

/**
 * Where a command's output goes.
 * - `--json`: JSON lines on stdout only (`message_type`: `status`, `error`, `summary`, and per-command item types);
 *   nothing else is printed to stdout.
 * - otherwise: results on stdout, messages on stderr; progress lines only when stderr is a TTY.
 *   Human output goes through {@link escapeControl}: control characters (from file names, hosts, tags
 *   of a snapshot) are printed as escapes. A result line (`print`) is always one line, newlines
 *   escaped too; messages (`info`, `warn`, `error`) may span lines Kiwi composed, so a value from a
 *   repository or the file system in a message is escaped by its caller with `escapeControl`.
 * - `--quiet`: only warnings and errors (no results, no messages, no progress).
 */
export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly progressEnabled: boolean;
  /** Lines of progress on screen (0: none). */
  private progressShown = 0;
  private lastProgress = 0;
  /** Results and JSON lines: one buffered stream (see stdout.ts). */
  readonly stdout: StdoutWriter = stdout();

  constructor(opts: { json: boolean; quiet: boolean; verbose: boolean }) {
    this.json = opts.json;
    this.quiet = opts.quiet;
    this.verbose = opts.verbose;
    this.progressEnabled = !opts.json && !opts.quiet && Boolean(process.stderr.isTTY);
  }

  /** A JSON line on stdout (only in --json mode). */
  emit(messageType: string, data: Record<string, unknown>): void {
    if (!this.json) return;
    this.stdout.write(`${JSON.stringify({ message_type: messageType, ...data })}\n`);
  }

  /**
   * From now on stdout holds one JSON document (`snapshots --json`: one array): warnings and errors
   * go to stderr (still as JSON lines), so that stdout stays valid JSON.
   */
  documentOnStdout(): void {
    this.#messagesToStderr = true;
  }

  #messagesToStderr = false;

  /** A warning or error line in JSON mode: on stdout, or on stderr while stdout holds a document. */
  #emitMessage(data: Record<string, unknown>): void {
    if (!this.#messagesToStderr) {
      this.emit('error', data);
      return;
    }
    try {
      process.stderr.write(`${JSON.stringify({ message_type: 'error', ...data })}\n`);
    } catch {
      // nobody reads stderr
    }
  }

  /** One JSON document on stdout, whatever the mode (e.g. `snapshots --json`: one array). */
  emitDocument(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /** Raw bytes on stdout (`dump`). */
  writeRaw(data: Uint8Array): void {
    this.stdout.write(data);
  }

  /**
   * Undefined when stdout takes more; else a promise to await before printing more (settles when the
   * reader caught up; rejects with a BrokenPipeError when it went away). Await it in long listings.
   */
  backpressure(): Promise<void> | undefined {
    return this.stdout.backpressure();
  }

  /** Write out what is buffered (before the process ends). */
  async end(): Promise<void> {
    await this.stdout.end();
  }

  /** A result line on stdout (human mode only). */
  print(line: string): void {
    if (this.json || this.quiet) return;
    if (this.progressShown) this.clearProgress();
    this.stdout.write(`${escapeControl(line)}\n`);
  }

  /** Result lines on stdout (human mode only), as {@link print} prints each, with one write. */
  printLines(lines: readonly string[]): void {
    if (this.json || this.quiet || lines.length === 0) return;
    if (this.progressShown) this.clearProgress();
    let text = '';
    for (let i = 0; i < lines.length; i++) text += `${escapeControl(lines[i]!)}\n`;
    this.stdout.write(text);
  }

  /** An informational message on stderr (human mode, not quiet). */
  info(line: string): void {
    if (this.json || this.quiet) return;
    this.clearProgress();
    process.stderr.write(`${escapeControlKeepLines(line)}\n`);
  }

  /** A warning: stderr in human mode; an `error`-type JSON line with severity warning in JSON mode. */
  warn(message: string, data: Record<string, unknown> = {}): void {
    if (this.json) {
      this.#emitMessage({ severity: 'warning', message, ...data });
      return;
    }
    this.clearProgress();
    process.stderr.write(`warning: ${escapeControlKeepLines(message)}\n`);
  }

  /** An error: stderr in human mode; an `error` JSON line in JSON mode. */
  error(message: string, data: Record<string, unknown> = {}): void {
    if (this.json) {
      this.#emitMessage({ severity: 'error', message, ...data });
      return;
    }
    this.clearProgress();
    process.stderr.write(`error: ${escapeControlKeepLines(message)}\n`);
  }

  debug(message: string): void {
    if (!this.verbose || this.json) return;
    this.clearProgress();
    process.stderr.write(`debug: ${escapeControlKeepLines(message)}\n`);
  }

  /** A one-line progress display on a TTY stderr, at most ~10 times a second. */
  progress(line: string, force = false): void {
    this.progressLines([line], force);
  }

  /**
   * A progress display of a few lines on a TTY stderr, redrawn in place at most ~10 times a second.
   * Each line is escaped and cut to the terminal's width; no more lines than the terminal has rows.
   */
  progressLines(lines: readonly string[], force = false): void {
    if (!this.progressEnabled) return;
    const now = Date.now();
    if (!force && now - this.lastProgress < 100) return;
    this.lastProgress = now;
    this.stdout.flush();
    const width = process.stderr.columns || 80;
    const rows = Math.max(1, (process.stderr.rows || 24) - 1);
    const text = lines.slice(0, rows).map((line) => {
      const safe = escapeControl(line);
      return safe.length > width - 1 ? `${safe.slice(0, width - 2)}…` : safe;
    });
    process.stderr.write(`${this.eraseProgress()}${text.join('\n')}`);
    this.progressShown = text.length;
  }

  /** The escape sequence that moves to the start of the display and clears it (empty when none is shown). */
  private eraseProgress(): string {
    if (!this.progressShown) return '';
    return `\r${this.progressShown > 1 ? `\x1b[${this.progressShown - 1}A` : ''}\x1b[J`;
  }

  clearProgress(): void {
    // Whatever goes to stderr next must come after the results printed before it.
    this.stdout.flush();
    if (this.progressShown) {
      process.stderr.write(this.eraseProgress());
      this.progressShown = 0;
    }
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * An error's message for a log line or a record that outlives the command (the daemon's run history,
 * its API and `--json` events): with the secrets of URL-like words masked ({@link maskSecrets}), as the
 * CLI's own error lines are.
 */
export function describeError(err: unknown): string {
  return maskSecrets(err instanceof Error ? err.message : inspect(err));
}
