import { defineCommand, type ArgsDef, type CommandDef, type ParsedArgs } from 'citty';
import { fixMallocThresholds } from '@kiwi-backup/core';
import { assertKnownArgs, globalArgs, type GlobalArgs } from './args.js';
import { CliError, ExitCode, UsageError } from './exit-codes.js';
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

export { exitCodeFor } from './errors.js';

function reportError(err: unknown, session: Session | undefined, json: boolean, verbose: boolean): void {
  session?.out.clearProgress();
  reportFailure(err, {
    json,
    verbose,
    ...(session ? { repo: session.printableRepo(), rawRepo: session.repoUrl, isDefaultRepo: session.isDefaultRepo } : {}),
  });
}
