import type { Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { UsageError } from './exit-codes.js';

/** Largest password file read: a password is its first line. */
export const MAX_PASSWORD_FILE = 1024 * 1024;
/** Largest exclude file read: patterns, one a line (a million of them fit). */
export const MAX_EXCLUDE_FILE = 64 * 1024 * 1024;

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
 * Read a file the user named (a password file, an exclude file): a regular file, or with `pipe` a FIFO
 * too, of at most `max` bytes. Anything else (`/dev/zero`, a terminal, a directory) is refused before a
 * byte is read, and a larger file or a pipe that goes on is refused at the limit: a file named on the
 * command line or in the config never fills the memory. Every failure is a usage error (exit 2) that
 * names the file: `cannot read <what> <path>: <why>`.
 */
export async function readSmallFile(path: string, opts: SmallFileOptions): Promise<Buffer> {
  const fail = (why: string): never => {
    throw new UsageError(`cannot read ${opts.what} ${path}: ${why}`);
  };
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (code ?? String(err)));
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) fail('it is a directory');
    if (!st.isFile() && !(opts.pipe && st.isFIFO())) fail(`it is not a regular file${opts.pipe ? ' or a pipe' : ''} (${fileKind(st)})`);
    if (st.size > opts.max) fail(`it is larger than ${formatLimit(opts.max)} (${st.size} bytes)`);
    opts.onOpen?.(st);
    // To the end in chunks (a pipe has no size; a file may grow): a byte past the limit is an error.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, opts.max + 1 - total));
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(chunk, 0, chunk.length, null));
      } catch (err) {
        return fail((err as NodeJS.ErrnoException).code ?? String(err));
      }
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > opts.max) {
        for (const c of chunks) c.fill(0);
        fail(`it is larger than ${formatLimit(opts.max)}`);
      }
    }
    return Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}

/**
 * An exclude file's text (`--exclude-file`, `backup.excludeFile`): a regular file of at most
 * {@link MAX_EXCLUDE_FILE}. Not a pipe: the walk reads the file again, and would find the pipe empty.
 */
export async function readExcludeFile(path: string): Promise<string> {
  return (await readSmallFile(path, { what: 'the exclude file', max: MAX_EXCLUDE_FILE })).toString('utf8');
}

/** What a file that is not a regular one is, for messages. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a pipe';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

function formatLimit(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}
