/**
 * Reading a file a user named (a config file, a password or exclude file) without trusting it to be
 * small: a regular file, or with `pipe` a FIFO too (`--config <(generate-config)`), of at most `max`
 * bytes. Anything else (`/dev/zero`, a terminal, a directory) is refused before a byte is read, and a
 * larger file, or a pipe or a growing file that goes on, is refused at the limit: such a file never
 * fills the memory. Callers turn the {@link SmallFileError} into their own message.
 */
import type { Stats } from 'node:fs';
import { open } from 'node:fs/promises';

/** Largest exclude file read (`--exclude-file`, `backup.excludeFile`): patterns, one a line (a million of them fit). */
export const MAX_EXCLUDE_FILE = 64 * 1024 * 1024;

export interface SmallFileOptions {
  /** Largest size accepted, in bytes. */
  max: number;
  /** Accept a pipe too. */
  pipe?: boolean;
  /** Called with the file's status once it is open and accepted (a password file's permission check). */
  onOpen?: (st: Stats) => void;
}

/**
 * Why a file was refused: `directory`; `kind`, not a regular file (nor a pipe, with `pipe`), with what
 * it is ({@link fileKind}); `size`, larger than `max`, with its size when the file said so up front
 * (a pipe or a growing file is only known to go past the limit).
 */
export class SmallFileError extends Error {
  constructor(
    readonly problem: 'directory' | 'kind' | 'size',
    readonly detail: { kind?: string; size?: number; max: number },
  ) {
    super(problem === 'directory' ? 'it is a directory' : problem === 'kind' ? `it is ${detail.kind}` : `it is larger than ${detail.max} bytes`);
    this.name = 'SmallFileError';
  }
}

/**
 * The bytes of `path` (see the module comment). Rejects with a {@link SmallFileError} for a file of
 * the wrong kind or size, and with the file system's own error (`ENOENT`, `EACCES`…) otherwise. When
 * the limit is passed, what was read is zeroed before the error (a password file).
 */
export async function readSmallFile(path: string, opts: SmallFileOptions): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw new SmallFileError('directory', { max: opts.max });
    if (!st.isFile() && !(opts.pipe === true && st.isFIFO())) throw new SmallFileError('kind', { kind: fileKind(st), max: opts.max });
    if (st.size > opts.max) throw new SmallFileError('size', { size: st.size, max: opts.max });
    opts.onOpen?.(st);
    // To the end in chunks (a pipe has no size; a file may grow): a byte past the limit is an error.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, opts.max + 1 - total));
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > opts.max) {
        for (const c of chunks) c.fill(0);
        throw new SmallFileError('size', { max: opts.max });
      }
    }
    return Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}

/** What a file that is not a regular one is, for messages: `a directory`, `a pipe`, `a character device`… */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a pipe';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}
