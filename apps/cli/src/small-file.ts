import type { Stats } from 'node:fs';
import { MAX_EXCLUDE_FILE, readSmallFile as readBounded, SmallFileError } from '@kiwi-backup/core';
import { UsageError } from './exit-codes.js';

/** Largest password file read: a password is its first line. */
export const MAX_PASSWORD_FILE = 1024 * 1024;

export interface SmallFileOptions {
  /** What the file is, for messages: `password file`, `exclude file`. */
  what: string;
  /** Largest size accepted, in bytes; a pipe that goes on longer is cut off there with an error. */
  max: number;
  /** Accept a pipe too (`--password-file <(pass show backup)`, `/dev/stdin` fed by a pipe). */
  pipe?: boolean;
  /** Called with the file's status once it is open (the password file's permission check). */
  onOpen?: (st: Stats) => void;
}

/**
 * Read a file the user named (a password file, an exclude file) with core's `readSmallFile`: a regular
 * file, or with `pipe` a FIFO too, of at most `max` bytes; anything else is refused before a byte is read.
 * Every failure is a usage error (exit 2) that names the file: `cannot read <what> <path>: <why>`.
 */
export async function readSmallFile(path: string, opts: SmallFileOptions): Promise<Buffer> {
  try {
    return await readBounded(path, opts);
  } catch (err) {
    throw new UsageError(`cannot read ${opts.what} ${path}: ${why(err, opts)}`);
  }
}

function why(err: unknown, opts: SmallFileOptions): string {
  if (err instanceof SmallFileError) {
    const { kind, size, max } = err.detail;
    if (err.problem === 'directory') return 'it is a directory';
    if (err.problem === 'kind') return `it is not a regular file${opts.pipe ? ' or a pipe' : ''} (${kind})`;
    return `it is larger than ${formatLimit(max)}${size !== undefined ? ` (${size} bytes)` : ''}`;
  }
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (code ?? String(err));
}

/**
 * An exclude file's text (`--exclude-file`, `backup.excludeFile`): a regular file of at most
 * {@link MAX_EXCLUDE_FILE}. Not a pipe: the walk reads the file again, and would find the pipe empty.
 */
export async function readExcludeFile(path: string): Promise<string> {
  return (await readSmallFile(path, { what: 'the exclude file', max: MAX_EXCLUDE_FILE })).toString('utf8');
}

function formatLimit(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}
