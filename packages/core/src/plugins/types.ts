import type { Readable } from 'node:stream';
import type { Stats } from 'node:fs';
import type { Middleware } from '../middleware/compose.js';
import type { RecoveryApi, UndoHandler } from './recovery.js';

/** The four moments a plug-in can act on. */
export const HOOK_NAMES = ['onServerStart', 'onBackupStart', 'onFile', 'onBackupStop'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** A logger scoped to one plug-in (or to the engine). Messages go to Kiwi's log, never credentials. */
export interface Logger {
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

/**
 * How a backup ended, as `onBackupStop` sees it:
 * `running` (before the end), `success`, `partial` (some sources unreadable),
 * `failure` (an error), `aborted` (a plug-in or the user aborted it), `interrupted` (SIGINT/SIGTERM).
 */
export type BackupStatus = 'running' | 'success' | 'partial' | 'failure' | 'aborted' | 'interrupted';

/** Live counters of a running backup. */
export interface BackupStats {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirsNew: number;
  dirsChanged: number;
  dirsUnmodified: number;
  /** Entries that could not be read (see `errors`). */
  errors: number;
  /** Bytes of file content read from disk. */
  bytesRead: number;
  /** Bytes of all files in the snapshot (logical size). */
  totalBytes: number;
  totalFiles: number;
  /** Blobs new to the repository, and their sizes before and after compression+encryption. */
  blobsNew: number;
  dataAdded: number;
  dataAddedPacked: number;
}

/** What a plug-in knows of the backup. Plug-ins may change `tags` and `metadata` before the snapshot is written. */
export interface BackupInfo {
  /** A random id of this run (not the snapshot id). */
  readonly id: string;
  /** Absolute source paths. */
  readonly sources: readonly string[];
  /** Printable repository location (no credentials). */
  readonly repository: string;
  readonly host: string;
  tags: string[];
  readonly dryRun: boolean;
  readonly stats: BackupStats;
  status: BackupStatus;
  /** The error that ended the backup, if any (set before `onBackupStop`). */
  error?: Error;
  /** The snapshot id once written (in `onBackupStop` after success/partial). */
  snapshotId?: string;
  /** Free-form data stored in the snapshot, keyed by plug-in name by convention. */
  metadata: Record<string, unknown>;
}

/** Content for a file: a stream factory (called once per read) or bytes. */
export type ContentSource = Buffer | Uint8Array | string | (() => Readable | AsyncIterable<Uint8Array> | Promise<Readable | AsyncIterable<Uint8Array>>);

export interface VirtualFileOptions {
  /** File mode bits (default 0o600). */
  mode?: number;
  /** Modification time (default: now). */
  mtime?: Date;
}

/** The context every hook gets. Per plug-in, `log` and `options` are the plug-in's own. */
export interface HookContext {
  /** Which hook is running. */
  readonly hook: HookName;
  /** The backup (undefined in `onServerStart`). */
  readonly backup: BackupInfo;
  /** A bag shared by all hooks and plug-ins of one backup. */
  readonly state: Record<string, unknown>;
  /** Logger scoped to the plug-in. */
  readonly log: Logger;
  /** The plug-in's options from the config. */
  readonly options: Record<string, unknown>;
  /** Aborted when the backup is aborted or interrupted. */
  readonly signal: AbortSignal;
  /** The Kiwi data directory. */
  readonly dataDir: string;
  /**
   * The recovery journal: `await ctx.recovery.register(action, data)` before changing the outside world
   * (stopping a service…), `handle.clear()` once it is put back. After a crash the next Kiwi start runs
   * the plug-in's `undo[action](data, ctx)` first. See docs/writing-plugins.md.
   */
  readonly recovery: RecoveryApi;
  /** Stop the backup with a reason; throws, so code after it does not run. Status becomes `aborted`. */
  abort(reason: string): never;
  /**
   * Add a virtual file to the snapshot (e.g. a database dump streamed in).
   * `path` is relative, with `/` separators; it appears under the snapshot's
   * virtual root (e.g. `mysql/app.sql`). Callable in `onBackupStart` and `onFile`.
   */
  addFile(path: string, content: ContentSource, options?: VirtualFileOptions): void;
}

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** One entry the walk visits. */
export interface FileEntry {
  /** Absolute path (as a string; non-UTF-8 bytes are replaced in it for display). */
  readonly path: string;
  readonly type: EntryType;
  readonly stat: Stats;
  /** Free-form data stored with the entry in the snapshot's tree. */
  metadata?: Record<string, unknown>;
}

export interface FileContext extends HookContext {
  readonly hook: 'onFile';
  readonly file: FileEntry;
  /** Leave this entry (and, for a directory, everything under it) out of the snapshot. */
  skip(): void;
  /** Store this content instead of the file's (regular files only). */
  replaceContent(content: ContentSource): void;
}

export type ServerContext = Omit<HookContext, 'backup' | 'addFile' | 'abort'> & { readonly hook: 'onServerStart' };

export type ServerStartHook = Middleware<ServerContext>;
export type BackupHook = Middleware<HookContext>;
export type FileHook = Middleware<FileContext>;

/** What a plug-in provides: any subset of the four hooks. */
export interface PluginHooks {
  onServerStart?: ServerStartHook;
  onBackupStart?: BackupHook;
  onFile?: FileHook;
  onBackupStop?: BackupHook;
}

export interface PluginDefinition extends PluginHooks {
  /** The plug-in's name (default: its folder or package name). */
  name?: string;
  /**
   * Undo handlers of the actions this plug-in registers with `ctx.recovery.register(action, data)`,
   * by action name. Kiwi runs them at its next start for entries a crash left behind.
   */
  undo?: Record<string, UndoHandler>;
}

/**
 * What a plug-in module exports (as `default`, or the module itself):
 * either the hooks, or a factory that gets the plug-in's options and returns them.
 */
export type PluginModule = PluginDefinition | ((options: Record<string, unknown>, api: PluginApi) => PluginDefinition | Promise<PluginDefinition>);

export interface PluginApi {
  readonly name: string;
  readonly dataDir: string;
  /** The plug-in's own folder in the data directory (`<datadir>/plugins/<name>`). */
  readonly pluginDir: string;
  readonly log: Logger;
}

/** Identity helper that gives a plug-in its types. */
export function definePlugin<T extends PluginModule>(plugin: T): T {
  return plugin;
}
