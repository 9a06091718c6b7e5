/** What a backup is given and what it gives back (see backup.ts). */
import type { BackupStats, BackupStatus, ContentSource, Logger } from '../plugins/types.js';
import type { Snapshot } from '../repository/types.js';
import type { WalkOptions } from '../walker/index.js';
import type { PluginRuntime } from '../plugins/runtime.js';
import type { EngineRepository, EntryError, ProgressFn } from './types.js';

/** Kiwi's version, recorded in snapshots. */
export const PROGRAM_VERSION = 'kiwi 0.1.0';

export interface BackupOptions {
  repository: EngineRepository;
  /** Paths to back up (made absolute; nested and duplicate sources are folded into their outermost source). */
  sources: string[];
  /** Exclude patterns (gitignore syntax). */
  exclude?: string[];
  /** Files of exclude patterns. */
  excludeFiles?: string[];
  /** Do not cross file-system boundaries below each source. */
  oneFileSystem?: boolean;
  /** Do everything but write to the repository (blobs are hashed and counted, no snapshot is written). */
  dryRun?: boolean;
  tags?: string[];
  /** Host name recorded in the snapshot (default: `os.hostname()`). */
  host?: string;
  /** The snapshot's time (default: when the backup starts); restic's `--time`, to import old backups or test policies. */
  time?: Date;
  /**
   * Parent snapshot for change detection: a snapshot id, `null` for none, or
   * `undefined` for the latest snapshot with the same host and paths.
   */
  parent?: string | null;
  /** The plug-in runtime; without it no hooks run. */
  plugins?: PluginRuntime;
  /** Aborting it interrupts the backup (status `interrupted`, no snapshot written). */
  signal?: AbortSignal;
  logger?: Logger;
  /** Live progress, at most every ~100 ms, plus once at the end. */
  onProgress?: ProgressFn;
  /** Called for each entry that could not be backed up, as it happens (also listed in the result). */
  onError?: (error: EntryError) => void;
  /** Files read concurrently (default 8). */
  concurrency?: number;
  /**
   * File saver threads that read, chunk, hash, compress and encrypt files off the main thread
   * (default: one per core, at most 4; 0: everything on the main thread). The same data gives the
   * same blobs and trees whatever the number.
   */
  workers?: number;
  /** Printable repository location for plug-ins (default: `repository.location`). */
  repositoryLocation?: string;
  /** Replaces the walker's file-system calls (tests: error injection). */
  walkFs?: WalkOptions['fs'];
  /**
   * Files stored besides (or instead of) the sources, as a plug-in's `ctx.addFile` stores them (at
   * the top of the root tree under their relative path, e.g. `stdin`). Unlike a plug-in's, a file
   * whose content cannot be read (its stream errors: a command that failed) fails the backup, and
   * no snapshot is written. With no `sources`, the snapshot holds only these, and its `paths` are
   * `/<path>` of each (`kiwi backup --stdin`).
   */
  files?: Array<{ path: string; content: ContentSource; mode?: number; mtime?: Date }>;
}

export interface BackupResult {
  /** The snapshot written (absent for dry runs and failed runs). */
  snapshotId?: string;
  snapshot?: Snapshot;
  /** The parent snapshot used for change detection, if any. */
  parentId?: string;
  status: BackupStatus;
  stats: BackupStats;
  /** Entries that could not be backed up, with the reason. */
  errors: EntryError[];
  /** Warnings (e.g. a file that changed while it was read). */
  warnings: EntryError[];
  /** Errors thrown by `onBackupStop` plug-ins (the backup's own result stands). */
  stopErrors: Error[];
}

/** Thrown by {@link runBackup} when its `signal` aborted the run. */
export class BackupInterruptedError extends Error {
  override readonly name = 'BackupInterruptedError';
  constructor(reason?: unknown) {
    super(`backup interrupted${reason instanceof Error ? `: ${reason.message}` : typeof reason === 'string' ? `: ${reason}` : ''}`);
  }
}

/**
 * A failed, aborted or interrupted backup rejects with its original error
 * (after `onBackupStop` ran), with the run's result attached as `backupResult`.
 */
export interface ErrorWithBackupResult extends Error {
  backupResult?: BackupResult;
}

export function emptyStats(): BackupStats {
  return {
    filesNew: 0,
    filesChanged: 0,
    filesUnmodified: 0,
    dirsNew: 0,
    dirsChanged: 0,
    dirsUnmodified: 0,
    errors: 0,
    bytesRead: 0,
    totalBytes: 0,
    totalFiles: 0,
    blobsNew: 0,
    dataAdded: 0,
    dataAddedPacked: 0,
  };
}

