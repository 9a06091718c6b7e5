/** The restore's public shapes: options, result, progress, target errors. */
import type { EngineRepository, EntryError, Logger } from '../backup/types.js';
import type { Snapshot } from '../repository/types.js';
import type { ContentReaderOptions } from './content.js';
import type { OverwritePolicy } from './existing.js';
import type { UnmatchedPattern } from './select.js';

export interface RestoreProgress {
  filesRestored: number;
  dirsRestored: number;
  bytesWritten: number;
  errors: number;
  /** Snapshot path being restored. */
  current: string;
}

export interface RestoreOptions {
  repository: Pick<EngineRepository, 'loadTree' | 'loadBlob' | 'loadSnapshot' | 'loadIndex' | 'indexStats' | 'loadBlobs' | 'lookupBlob'> &
    Partial<Pick<EngineRepository, 'blobId' | 'adoptUnlistedPacks'>>;
  /** The snapshot, or its id (one of the two). */
  snapshot?: Snapshot;
  snapshotId?: string;
  /** Directory to restore into (created if missing). The snapshot's absolute paths are recreated below it. */
  target: string;
  /**
   * Restore only matching paths, in Kiwi's pattern language (docs/patterns.md,
   * gitignore's syntax): a plain name (`bash`, `*.txt`) matches at any depth;
   * a pattern with a `/` inside is relative to each backed-up path (and to the
   * snapshot root); one starting with `/` is an absolute path; `*`, `**`, `?`
   * and `[…]` glob; a matching directory brings everything below it. The
   * directories leading to a match are created with their stored metadata.
   */
  include?: string[];
  /** Leave out matching paths (same language; a matching directory leaves out everything below it). */
  exclude?: string[];
  /** `include`, matched case-insensitively. */
  iinclude?: string[];
  /** `exclude`, matched case-insensitively. */
  iexclude?: string[];
  /**
   * What to do where the target already holds an entry (see existing.ts):
   * `always`, `if-changed` (default: a file of the same size and mtime keeps
   * its content, only its metadata is set), `if-newer`, `never`.
   */
  overwrite?: OverwritePolicy;
  /** Remove entries of restored directories that the snapshot does not have (see existing.ts). */
  delete?: boolean;
  /** Read every restored file back and compare it with the snapshot; a difference is an error. */
  verify?: boolean;
  signal?: AbortSignal;
  /** Called at most every ~100 ms, and once at the end. */
  onProgress?: (progress: Readonly<RestoreProgress>) => void;
  /** Called for each entry that fails, as it happens (the first {@link MAX_LISTED} are also in the result). */
  onError?: (error: EntryError) => void;
  /** Called for each entry (or part of one) not restored by rule, as it happens. */
  onSkip?: (entry: EntryError) => void;
  /** Restore owners (uid/gid, numeric) with lchown/fchown. Default: true when running as root. */
  owners?: boolean;
  /** Entries without content to read (symlinks, empty files) written concurrently (default 8). */
  concurrency?: number;
  /** Tuning of the pack reads (see {@link ContentReaderOptions}); the defaults suit local and remote storage. */
  contentReader?: ContentReaderOptions;
  logger?: Logger;
}

export interface RestoreResult {
  filesRestored: number;
  dirsRestored: number;
  symlinksRestored: number;
  /** FIFOs, devices and sockets made. */
  specialsRestored: number;
  bytesWritten: number;
  /** Existing files that were already the snapshot's (`if-changed`): only their metadata was set. */
  filesUnchanged: number;
  /** Existing entries left as they were by the overwrite policy (`never`, `if-newer`). */
  kept: number;
  /** Entries removed: by `delete`, and directories in the way of a file. */
  deleted: number;
  /** Files read back and found equal to the snapshot (`verify`). */
  verified: number;
  /** Entries that failed (with the reason), the first {@link MAX_LISTED}; the rest was restored. */
  errors: EntryError[];
  /** How many entries failed (also those past the list's cap). */
  errorCount: number;
  /** Entries (or parts, such as extended attributes) not restored by rule, the first {@link MAX_LISTED}. */
  skipped: EntryError[];
  /** How many were not restored by rule. */
  skippedCount: number;
  /** Leftover temporary files of killed restores that were removed. */
  tempFilesRemoved: number;
  /** Patterns that matched nothing in the snapshot (a caller should treat them as an error). */
  unmatchedPatterns: UnmatchedPattern[];
}

/** A restore target that cannot be used (cannot be created, not a directory). */
export class RestoreTargetError extends Error {
  override readonly name = 'RestoreTargetError';
}

/** The error that stops a restore whose target is full (`err` is ENOSPC or EDQUOT), else undefined. */
export function targetFullError(path: string, err: unknown): RestoreTargetError | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return undefined;
  const what = code === 'ENOSPC' ? 'no space left on the file system' : 'the disk quota is exhausted';
  return new RestoreTargetError(
    `restore stopped: ${what} of the target (${code}, writing ${path}). Free space and run the restore again: what was restored stays, and files already up to date are not written again`,
    { cause: err },
  );
}

/** Errors and skipped entries kept in the result at most (the counts go on). */
export const MAX_LISTED = 1000;
