import { defineCommand, type ArgsDef, type CommandDef, type ParsedArgs } from 'citty';
import { assertKnownArgs, globalArgs, type GlobalArgs } from './args.js';
import { CliError, ExitCode, UsageError } from './exit-codes.js';
import { Session } from './session.js';
import { describeError } from './output.js';
import { isBrokenPipe, stdout } from './stdout.js';
import { GracefulStop, parseStopTimeout } from './daemon/signals.js';

type AllArgs<T extends ArgsDef> = T & typeof globalArgs & Partial<typeof stopArgs>;

/** Added to interruptible commands. */
const stopArgs = {
  'stop-timeout': {
    type: 'string',
    description: 'After SIGINT/SIGTERM/SIGHUP, give the clean stop (onBackupStop hooks) at most this long: seconds, or "90s", "2m" (default 60)',
  },
} as const satisfies ArgsDef;

export interface KiwiCommand<T extends ArgsDef> {
  meta: { name: string; description: string };
  args: T;
  /** Return an exit code (default 0). */
  run(ctx: { args: ParsedArgs<AllArgs<T>>; session: Session; signal: AbortSignal; stop: GracefulStop | undefined }): Promise<number | void>;
  /**
   * Long-running commands: SIGINT, SIGTERM and SIGHUP abort `signal` and the command stops cleanly (every
   * onBackupStop hook runs), however many signals follow; only `--stop-timeout` cuts that short.
   */
  interruptible?: boolean;
}

/**
 * Define a `kiwi` subcommand: adds the global options, refuses unknown options,
 * creates the {@link Session}, maps errors to exit codes and messages.
 */
export function kiwiCommand<T extends ArgsDef>(cmd: KiwiCommand<T>): CommandDef<AllArgs<T>> {
  const args = { ...cmd.args, ...globalArgs, ...(cmd.interruptible ? stopArgs : {}) } as AllArgs<T>;
  return defineCommand<AllArgs<T>>({
    meta: cmd.meta,
    args,
    async run({ args: parsed }) {
      let session: Session | undefined;
      let stop: GracefulStop | undefined;
      try {
        if (cmd.interruptible) {
          let stopTimeoutMs: number;
          try {
            stopTimeoutMs = parseStopTimeout((parsed as Record<string, unknown>)['stop-timeout']);
          } catch (err) {
            throw new UsageError((err as Error).message);
          }
          stop = new GracefulStop({
            stopTimeoutMs,
            reason: (sig) => new CliError(`interrupted by ${sig}`, ExitCode.Interrupted),
            log: (line) => {
              session?.out.clearProgress();
              try {
                process.stderr.write(`\n${line}\n`);
              } catch {
                // nobody reads stderr any more
              }
            },
          }).install();
        }
        assertKnownArgs(parsed as Record<string, unknown>, args);
        // A command's `--json-lines` (snapshots) is a JSON mode too: errors come as JSON lines.
        if ((parsed as Record<string, unknown>)['json-lines']) (parsed as GlobalArgs).json = true;
        session = await Session.create(parsed as GlobalArgs);
        const signal = stop?.signal ?? new AbortController().signal;
        const code = await cmd.run({ args: parsed, session, signal, stop });
        await session.out.end();
        process.exitCode = code ?? ExitCode.Ok;
      } catch (err) {
        const aborted = stop?.signal.aborted ?? false;
        if (isBrokenPipe(err) || (aborted && isBrokenPipe(stop?.signal.reason))) {
          // The reader of stdout went away (`kiwi ls latest | head -1`): that is how such a pipe ends.
          process.exitCode = ExitCode.Ok;
        } else {
          const code = aborted ? ExitCode.Interrupted : exitCodeFor(err);
          reportError(err, session, Boolean((parsed as GlobalArgs).json), Boolean((parsed as GlobalArgs).verbose));
          process.exitCode = code;
        }
      } finally {
        await session?.close();
        stop?.uninstall();
      }
    },
  });
}

/** Map an error to Kiwi's documented exit codes (by error name, so it works across package copies). */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  const name = (err as { name?: string } | null)?.name;
  switch (name) {
    case 'ConfigError':
    case 'UsageError':
    case 'PolicyError':
      return ExitCode.Usage;
    case 'RepositoryNotFoundError':
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

function reportError(err: unknown, session: Session | undefined, json: boolean, verbose: boolean): void {
  const message = describeError(err);
  const name = (err as { name?: string } | null)?.name ?? 'Error';
  if (json) {
    // Through the buffered stdout, after the lines printed before the error.
    try {
      stdout().write(`${JSON.stringify({ message_type: 'error', severity: 'fatal', error: name, message })}\n`);
    } catch {
      // stdout is gone (broken pipe): nowhere to report to
    }
    return;
  }
  session?.out.clearProgress();
  process.stderr.write(`kiwi: ${message}\n`);
  // Errors a backup ended with carry its result: their message says it all (a stack trace is noise).
  const fromBackup = (err as { backupResult?: unknown } | null)?.backupResult !== undefined;
  const known = err instanceof CliError || fromBackup || /^(ConfigError|UsageError|RepositoryNotFoundError|LockHeldError|WrongPasswordError|StorageError|PluginError|BackupAbortedError|IntegrityError|RepositoryExistsError|SnapshotNotFoundError|PolicyError)$/.test(name);
  if (verbose || !known) {
    if (err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  }
}
