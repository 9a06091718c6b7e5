/**
 * How a failed command is told to a person: one clear message per error kind, secrets masked,
 * control characters escaped, and no stack trace unless `--verbose` asks for one.
 */
import { CliError, ExitCode } from './exit-codes.js';
import { escapeControlKeepLines, maskMessage } from './format.js';
import { inspect } from 'node:util';
import { stdout } from './stdout.js';

/** What the reporter knows of the command that failed. */
export interface FailureContext {
  /** The repository as it may be printed (secrets masked), when the command got that far. */
  repo?: string;
  /** The raw repository location, replaced by `repo` wherever a message repeats it. */
  rawRepo?: string;
  /** The default repository of the data directory is in use. */
  isDefaultRepo?: boolean;
}

/** Map an error to Kiwi's documented exit codes (by error name, so it works across package copies). */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  const name = (err as { name?: string } | null)?.name;
  switch (name) {
    case 'ConfigError':
    case 'UsageError':
    case 'PolicyError':
    case 'PatternError':
      return ExitCode.Usage;
    case 'RepositoryNotFoundError':
    case 'RepositoryConfigMissingError':
      return ExitCode.RepositoryNotFound;
    case 'LockHeldError':
      return ExitCode.LockHeld;
    case 'WrongPasswordError':
      return ExitCode.WrongPassword;
    case 'SnapshotNotFoundError':
      return ExitCode.SnapshotNotFound;
    case 'BrokenPipeError':
      return ExitCode.Ok;
    case 'StorageError': {
      const kind = (err as { kind?: string }).kind;
      if (kind === 'config') return ExitCode.Usage;
      return ExitCode.Failure;
    }
    default:
      return ExitCode.Failure;
  }
}

const SYSCALL_REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'already exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
};

/** The message a person reads, without secrets or terminal control characters. */
export function failureMessage(err: unknown, ctx: FailureContext = {}): string {
  let message: string;
  const e = err as { name?: string; message?: string; code?: unknown; syscall?: unknown; path?: unknown; dest?: unknown } | null;
  const name = e?.name;
  if (name === 'RepositoryNotFoundError') {
    const where = ctx.repo ?? String((err as { location?: string }).location ?? '');
    message = ctx.isDefaultRepo
      ? `no repository at ${where}: run \`kiwi init\` to create one (or \`kiwi backup <paths>\`, which creates the default repository)`
      : `no repository at ${where}: run \`kiwi init\` to create one`;
  } else if (name === 'SnapshotNotFoundError') {
    message = `${e?.message ?? 'snapshot not found'}; \`kiwi snapshots\` lists them`;
  } else if (err instanceof Error && typeof e?.code === 'string' && typeof e.syscall === 'string' && /^E[A-Z]+$/.test(e.code)) {
    // A Node system error that reached the top: "mkdir /x: already exists", not "EEXIST: file already exists, mkdir '/x'".
    const reason = SYSCALL_REASONS[e.code] ?? e.message?.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*'$/, '') ?? e.code;
    const path = typeof e.path === 'string' ? ` ${e.path}` : '';
    message = `${e.syscall}${path}: ${reason}`;
  } else if (err instanceof Error) {
    message = err.message || err.name;
  } else {
    message = inspect(err);
  }
  // A repository URL with a secret in it (user:password@, ?query) as the user wrote it, wherever a message
  // quotes it, becomes the printable form. Only then: a relative local path (`repo`) is a plain word that
  // other parts of the message may contain ("no password for repository …").
  return escapeControlKeepLines(maskMessage(message, ctx.rawRepo, ctx.repo));
}

/**
 * Print a command's failure: `kiwi: <message>` on stderr (a JSON `error` line with `--json`), and
 * the stack trace only with `--verbose`.
 */
export function reportFailure(err: unknown, opts: FailureContext & { json: boolean; verbose: boolean; write?: (s: string) => void }): void {
  const message = failureMessage(err, opts);
  const name = (err as { name?: string } | null)?.name ?? 'Error';
  if (opts.json) {
    // Through the buffered stdout, after the lines printed before the error.
    try {
      stdout().write(`${JSON.stringify({ message_type: 'error', severity: 'fatal', error: name, message, exit_code: exitCodeFor(err) })}\n`);
    } catch {
      // stdout is gone (broken pipe): nowhere to report to
    }
    return;
  }
  const write = opts.write ?? ((s: string) => process.stderr.write(s));
  write(`kiwi: ${message}\n`);
  if (opts.verbose && err instanceof Error && err.stack) write(`${escapeControlKeepLines(maskMessage(err.stack, opts.rawRepo, opts.repo))}\n`);
}
