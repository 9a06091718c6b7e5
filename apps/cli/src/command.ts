import { defineCommand, type ArgsDef, type CommandDef, type ParsedArgs } from 'citty';
import { fixMallocThresholds } from '@kiwi-backup/core';
import { assertKnownArgs, globalArgs, type GlobalArgs } from './args.js';
import { CliError, ExitCode, UsageError } from './exit-codes.js';
import { escapeControl, maskMessage } from './format.js';
import { Session } from './session.js';
import { isBrokenPipe } from './stdout.js';
import { GracefulStop, parseStopTimeout } from './daemon/signals.js';
import { exitCodeFor, reportFailure } from './errors.js';

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
      // glibc's malloc would otherwise keep up to 64 MiB of freed memory after the key's scrypt (see core's native/malloc.ts).
      fixMallocThresholds();
      let session: Session | undefined;
      let stop: GracefulStop | undefined;
      const json = Boolean((parsed as GlobalArgs).json);
      const verbose = Boolean((parsed as GlobalArgs).verbose);
      // An error that nothing handled (a plug-in's promise rejected with no handler, an exception thrown in
      // its callback; or Kiwi's own bug) would end the process on the spot with a stack trace, skipping the
      // onBackupStop hooks that put a stopped database back. It stops the command cleanly instead (as a
      // signal does), and the command fails with exit 1 naming the error.
      const onStray = (err: unknown): void => {
        if (isBrokenPipe(err)) return; // stdout's reader went away: stdout.ts ends the command quietly
        const what = err instanceof Error ? err.message : String(err);
        const message = escapeControl(maskMessage(`internal error: ${what} (an error nothing handled, in a plug-in or in Kiwi)`, session?.repoUrl, session?.printableRepo()));
        const failure = new CliError(message, ExitCode.Failure, { cause: err });
        // --verbose shows where it came from, not where it was caught.
        if (err instanceof Error && err.stack) failure.stack = err.stack;
        if (stop) {
          stop.fail(failure, ExitCode.Failure);
          return;
        }
        reportError(failure, session, json, verbose);
        // Nothing here runs hooks or holds anything a later run cannot recover (a lock goes stale).
        process.exit(ExitCode.Failure);
      };
      process.on('unhandledRejection', onStray);
      process.on('uncaughtException', onStray);
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
            // Only a backup (and the daemon, which sets up its own) runs plug-ins' onBackupStop hooks.
            hooks: cmd.meta.name === 'backup' || cmd.meta.name === 'daemon',
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
        // A command that ended normally after a stray error stopped it (the daemon does) still failed.
        if (stop?.failure) throw stop.failure;
        process.exitCode = code ?? ExitCode.Ok;
      } catch (err) {
        const aborted = stop?.signal.aborted ?? false;
        if (isBrokenPipe(err) || (aborted && isBrokenPipe(stop?.signal.reason))) {
          // The reader of stdout went away (`kiwi ls latest | head -1`): that is how such a pipe ends.
          process.exitCode = ExitCode.Ok;
        } else if (stop?.failure) {
          // Stopped by an error nothing handled: that error, not what the stop made of the work, is the failure.
          reportError(stop.failure, session, json, verbose);
          process.exitCode = ExitCode.Failure;
        } else {
          const code = aborted ? ExitCode.Interrupted : exitCodeFor(err);
          reportError(err, session, json, verbose);
          process.exitCode = code;
        }
      } finally {
        await session?.close();
        stop?.uninstall();
        process.off('unhandledRejection', onStray);
        process.off('uncaughtException', onStray);
      }
    },
  });
}

export { exitCodeFor } from './errors.js';

function reportError(err: unknown, session: Session | undefined, json: boolean, verbose: boolean): void {
  session?.out.clearProgress();
  reportFailure(err, {
    json,
    verbose,
    ...(session ? { repo: session.printableRepo(), rawRepo: session.repoUrl, isDefaultRepo: session.isDefaultRepo } : {}),
  });
}
