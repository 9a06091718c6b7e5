/** The local adapter's errors: Node's file-system errors as `StorageError`s that name the path. */
import { StorageError } from '@kiwi-backup/core';

/** Turn a Node file-system error into a `StorageError` whose message names the path. */
export function mapError(err: unknown, op: string, path: string): StorageError {
  if (err instanceof StorageError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const detail = e instanceof Error ? e.message : String(err);
  switch (code) {
    case 'ENOENT':
      return new StorageError(`${op} ${path}: no such file`, { kind: 'not-found', location: path, cause: err });
    case 'EACCES':
    case 'EPERM':
      return new StorageError(`${op} ${path}: permission denied (${code})`, { kind: 'permission', location: path, cause: err });
    case 'EROFS':
      return new StorageError(`${op} ${path}: the file system is read-only`, { kind: 'permission', location: path, cause: err });
    case 'ENOSPC':
      return new StorageError(`${op} ${path}: no space left on the device`, { kind: 'other', location: path, cause: err });
    case 'EDQUOT':
      return new StorageError(`${op} ${path}: disk quota exceeded`, { kind: 'other', location: path, cause: err });
    case 'EMFILE':
    case 'ENFILE':
    case 'EAGAIN':
    case 'EBUSY':
    case 'ETIMEDOUT':
      return new StorageError(`${op} ${path}: ${detail}`, { kind: 'transient', location: path, cause: err });
    case 'ENOTDIR':
    case 'EISDIR':
      return new StorageError(`${op} ${path}: a path component has the wrong type (${code})`, {
        kind: 'other',
        location: path,
        cause: err,
      });
    default:
      return new StorageError(`${op} ${path}: ${detail}`, { kind: 'other', location: path, cause: err });
  }
}

/** A FIFO, directory, device… where a repository file should be: as `list` sees it, no such file. */
export function notRegular(op: string, path: string): StorageError {
  return new StorageError(`${op} ${path}: not a regular file`, { kind: 'not-found', location: path });
}
