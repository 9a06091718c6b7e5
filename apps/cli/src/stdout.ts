/**
 * Kiwi's stdout: one buffered stream for every command's results, and a quiet end on a broken pipe.
 *
 * - Lines are collected and written in pieces of about 64 KiB (a listing of a million paths is a
 *   few hundred `write()` calls, not a million), and at the latest when the event loop is idle, so
 *   a slow listing on a terminal still shows its lines as they come.
 * - Backpressure: {@link StdoutWriter.backpressure} is a promise while stdout's buffer is full
 *   (undefined otherwise); long loops await it, so memory stays bounded when the reader is slow.
 * - A broken pipe (`kiwi ls latest | head -1`: the reader went away) makes the next write throw a
 *   {@link BrokenPipeError}; the command unwinds through its `finally` blocks (locks are released)
 *   and ends with exit code 0 and nothing on stderr. Any other stdout error (a full disk) ends it
 *   with that error.
 */

import { CliError, ExitCode } from './exit-codes.js';

/** Flush when this many bytes (UTF-16 code units for strings) are buffered. */
export const STDOUT_CHUNK = 64 * 1024;

/** stdout's reader went away (EPIPE). Commands end quietly with exit code 0. */
export class BrokenPipeError extends Error {
  constructor() {
    super('stdout was closed by its reader (broken pipe)');
    this.name = 'BrokenPipeError';
  }
}

/** True for a {@link BrokenPipeError} (also from another copy of this module) or a raw EPIPE. */
export function isBrokenPipe(err: unknown): boolean {
  const e = err as { name?: string; code?: string } | null;
  return e?.name === 'BrokenPipeError' || e?.code === 'EPIPE';
}

type Sink = NodeJS.WritableStream & { writableNeedDrain?: boolean; destroyed?: boolean };

/** A buffered writer over one stream (stdout). */
export class StdoutWriter {
  #parts: Array<string | Uint8Array> = [];
  #size = 0;
  #scheduled = false;
  #failure: Error | undefined;
  readonly #stream: Sink;
  readonly #waiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>();

  constructor(stream: Sink) {
    this.#stream = stream;
    stream.on('error', (err: NodeJS.ErrnoException) => this.#fail(err));
    stream.on('drain', () => this.#wake());
  }

  /** The error that ended output (a {@link BrokenPipeError} for EPIPE), if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Queue text or bytes. Throws once stdout is broken (see {@link BrokenPipeError}). */
  write(data: string | Uint8Array): void {
    if (this.#failure) throw this.#failure;
    if (data.length === 0) return;
    this.#parts.push(data);
    this.#size += data.length;
    if (this.#size >= STDOUT_CHUNK) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        if (!this.#failure) this.flush();
      });
    }
  }

  /** Hand what is queued to the stream now (one `write()`). */
  flush(): void {
    if (this.#size === 0 || this.#failure) return;
    const parts = this.#parts;
    this.#parts = [];
    this.#size = 0;
    let data: string | Uint8Array;
    if (parts.length === 1) data = parts[0]!;
    else if (parts.every((p) => typeof p === 'string')) data = (parts as string[]).join('');
    else data = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
    try {
      this.#stream.write(data);
    } catch (err) {
      this.#fail(err as NodeJS.ErrnoException);
      throw this.#failure;
    }
  }

  /**
   * Undefined when stdout can take more now; otherwise a promise that resolves once it drained
   * (and rejects when output failed, e.g. with a {@link BrokenPipeError}).
   */
  backpressure(): Promise<void> | undefined {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#size >= STDOUT_CHUNK) this.flush();
    if (!this.#stream.writableNeedDrain) return undefined;
    return new Promise<void>((resolve, reject) => {
      this.#waiters.add({ resolve, reject });
    });
  }

  /** Flush and wait until the stream took everything (resolves quietly after a broken pipe). */
  async end(): Promise<void> {
    if (this.#failure) return;
    this.flush();
    const waiting = this.backpressure();
    if (waiting) await waiting.catch(() => undefined);
  }

  #wake(): void {
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
  }

  #fail(err: NodeJS.ErrnoException): void {
    if (!this.#failure) {
      this.#failure =
        err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED'
          ? new BrokenPipeError()
          : new CliError(`writing to stdout failed: ${err.message}`, ExitCode.Failure);
    }
    this.#parts = [];
    this.#size = 0;
    for (const w of this.#waiters) w.reject(this.#failure);
    this.#waiters.clear();
  }
}

let stdoutWriter: StdoutWriter | undefined;

/** The process's one stdout writer (created on first use, with its error handler). */
export function stdout(): StdoutWriter {
  if (!stdoutWriter) {
    stdoutWriter = new StdoutWriter(process.stdout);
    // stderr's reader may go away too (`kiwi backup 2>&1 | head`): never crash on that.
    process.stderr.on('error', () => undefined);
  }
  return stdoutWriter;
}
