import type { BigIntStats, Dirent } from 'node:fs';

/** What an entry is, from `lstat` (symlinks are never followed). */
export type WalkEntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

/** Which file-system call failed for an {@link WalkErrorEvent}. */
export type WalkOp = 'lstat' | 'readdir' | 'readIgnore';

/**
 * The file-system calls the walker makes. Tests inject failures through
 * {@link WalkOptions.fs}; the defaults are Node's `fs` (lstat with `bigint: true`,
 * readdir with `encoding: 'buffer', withFileTypes: true`).
 */
export interface WalkFs {
  lstat(path: Buffer): Promise<BigIntStats>;
  readdir(path: Buffer): Promise<Dirent<Buffer>[]>;
  readFile(path: Buffer): Promise<Buffer>;
  /** Synchronous lstat, used by the 'sync' and 'auto' stat modes. */
  lstatSync?(path: Buffer): BigIntStats;
  /** Synchronous readdir, used like `lstatSync`. */
  readdirSync?(path: Buffer): Dirent<Buffer>[];
}

/** Options of {@link walk}. */
export interface WalkOptions {
  /**
   * Exclude patterns (docs/patterns.md: gitignore syntax), matched relative to each source root
   * (`*.tmp`, `node_modules/`, `/build`, `!keep.tmp`). A pattern starting with
   * `/` that names a path inside a source (`/home/me/src/cache`) is taken as an
   * absolute path and rebased onto that source; inside another source it does
   * not apply; otherwise it is anchored at each source root (gitignore's
   * meaning). Matching is case-sensitive.
   */
  exclude?: readonly string[];
  /** Files holding more exclude patterns, one per line, same rules as `exclude`; a file that can't be read throws. */
  excludeFiles?: readonly string[];
  /**
   * Name of the per-directory ignore file (default `.kiwiignore`; `null` disables).
   * Its patterns apply, like a `.gitignore`, to the directory holding it and
   * below, relative to that directory; deeper files take precedence.
   */
  ignoreFileName?: string | null;
  /** Don't descend into directories on another device than their source root (the directory itself is still reported). */
  oneFileSystem?: boolean;
  /** Stops the walk: the generator throws `signal.reason`. */
  signal?: AbortSignal;
  /**
   * How entries are stat'ed. `async`: lstat on the thread pool, `concurrency`
   * at a time per directory (best on cold caches and network file systems).
   * `sync`: lstatSync (a few µs on a warm cache, ~3× faster overall here;
   * blocks the event loop, which gets a turn at least every 1000 entries).
   * `auto` (default): on Linux with the `@kiwi-backup/native-fs` addon (and no
   * replaced `fs` calls), each directory is read with the lstat of every entry
   * and the symlink targets in one threadpool job, and up to 4 subdirectories of
   * each directory (8 in all) are read ahead. Otherwise sync, switching to async
   * for the next 512 entries when sync calls turn slow (mean over 100 µs across 64
   * calls, or one over 10 ms: a cold cache or network file system). Directories
   * are read the same way.
   */
  statMode?: 'auto' | 'sync' | 'async';
  /**
   * With the native scanner ('auto' mode on Linux with `@kiwi-backup/native-fs`), whose entries'
   * extended attributes are read with their directory on the threadpool: `none` (default),
   * `non-files` (everything but regular files), `all`. The backup asks for them; entries carry them
   * to it (internal).
   */
  prefetchXattrs?: 'none' | 'non-files' | 'all';
  /** How many `lstat` calls run ahead concurrently within a directory (default 32). */
  concurrency?: number;
  /** Replaces file-system calls (tests: error injection). */
  fs?: Partial<WalkFs>;
}

/** Thrown (not reported) for a bad walk configuration: nested sources, unreadable exclude file. */
export class WalkConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WalkConfigError';
  }
}
