/**
 * Loading a whole repository file — the config, a key, lock, index or snapshot file — within the
 * size a valid file of its kind can have (docs/security.md §4). The size is checked before a byte
 * is read: from the listing when the caller has one, else from a stat. A storage holding a 3 GB
 * file under a valid name must not make Kiwi allocate 3 GB (or crash trying): such a file is
 * damage, refused with an {@link IntegrityError} naming it and the limit, and each caller reports
 * it as it reports any other damaged file of that kind. The limit also goes with the load
 * (`LoadOptions.maxLength`), for a storage whose answer disagrees with its listing. Packs are never loaded whole: readers
 * take ranges of them.
 */
import type { FileType, Handle, Storage } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { IntegrityError } from './errors.js';
import { StorageError } from '../storage/errors.js';
import { MAX_CONFIG_FILE_SIZE, MAX_INDEX_FILE_SIZE, MAX_KEY_FILE_SIZE, MAX_LOCK_FILE_SIZE, MAX_SNAPSHOT_FILE_SIZE } from './limits.js';

/** The kinds of file that are read whole. */
export type WholeFileType = Exclude<FileType, 'data'>;

const LIMITS: Record<WholeFileType, { max: number; kind: string }> = {
  config: { max: MAX_CONFIG_FILE_SIZE, kind: 'a config file' },
  key: { max: MAX_KEY_FILE_SIZE, kind: 'a key file' },
  lock: { max: MAX_LOCK_FILE_SIZE, kind: 'a lock file' },
  index: { max: MAX_INDEX_FILE_SIZE, kind: 'an index file' },
  snapshot: { max: MAX_SNAPSHOT_FILE_SIZE, kind: 'a snapshot file' },
};

/** The largest stored file of a type that can be valid. */
export function maxFileSize(type: WholeFileType): number {
  return LIMITS[type].max;
}

/** Throws an {@link IntegrityError} naming the file when `size` bytes is more than any valid file of its type has. */
export function assertFileSize(handle: Handle & { type: WholeFileType }, size: number): void {
  const { max, kind } = LIMITS[handle.type];
  // (A size that is not a number, from a broken listing, is refused too.)
  if (size >= 0 && size <= max) return;
  const file = handlePath(handle);
  throw new IntegrityError(`${file}: ${size} bytes, more than ${kind} may have (${max}): the file is damaged`, { file });
}

/**
 * Load a whole file after checking its size: `size` from the caller's listing, else a stat. A
 * missing file rejects with the storage's not-found error, as a load would.
 */
export async function loadWholeFile(storage: Storage, handle: Handle & { type: WholeFileType }, size?: number): Promise<Buffer> {
  assertFileSize(handle, size ?? (await storage.stat(handle)).size);
  let bytes: Buffer;
  try {
    // The limit goes with the load too: an adapter that then learns a larger length (a server's
    // answer that disagrees with its listing) fails before allocating for it.
    bytes = await storage.load(handle, { maxLength: LIMITS[handle.type].max });
  } catch (err) {
    if (err instanceof StorageError && err.kind === 'integrity') {
      const file = handlePath(handle);
      throw new IntegrityError(`${file}: larger than ${LIMITS[handle.type].kind} may have (${LIMITS[handle.type].max}) when read: the file is damaged (${err.message})`, { file, cause: err });
    }
    throw err;
  }
  // Replaced since it was listed (only someone writing the storage does that): still refused.
  assertFileSize(handle, bytes.byteLength);
  return bytes;
}
