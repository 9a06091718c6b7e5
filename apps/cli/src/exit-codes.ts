/**
 * Kiwi's exit codes (documented in the README). Scripts and cron jobs rely on them.
 */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** Failure (backup, restore or check found a problem, or an unexpected error). */
  Failure: 1,
  /** Usage or configuration error (bad flag, broken config, no password). */
  Usage: 2,
  /**
   * Partial: a backup wrote a snapshot but some sources could not be read; a restore brought back
   * everything it could, but some entries cannot be made here (devices as non-root, ...). Each is reported.
   */
  Partial: 3,
  /** The repository does not exist. */
  RepositoryNotFound: 10,
  /** The repository is locked by another process. */
  LockHeld: 11,
  /** Wrong password (no key in the repository opens with it). */
  WrongPassword: 12,
  /** No snapshot matches a reference (id prefix or `latest` with its filters), or an id prefix is ambiguous. */
  SnapshotNotFound: 13,
  /** Interrupted by SIGINT or SIGTERM. */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * What each exit code means, for `kiwi --help`, the man page and docs/cli.md (the README has the same table).
 * A `Record` over every code: a code added above without a line here does not type-check.
 */
export const EXIT_CODE_MEANINGS: Record<ExitCode, string> = {
  [ExitCode.Ok]: 'success',
  [ExitCode.Failure]: 'failure (backup failed, restore or check found errors, storage failed)',
  [ExitCode.Usage]: 'usage or configuration error (unknown option, missing argument, broken config, no password)',
  [ExitCode.Partial]: 'partial: a backup saved a snapshot but some files could not be read, a restore could not make some entries here, or a repair finished but some data is lost (each is reported)',
  [ExitCode.RepositoryNotFound]: 'repository not found, or its config file is missing',
  [ExitCode.LockHeld]: 'repository locked by another process',
  [ExitCode.WrongPassword]: 'wrong password',
  [ExitCode.SnapshotNotFound]: 'no snapshot matches the id given, or the id prefix is ambiguous',
  [ExitCode.Interrupted]: 'interrupted (SIGINT or SIGTERM)',
};

/** An error that ends the command with a given exit code and a clean message (no stack). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.Usage);
    this.name = 'UsageError';
  }
}
