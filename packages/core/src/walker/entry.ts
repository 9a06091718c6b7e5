import type { BigIntStats } from 'node:fs';
import type { WalkEntryType, WalkOp } from './types.js';
import type { XattrList } from './scan.js';

/** The entry type of an lstat result. */
export function entryType(st: BigIntStats): WalkEntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  return 'blockdev';
}

/**
 * One file-system entry visited by {@link walk}. Paths are Buffers (exact bytes,
 * valid for every `fs` call, also for names that are not UTF-8); `path` and
 * `parentPath` are display strings (UTF-8 decoded, invalid bytes become U+FFFD):
 * never use them for file-system access.
 */
export class WalkEntry {
  /** @internal */
  _skip = false;
  /** @internal The symlink target read with the directory (native scanner); undefined when not read. */
  _link: Buffer | NodeJS.ErrnoException | undefined = undefined;
  /**
   * @internal The lstat of the directory this entry was listed in (undefined for a source): a file
   * opened by its path that is not the one listed is opened again in this directory (file-saver).
   */
  _dir: BigIntStats | undefined = undefined;
  /** @internal Extended attributes read with the directory: null none, undefined not read (see scan.ts). */
  _xattrs: XattrList | NodeJS.ErrnoException | null | undefined = undefined;
  private _path: string | undefined;

  constructor(
    /** Absolute path, exact bytes. */
    readonly pathBuf: Buffer,
    /** Last path component, exact bytes (empty for the source `/`). */
    readonly name: Buffer,
    /** Absolute path of the parent directory, exact bytes. */
    readonly parentPathBuf: Buffer,
    readonly type: WalkEntryType,
    /** `lstat` with `bigint: true` (ns times in `mtimeNs`/`ctimeNs`, `ino`, `dev`). */
    readonly stat: BigIntStats,
    /** 0 for a source root, 1 for its children, … */
    readonly depth: number,
    /** The absolute source path this entry belongs to. */
    readonly source: string,
  ) {}

  /** Absolute path for display. */
  get path(): string {
    return (this._path ??= this.pathBuf.toString('utf8'));
  }

  /** Parent directory path for display. */
  get parentPath(): string {
    return this.parentPathBuf.toString('utf8');
  }

  /**
   * On an `enter` event: don't read this directory; its `leave` event follows
   * at once. Call it before resuming the walk. (Same as `gen.next(true)`.)
   */
  skipChildren(): void {
    this._skip = true;
  }

  /** True once {@link skipChildren} was called. */
  get childrenSkipped(): boolean {
    return this._skip;
  }
}

/** A directory, before its children (which follow, then its `leave`). */
export interface WalkEnterEvent {
  kind: 'enter';
  entry: WalkEntry;
}
/** A directory, after all its children. */
export interface WalkLeaveEvent {
  kind: 'leave';
  entry: WalkEntry;
  /**
   * Why the children are missing or incomplete, if so: `skipped` (skipChildren),
   * `other-fs` (oneFileSystem), `error` (readdir failed; an error event came first).
   */
  incomplete?: 'skipped' | 'other-fs' | 'error';
}
/** A non-directory: file, symlink, fifo, socket or device. */
export interface WalkEntryEvent {
  kind: 'entry';
  entry: WalkEntry;
}
/** Something could not be read. The walk goes on. */
export interface WalkErrorEvent {
  kind: 'error';
  /** Display path of what failed. */
  path: string;
  pathBuf: Buffer;
  /** The `fs` error (with `code`, e.g. ENOENT, EACCES). */
  error: NodeJS.ErrnoException;
  op: WalkOp;
  source: string;
  /** Depth the failed entry would have had (for readdir/readIgnore: the directory's). */
  depth: number;
}

export type WalkEvent = WalkEnterEvent | WalkLeaveEvent | WalkEntryEvent | WalkErrorEvent;
