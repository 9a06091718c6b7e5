import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

const isWindows = process.platform === 'win32';

/** What to start: an executable with arguments, or a command line for a shell. */
export interface Command {
  /** Human-readable description for logs and errors (a path or the command line). */
  readonly label: string;
  readonly file: string;
  readonly args: readonly string[];
  /** Run `file` as a command line through this shell (`true` = the system shell). */
  readonly shell?: boolean | string;
  /** Windows: pass `args` unquoted (needed for `cmd.exe /c "script.bat"`). */
  readonly windowsVerbatimArguments?: boolean;
}

export interface RunOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** Kill the script's process group after this many milliseconds. */
  readonly timeoutMs: number;
  /** Time between SIGTERM and SIGKILL when killing. */
  readonly killGraceMs: number;
  /** Kill the script when this aborts. */
  readonly signal?: AbortSignal;
  /** Called for every line of output (without the line break). */
  readonly onLine: (stream: 'stdout' | 'stderr', line: string) => void;
  /** How many trailing lines of output to keep for error messages. */
  readonly tailLines?: number;
}

export interface RunResult {
  /** `exited`: ran to its end (see `exitCode`); `timeout`/`aborted`: killed; `spawn-error`: could not start. */
  readonly outcome: 'exited' | 'timeout' | 'aborted' | 'spawn-error';
  readonly exitCode: number | null;
  /** The signal that ended the script, if any. */
  readonly exitSignal: NodeJS.Signals | null;
  /** Why it could not start (ENOENT, EACCES…), for `spawn-error`. */
  readonly error?: NodeJS.ErrnoException;
  /** The last lines of output (stdout and stderr interleaved). */
  readonly tail: readonly string[];
  readonly durationMs: number;
  /** The script's pid (also its process group id on POSIX). */
  readonly pid?: number;
}

/** Longest line passed to `onLine`; longer ones are cut (a script printing megabytes without a newline). */
const MAX_LINE = 8 * 1024;
/** How long to wait for output to drain after the script exited (a background child may hold the pipe). */
const DRAIN_MS = 500;

/**
 * Run a script in its own process group, stream its output line by line, and kill the whole group
 * (SIGTERM, then SIGKILL after `killGraceMs`) on timeout or abort. Never rejects: the outcome says
 * what happened.
 */
export function runScript(command: Command, options: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const tailMax = options.tailLines ?? 20;
  const tail: string[] = [];
  const emit = (stream: 'stdout' | 'stderr', line: string) => {
    if (line.length > MAX_LINE) line = `${line.slice(0, MAX_LINE)}… (line cut)`;
    tail.push(line);
    if (tail.length > tailMax) tail.shift();
    options.onLine(stream, line);
  };

  return new Promise<RunResult>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(command.file, command.args, {
        cwd: options.cwd,
        env: options.env,
        // A new process group on POSIX, so a timeout kills the script and everything it started.
        detached: !isWindows,
        shell: command.shell ?? false,
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
        windowsVerbatimArguments: command.windowsVerbatimArguments ?? false,
      });
    } catch (err) {
      resolve({ outcome: 'spawn-error', exitCode: null, exitSignal: null, error: err as NodeJS.ErrnoException, tail, durationMs: 0 });
      return;
    }

    let outcome: RunResult['outcome'] = 'exited';
    let killing = false;
    let settled = false;
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    const pid = child.pid;
    const timers: NodeJS.Timeout[] = [];
    const flushers: Array<() => void> = [];

    const finish = (extra: Partial<RunResult> = {}) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      options.signal?.removeEventListener('abort', onAbort);
      for (const flush of flushers) flush();
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({ outcome, exitCode, exitSignal, tail, durationMs: Date.now() - started, ...(pid ? { pid } : {}), ...extra });
    };

    const terminate = (why: 'timeout' | 'aborted') => {
      if (killing || settled) return;
      killing = true;
      outcome = why;
      if (pid === undefined) return;
      killTree(pid, 'SIGTERM');
      timers.push(setTimeout(() => killTree(pid, 'SIGKILL'), options.killGraceMs).unref());
    };
    const onAbort = () => terminate('aborted');

    for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
      if (stream) flushers.push(splitLines(stream, (line) => emit(name, line)));
    }

    child.on('error', (err: NodeJS.ErrnoException) => {
      // Spawning failed (ENOENT, EACCES…): there is no process to wait for.
      if (child.pid === undefined || err.code === 'ENOENT' || err.code === 'EACCES') {
        outcome = 'spawn-error';
        finish({ error: err });
      }
    });

    child.once('exit', (code, signal) => {
      exitCode = code;
      exitSignal = signal;
      if (killing && pid !== undefined && !isWindows) {
        // The leader is gone; give the rest of its group the grace period, then SIGKILL what is left.
        const deadline = Date.now() + options.killGraceMs;
        const poll = () => {
          if (!groupAlive(pid)) return finish();
          if (Date.now() >= deadline) {
            killTree(pid, 'SIGKILL');
            return finish();
          }
          timers.push(setTimeout(poll, 25));
        };
        poll();
        return;
      }
      // Let the output drain; a background process that kept the pipe open must not hold us.
      let open = [child.stdout, child.stderr].filter((s) => s && !s.destroyed && !s.readableEnded).length;
      if (open === 0) return finish();
      const done = () => {
        open -= 1;
        if (open <= 0) finish();
      };
      child.stdout?.once('close', done);
      child.stderr?.once('close', done);
      timers.push(setTimeout(finish, DRAIN_MS));
    });

    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    timers.push(setTimeout(() => terminate('timeout'), options.timeoutMs));
  });
}

/** Feed a stream's text to `onLine` line by line; returns a function that emits a last unterminated line. */
function splitLines(stream: Readable, onLine: (line: string) => void): () => void {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let flushed = false;
  stream.on('data', (chunk: Buffer) => {
    pending += decoder.write(chunk);
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      onLine(pending.slice(0, nl).replace(/\r$/, ''));
      pending = pending.slice(nl + 1);
    }
    if (pending.length > MAX_LINE) {
      onLine(pending);
      pending = '';
    }
  });
  const flush = () => {
    if (flushed) return;
    flushed = true;
    pending += decoder.end();
    if (pending.length > 0) onLine(pending.replace(/\r$/, ''));
    pending = '';
  };
  stream.once('end', flush);
  return flush;
}

/** Signal a script and everything it started. */
function killTree(pid: number, signal: NodeJS.Signals): void {
  if (isWindows) {
    // No process groups: taskkill walks the child tree (/T) and forces it (/F).
    spawn('taskkill', ['/pid', String(pid), '/T', '/F'], { stdio: 'ignore', windowsHide: true }).on('error', () => undefined);
    return;
  }
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
