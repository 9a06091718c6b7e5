/**
 * Opening the file the walk listed, not whatever its path leads to now.
 *
 * A file is read by its path some time after the walk listed it in its directory. O_NOFOLLOW
 * guards the last name only: if a directory above it was swapped for a symlink meanwhile (by a
 * local user who can write there), the path leads anywhere, and a root backup of `/home/someone`
 * would store, say, `/etc/ssh`'s host keys under that user's name. O_NONBLOCK keeps a file swapped
 * for a FIFO from blocking the open for ever (it changes nothing for a regular file's reads).
 *
 * The walk reads each directory through a descriptor checked to be the directory its parent listed
 * (walker/walk.ts), so the file it listed there is the right one. When the file opened by path is
 * that one (same device and inode), it is read. When it is not, the file was either replaced in
 * its directory (a log rotated between the walk and the read: the new file is what the directory
 * holds now, and it is read, as before) or reached through a swapped directory: the directory is
 * opened again, checked to be the one listed, and the file opened by its one name in it
 * (`/proc/self/fd/<directory>/<name>`). Without `/proc`, such a file is an error for that entry.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync } from 'node:fs';
import { anchorsAvailable, DIR_OPEN_FLAGS } from '../restore/anchors.js';
import { sameId } from '../walker/scan.js';

/** How a file of the backup is opened: read only, never through a final symlink, never blocking on a FIFO. */
export const FILE_OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | (fsConstants.O_NONBLOCK ?? 0);

/** Device and inode numbers (of the listed file or directory). */
export interface Identity {
  dev: bigint;
  ino: bigint;
}

/** A file that is not where the walk listed it; `op` names the step for the entry's error. */
export class NotListedError extends Error {
  readonly code = 'ECHANGED';
  constructor(message: string) {
    super(message);
    this.name = 'NotListedError';
  }
}

/** Whether `st` is the file or directory `id` (the addon gives numbers signed, Node's lstat unsigned). */
export function isSame(st: Identity, id: Identity): boolean {
  return sameId(st.ino, id.ino) && sameId(st.dev, id.dev);
}

/**
 * The file named `path` opened again in its directory, which must be `dir` (as the walk listed it):
 * a new descriptor (the caller closes the one it had), or a {@link NotListedError} when the
 * directory is not that one any more or cannot be checked. Other errors are the open's (ENOENT:
 * the file is gone).
 */
export function reopenInListedDir(path: Buffer, dir: Identity): number {
  const slash = path.lastIndexOf(0x2f);
  if (slash < 0 || !anchorsAvailable()) throw new NotListedError('the file was replaced after the walk listed it, and its directory cannot be checked here');
  const parent = slash === 0 ? Buffer.from('/') : path.subarray(0, slash);
  let dfd: number;
  try {
    dfd = openSync(parent, DIR_OPEN_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENOENT') throw directoryReplaced();
    throw err;
  }
  try {
    if (!isSame(fstatSync(dfd, { bigint: true }), dir)) throw directoryReplaced();
    return openSync(Buffer.concat([Buffer.from(`/proc/self/fd/${dfd}/`), path.subarray(slash + 1)]), FILE_OPEN_FLAGS);
  } finally {
    closeSync(dfd);
  }
}

function directoryReplaced(): NotListedError {
  return new NotListedError('its directory was replaced after the walk listed it (swapped for a symlink?): not read');
}
