/**
 * Stopping the way service managers stop things. systemd and others send SIGTERM to every process of a
 * service, often more than once (a wrapper forwards it, then the whole group gets it, then again on a
 * timeout), and a terminal's hang-up sends SIGHUP. None of that may skip `onBackupStop`, which is what
 * puts a stopped database back:
 *
 * - the first SIGINT, SIGTERM or SIGHUP begins a clean stop (aborts `signal`: the backup stops, then every
 *   `onBackupStop` hook runs);
 * - later ones only say that the stop is under way: they never cut it short;
 * - the one thing that does is the hard deadline (`--stop-timeout`, default 60 s, counted from the first
 *   signal): then the process exits at once with 130. What a plug-in journalled (`ctx.recovery`) is
 *   undone at the next start.
 */
import { exitProcessNow } from '@kiwi-backup/core';
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

export const DEFAULT_STOP_TIMEOUT_MS = 60_000;

/** `--stop-timeout`: seconds (`90`), or a duration (`90s`, `2m`, `1500ms`). */
export function parseStopTimeout(value: unknown): number {
  if (value === undefined || value === null || value === '' || value === true) return DEFAULT_STOP_TIMEOUT_MS;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(String(value));
  const ms = m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm'] : NaN;
  if (!Number.isFinite(ms) || ms <= 0 || ms > 24 * 3_600_000) {
    throw new RangeError(`--stop-timeout must be a positive number of seconds (or "90s", "2m"), not ${JSON.stringify(value)}`);
  }
  return ms;
}

export interface GracefulStopOptions {
  /** Hard deadline after the first signal. */
  stopTimeoutMs: number;
  /** Where the messages go (stderr by default). */
  log?: (line: string) => void;
  /** What `signal` is aborted with (default: an Error naming the signal). */
  reason?: (sig: StopSignal) => unknown;
  /** Called once, at the first signal (after `signal` is aborted). */
  onStop?: (sig: StopSignal) => void;
  /** Exit code at the hard deadline (default 130). */
  deadlineExitCode?: number;
  /** What "exit now" means (tests replace it). */
  exit?: (code: number) => void;
  /** What is still running, for the messages ("the backup", "job nightly"). */
  describe?: () => string;
  /**
   * Whether the stop waits for plug-ins' onBackupStop hooks (backup, daemon: default true); the
   * messages of other commands (restore, prune…) do not mention hooks they never run.
   */
  hooks?: boolean;
}

/** Installs handlers for SIGINT, SIGTERM and SIGHUP that begin a clean stop; see the module comment. */
export class GracefulStop {
  readonly #controller = new AbortController();
  readonly #opts: GracefulStopOptions;
  readonly #handler = (sig: NodeJS.Signals): void => this.receive(sig as StopSignal);
  #count = 0;
  #firstAt = 0;
  #deadline: NodeJS.Timeout | undefined;
  #installed = false;
  /** The first signal, once one came. */
  firstSignal: StopSignal | undefined;
  /** The error that nothing handled, when that is what began the stop (see {@link fail}). */
  failure: Error | undefined;

  constructor(opts: GracefulStopOptions) {
    this.#opts = opts;
  }

  /** Aborted by the first signal. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get stopping(): boolean {
    return this.#count > 0;
  }

  install(): this {
    if (this.#installed) return this;
    this.#installed = true;
    for (const s of STOP_SIGNALS) process.on(s, this.#handler);
    // A wrapper that died with the group (pnpm, a shell) leaves our stderr without a reader: writing there
    // must not crash the process before its hooks ran (stdout has its own handling: see stdout.ts).
    process.stderr.on('error', ignoreStreamError);
    return this;
  }

  /** Remove the handlers and the deadline (the work has ended). */
  uninstall(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = undefined;
    if (!this.#installed) return;
    this.#installed = false;
    for (const s of STOP_SIGNALS) process.off(s, this.#handler);
  }

  receive(sig: StopSignal): void {
    this.#count++;
    const what = this.#opts.describe?.();
    if (this.#count === 1) {
      this.firstSignal = sig;
      this.#begin(`${sig} received`, this.#opts.reason ? this.#opts.reason(sig) : new Error(`interrupted by ${sig}`));
      this.#opts.onStop?.(sig);
      return;
    }
    const left = Math.max(0, Math.round((this.#opts.stopTimeoutMs - (Date.now() - this.#firstAt)) / 1000));
    this.#log(`${sig} again: already stopping; waiting for ${this.#opts.hooks !== false ? 'the onBackupStop hooks' : 'the clean stop'}${what ? ` (${what})` : ''} (${left} s left before --stop-timeout)`);
  }

  /**
   * An error nothing handled (a promise rejected with no handler, an exception thrown in a callback: a
   * plug-in's bug, or Kiwi's) stops the work as cleanly as a signal does — onBackupStop hooks run, which
   * put a stopped database back — instead of the process dying on the spot with a stack trace. `reason`
   * is what `signal` is aborted with (`reason.message` is logged as it is: mask it first); the hard
   * deadline exits with `exitCode`. During a stop already under way it is only reported.
   */
  fail(reason: Error, exitCode = 1): void {
    this.#count++;
    if (this.#count === 1) {
      this.failure = reason;
      this.#begin(`internal error (${reason.message})`, reason, exitCode);
      return;
    }
    this.#log(`internal error while stopping (${reason.message}); the stop goes on`);
  }

  #log(line: string): void {
    (this.#opts.log ?? ((l: string) => safeWrite(`${l}\n`)))(line);
  }

  /** The first cause: abort `signal` with `reason` and start the hard deadline (which exits with `deadlineCode`). */
  #begin(cause: string, reason: unknown, deadlineCode = this.#opts.deadlineExitCode ?? 130): void {
    const what = this.#opts.describe?.();
    const limit = Math.round(this.#opts.stopTimeoutMs / 1000);
    const hooks = this.#opts.hooks !== false;
    this.#firstAt = Date.now();
    this.#log(`${cause}: stopping cleanly${what ? ` (${what})` : ''}${hooks ? '; onBackupStop hooks still run' : ''} (at most ${limit} s, --stop-timeout)`);
    this.#controller.abort(reason);
    this.#deadline = setTimeout(() => {
      this.#log(
        hooks
          ? `--stop-timeout of ${limit} s reached: exiting now with the onBackupStop hooks unfinished (journalled undo actions run at the next start)`
          : `--stop-timeout of ${limit} s reached: exiting now`,
      );
      // (At once: process.exit would wait for a threadpool thread stuck in a system call, for ever.)
      (this.#opts.exit ?? exitProcessNow)(deadlineCode);
    }, this.#opts.stopTimeoutMs);
    // The deadline never keeps the process alive by itself.
    this.#deadline.unref();
  }
}

function ignoreStreamError(): void {
  // Messages are lost, the stop goes on.
}

function safeWrite(text: string): void {
  try {
    process.stderr.write(text);
  } catch {
    // no reader left
  }
}
