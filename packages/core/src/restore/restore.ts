import {
  close as fsClose,
  closeSync,
  constants as fsConstants,
  fchmod as fsFchmod,
  fchmodSync,
  fchown as fsFchown,
  fchownSync,
  fstat as fsFstat,
  open as fsOpen,
  openSync,
  renameSync,
  unlinkSync,
  write as fsWrite,
  writeSync,
} from 'node:fs';
import { lchown, link, lstat, mkdir, realpath, rename, symlink, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { resolve as resolvePath } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import type { BlobId, Node, Snapshot, Tree } from '../repository/types.js';
import { invalidNodeCount, invalidNodes, type InvalidNode } from '../repository/validate.js';
import type { EngineRepository, EntryError, Logger } from '../backup/types.js';
import { Limiter } from '../backup/limiter.js';
import { nodeNameBytes } from '../backup/node.js';
import { ContentError, ContentReader, type ContentReaderOptions, type ContentSink, type ContentSource } from './content.js';
import { lsetTimesNs, setTimesNs, setTimesNsSync } from './times.js';
import { TreeLoader } from '../snapshot-ops/tree-loader.js';
import { makeDirectory } from '../fsutil/make-directory.js';

export interface RestoreProgress {
  filesRestored: number;
  dirsRestored: number;
  bytesWritten: number;
  errors: number;
  /** Snapshot path being restored. */
  current: string;
}

export interface RestoreOptions {
  repository: Pick<EngineRepository, 'loadTree' | 'loadBlob' | 'loadSnapshot' | 'loadIndex' | 'indexStats' | 'loadBlobs' | 'lookupBlob'>;
  /** The snapshot, or its id (one of the two). */
  snapshot?: Snapshot;
  snapshotId?: string;
  /** Directory to restore into (created if missing). The snapshot's absolute paths are recreated below it. */
  target: string;
  /**
   * Restore only matching paths. Each pattern is matched against the snapshot
   * path relative to its root (`/home/me/docs` and `home/me/docs` are the same)
   * with gitignore rules: a pattern with a `/` (other than a trailing one) is
   * anchored at the root, one without matches a name at any depth; `*`, `**`,
   * `?` and `[…]` glob; a matching directory brings everything below it.
   * Directories leading to a match are created with their stored metadata.
   */
  include?: string[];
  signal?: AbortSignal;
  /** Called at most every ~100 ms, and once at the end. */
  onProgress?: (progress: Readonly<RestoreProgress>) => void;
  /** Called for each entry that fails, as it happens (also listed in the result). */
  onError?: (error: EntryError) => void;
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
  bytesWritten: number;
  /** Entries that failed (with the reason); the rest was restored. */
  errors: EntryError[];
  /** Entries not restored by rule (sockets; FIFOs/devices that could not be created). */
  skipped: EntryError[];
}

/** Thrown for an integrity or load failure of one file's content; names the file and the blob. */
export class RestoreFileError extends Error {
  override readonly name = 'RestoreFileError';
  constructor(
    readonly path: string,
    readonly blobId: string | undefined,
    cause: unknown,
  ) {
    super(`${path}: ${blobId ? `blob ${blobId}: ` : ''}${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
const REOPEN_FLAGS = fsConstants.O_WRONLY | O_NOFOLLOW;
const O_DIRECTORY = fsConstants.O_DIRECTORY ?? 0;
const FILE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | O_NOFOLLOW;
const DIR_FLAGS = fsConstants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
const SLASH = 0x2f;
// Descriptor-based calls without FileHandle objects (cheaper per file on the hot path).
const openFd = promisify(fsOpen) as (path: Buffer, flags: number, mode: number) => Promise<number>;
const closeFd = promisify(fsClose);
const fchmodFd = promisify(fsFchmod);
const fchownFd = promisify(fsFchown);
const fstatFd = promisify(fsFstat);
function writeFd(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
/** Writes all of `buf` at file position `pos`. */
async function writeAllAt(fd: number, buf: Buffer, pos: number): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await writeFd(fd, buf, off, buf.length - off, pos + off);
}

/** The process umask, read once (applied by open(2) to the mode of new files). */
let umaskCache: number | undefined;
function currentUmask(): number {
  if (umaskCache === undefined) {
    const m = process.umask(0o022);
    process.umask(m);
    umaskCache = m;
  }
  return umaskCache;
}
const PROGRESS_INTERVAL_MS = 100;
/** Sub-directory trees loaded ahead of the traversal (and their files planned). */
const TREE_PREFETCH = 4;
/** Stored bytes of tree blobs read ahead of the traversal and not yet taken. */
const TREE_AHEAD_BYTES = 4 * 1024 * 1024;
/** Files up to this size (one blob) are written with synchronous calls (see `restoreFile`). */
const SYNC_WRITE_MAX = 256 * 1024;
/** A synchronous write slower than this switches to asynchronous writes for a while. */
const SYNC_SLOW_MS = 20;
const ASYNC_CREDITS = 200;
/** Partly written multi-blob files kept open at most (past this, a file is closed between its blobs). */
const MAX_OPEN_FILES = 128;

/**
 * Validates a node name from a tree: raw bytes, never empty, `.`, `..`, and
 * never containing `/` or NUL. Returns the bytes or throws.
 */
export function safeName(node: Pick<Node, 'name' | 'nameRaw'>): Buffer {
  const raw = nodeNameBytes(node);
  if (raw.length === 0) throw new Error('empty file name in tree');
  if ((raw.length === 1 && raw[0] === 0x2e) || (raw.length === 2 && raw[0] === 0x2e && raw[1] === 0x2e)) {
    throw new Error(`refusing file name '${raw.toString()}' in tree`);
  }
  if (raw.includes(SLASH)) throw new Error(`refusing file name with '/': ${JSON.stringify(raw.toString())}`);
  if (raw.includes(0)) throw new Error(`refusing file name with NUL: ${JSON.stringify(raw.toString())}`);
  return raw;
}

/** Float-second conversion for Node's utimes (the fallback without the native addon). */
export { nsToUtimeSeconds } from './times.js';

function hasGlob(p: string): boolean {
  return /[*?[\]!\\]/.test(p);
}

/** Compiled include patterns. */
class IncludeFilter {
  readonly ig: Ignore;
  /** Plain path patterns (no glob), relative, without trailing '/'; null if any pattern globs. */
  readonly plain: string[] | null;
  constructor(patterns: string[]) {
    const cleaned = patterns.map((p) => p.trim()).filter((p) => p !== '');
    this.ig = ignore().add(cleaned.map((p) => (p.startsWith('/') ? p : p.includes('/') && !p.endsWith('/') ? '/' + p : p)));
    this.plain = cleaned.some(hasGlob) ? null : cleaned.map((p) => p.replace(/^\/+/, '').replace(/\/+$/, ''));
  }
  /** True when `rel` (relative snapshot path) or one of its ancestors matches. */
  matches(rel: string, isDir: boolean): boolean {
    if (rel === '') return false;
    return this.ig.ignores(isDir ? rel + '/' : rel);
  }
  /** False only when nothing below directory `rel` can match (lets the restore skip loading its trees). */
  mayContain(rel: string): boolean {
    if (this.plain === null) return true;
    if (rel === '') return true;
    return this.plain.some((p) => p === rel || p.startsWith(rel + '/') || rel.startsWith(p + '/'));
  }
}

/** A directory of the restore. */
interface DirState {
  fsPath: Buffer;
  snapPath: string;
  node: Node | undefined;
  parent: DirState | undefined;
  /** Resolves when the directory exists (lazily created when something in it is restored). */
  created: Promise<void> | undefined;
  /** True once `created` has resolved. */
  ready: boolean;
}

/** A file whose content the {@link ContentReader} delivers. */
interface FileTask {
  node: Node;
  fsPath: Buffer;
  snapPath: string;
  dir: DirState;
  /** Temporary name, once created. */
  tmp: Buffer | undefined;
  /** Open descriptor of `tmp` (closed between blobs when too many files are open). */
  fd: number | undefined;
  /** Inode of `tmp`, recorded when it is closed early (checked when it is reopened). */
  ino: number | undefined;
  written: number;
}

/** A tree's entries with their names validated. */
interface Listing {
  /** `raw`: the validated name bytes, or undefined with `err` saying why the name is refused. */
  items: Array<{ node: Node; raw: Buffer | undefined; err?: unknown }>;
  /** How often each raw name occurs (duplicates are all rejected). */
  counts: Map<string, number>;
  /** Stored entries the tree validator refused (not in `items`): each is reported as an error. */
  invalid?: readonly InvalidNode[];
  /** How many of those there are in all (only the first 1000 are listed). */
  invalidCount?: number;
}

/** {@link listNodes} of a loaded tree, with the entries its validator refused. */
function listTree(tree: Tree): Listing {
  const listing = listNodes(tree.nodes);
  if (invalidNodeCount(tree) > 0) {
    listing.invalid = invalidNodes(tree);
    listing.invalidCount = invalidNodeCount(tree);
  }
  return listing;
}

function listNodes(nodes: Node[]): Listing {
  const counts = new Map<string, number>();
  const items = nodes.map((node) => {
    try {
      const raw = safeName(node);
      const k = raw.toString('latin1');
      counts.set(k, (counts.get(k) ?? 0) + 1);
      return { node, raw };
    } catch (err) {
      return { node, raw: undefined, err };
    }
  });
  return { items, counts };
}

/**
 * Restores a snapshot (or the parts matched by `include`) into `target`.
 *
 * Every blob is verified by the repository before it is written. A file whose
 * content fails to load is written under a temporary name and removed, never
 * renamed into place; it is reported in `errors` (naming the file, the blob
 * and the repository's reason) and the others are restored.
 *
 * Safety: names from trees are validated (no empty, `.`, `..`, `/`, NUL;
 * duplicates rejected), directories are created with `mkdir` and confirmed
 * with `lstat` (a symlink in their place is removed, never followed), files
 * are created with O_EXCL|O_NOFOLLOW under a temporary name and renamed into
 * place, and metadata of directories is set through an O_NOFOLLOW descriptor.
 * Node has no `openat`, so a concurrent attacker with write access to the
 * target could still race a check; restore into a directory only you control.
 *
 * Metadata: modes (after content; directories after their children), mtimes
 * exact to the nanosecond through `@kiwi-backup/native-fs` (futimens /
 * utimensat; without the addon, e.g. on Windows, Node's float-second utimes
 * keeps them to the microsecond; atime is set to the mtime), symlink mtimes
 * without following the link, owners
 * (numeric uid/gid) when `owners`. Sockets are skipped; FIFOs and devices are
 * skipped too (Node has no mkfifo/mknod) and listed in `skipped`. Hard links:
 * the names of a file that had several (`links`, same `dev` and `inode` in the
 * snapshot) are linked to the first one restored; extended attributes are not
 * stored.
 *
 * Performance: sub-directory trees are loaded ahead in batches; file content
 * is read pack by pack (see `content.ts`): the files met by the traversal are
 * planned in windows, each pack's needed blobs come in one or a few ranged
 * reads, and each blob is read once per window and written to every file (and
 * offset) that uses it. Small files are written with synchronous calls (async
 * again when the disk turns out slow). A repository without `lookupBlob` and
 * `loadBlobs` (a stand-in in tests) is read blob by blob, file by file.
 */
export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  const repo = options.repository;
  if (repo.loadIndex && repo.indexStats && !repo.indexStats().loaded) await repo.loadIndex();
  let snapshot = options.snapshot;
  if (!snapshot) {
    if (!options.snapshotId) throw new TypeError('restoreSnapshot: snapshot or snapshotId is required');
    snapshot = await repo.loadSnapshot(options.snapshotId);
  }
  const r = new RestoreRun(options, snapshot);
  return r.run();
}

class RestoreRun {
  readonly result: RestoreResult = {
    filesRestored: 0,
    dirsRestored: 0,
    symlinksRestored: 0,
    bytesWritten: 0,
    errors: [],
    skipped: [],
  };
  readonly limiter: Limiter;
  /** Reads file content pack by pack (undefined: the repository cannot; files load blob by blob). */
  readonly content: ContentReader<FileTask> | undefined;
  readonly trees: TreeLoader;
  readonly owners: boolean;
  readonly filter: IncludeFilter | undefined;
  readonly signal: AbortSignal | undefined;
  lastProgress = 0;
  currentPath = '';
  fatal: unknown;
  readonly euid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
  readonly egid = typeof process.getegid === 'function' ? process.getegid() : -1;

  constructor(
    readonly opts: RestoreOptions,
    readonly snapshot: Snapshot,
  ) {
    this.limiter = new Limiter(Math.max(1, opts.concurrency ?? 8));
    const repo = opts.repository;
    this.content = undefined;
    if (repo.loadBlobs && repo.lookupBlob) {
      const source = {
        lookupBlob: repo.lookupBlob.bind(repo),
        loadBlobs: repo.loadBlobs.bind(repo),
      } satisfies ContentSource;
      const sink: ContentSink<FileTask> = {
        writeWhole: (f, data) => this.writeWhole(f, data),
        writeAt: (f, data, offset) => this.writeAt(f, data, offset),
        complete: (f) => this.completeFile(f),
        discard: (f) => this.discardFile(f),
      };
      this.content = new ContentReader(source, sink, opts.contentReader);
    }
    this.filter = opts.include && opts.include.length > 0 ? new IncludeFilter(opts.include) : undefined;
    this.trees = new TreeLoader(repo, TREE_AHEAD_BYTES, this.filter === undefined);
    this.owners = opts.owners ?? (typeof process.getuid === 'function' && process.getuid() === 0);
    this.signal = opts.signal;
  }

  async run(): Promise<RestoreResult> {
    const target = resolvePath(this.opts.target);
    await makeDirectory(target);
    const real = await realpath(target);
    const st = await lstat(real);
    if (!st.isDirectory()) throw new Error(`restore target ${target} is not a directory`);
    const root: DirState = {
      fsPath: Buffer.from(real, 'utf8'),
      snapPath: '/',
      node: undefined,
      parent: undefined,
      created: Promise.resolve(),
      ready: true,
    };
    const onAbort = () => void this.stopContent(this.signal?.reason);
    this.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const { done } = await this.restoreTree(this.snapshot.tree, root, this.filter === undefined);
      // The traversal is over: what is still planned is read now.
      await this.content?.finish();
      await done;
      // Stopped after the traversal (while content was still being written): the restore is incomplete.
      this.signal?.throwIfAborted();
    } catch (err) {
      await this.stopContent(err);
      throw err;
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
      this.trees.close();
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    }
    if (this.fatal !== undefined) throw this.fatal;
    this.opts.onProgress?.({ ...this.counters(), current: '' });
    return this.result;
  }

  counters(): Omit<RestoreProgress, 'current'> {
    return {
      filesRestored: this.result.filesRestored,
      dirsRestored: this.result.dirsRestored,
      bytesWritten: this.result.bytesWritten,
      errors: this.result.errors.length,
    };
  }

  progress(path: string): void {
    this.currentPath = path;
    const cb = this.opts.onProgress;
    if (!cb) return;
    const now = Date.now();
    if (now - this.lastProgress >= PROGRESS_INTERVAL_MS) {
      this.lastProgress = now;
      cb({ ...this.counters(), current: path });
    }
  }

  error(path: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const e = { path, message };
    this.result.errors.push(e);
    if (this.opts.onError) this.opts.onError(e);
    else this.opts.logger?.error(`restore ${path}: ${message}`);
  }

  /** Tree loads started ahead of the traversal (bounded), by tree id. */
  readonly prefetched = new Map<BlobId, Promise<Listing>>();
  /** File writes running (awaited before the restore returns or throws). */
  readonly inflight = new Set<Promise<void>>();
  prefetching = 0;

  loadListing(treeId: BlobId): Promise<Listing> {
    const p = this.prefetched.get(treeId);
    if (p) {
      this.prefetched.delete(treeId);
      return p;
    }
    return this.trees.take(treeId).then(listTree);
  }

  /** Starts loading (and listing) the trees of upcoming sub-directories, at most {@link TREE_PREFETCH} at once. */
  prefetch(ids: BlobId[]): void {
    for (const id of ids) {
      if (this.prefetching >= TREE_PREFETCH) return;
      if (this.prefetched.has(id)) continue;
      this.prefetching++;
      const p = this.trees
        .take(id)
        .then(listTree)
        .finally(() => this.prefetching--);
      p.catch(() => undefined);
      this.prefetched.set(id, p);
    }
  }

  /**
   * Restores the entries of tree `treeId` into directory `dir`. `included`:
   * whether `dir` itself is included (then so is everything below it).
   * Resolves once the whole subtree has been traversed and its files started
   * (the traversal goes on while files are written); `done` resolves when
   * every entry below is written and the directories' metadata set.
   */
  async restoreTree(treeId: BlobId, dir: DirState, included: boolean): Promise<{ done: Promise<void> }> {
    this.signal?.throwIfAborted();
    let listing: Listing;
    try {
      listing = await this.loadListing(treeId);
    } catch (err) {
      this.error(dir.snapPath, new Error(`tree ${treeId}: ${(err as Error).message}`));
      return { done: Promise.resolve() };
    }
    // Entries the tree validator refused are reported, one error each; the rest is restored.
    for (const bad of listing.invalid ?? []) {
      this.error(joinSnap(dir.snapPath, bad.name ?? `#${bad.index}`), new Error(`invalid entry ${bad.index} of tree ${treeId}, not restored: ${bad.reason}`));
    }
    const unlisted = (listing.invalidCount ?? 0) - (listing.invalid?.length ?? 0);
    if (unlisted > 0) this.error(dir.snapPath, new Error(`and ${unlisted} more invalid entries of tree ${treeId}, not restored`));
    // Names are validated first; duplicates are all rejected.
    const seen = listing.counts;
    const named: Array<{ node: Node; raw: Buffer } | null> = listing.items.map(({ node, raw, err }) => {
      if (raw !== undefined) return { node, raw };
      this.error(joinSnap(dir.snapPath, String(node.name)), err);
      return null;
    });
    const subtreeIds: BlobId[] = [];
    for (const item of named) {
      if (!item || item.node.type !== 'dir' || item.node.subtree === undefined) continue;
      if ((seen.get(item.raw.toString('latin1')) ?? 0) > 1) continue; // not restored
      const rel = joinSnap(dir.snapPath, item.node.name).slice(1);
      // Prefetch only trees the traversal will enter.
      if (included || !this.filter || this.filter.matches(rel, true) || this.filter.mayContain(rel)) subtreeIds.push(item.node.subtree);
    }
    this.trees.want(subtreeIds);
    let nextSub = 0;
    const pending: Array<Promise<void>> = [];
    for (const item of named) {
      if (!item) continue;
      const { node, raw } = item;
      const snapPath = joinSnap(dir.snapPath, node.name);
      if ((seen.get(raw.toString('latin1')) ?? 0) > 1) {
        this.error(snapPath, new Error(`duplicate name in tree ${treeId}; not restored`));
        continue;
      }
      if (this.fatal !== undefined) break;
      this.signal?.throwIfAborted();
      const rel = snapPath.slice(1);
      const isDir = node.type === 'dir';
      const inc = included || (this.filter !== undefined && this.filter.matches(rel, isDir));
      const fsPath = Buffer.concat([dir.fsPath, Buffer.from('/'), raw]);
      if (isDir) {
        if (!inc && !this.filter?.mayContain(rel)) continue;
        if (node.subtree !== undefined) nextSub++;
        const sub: DirState = { fsPath, snapPath, node, parent: dir, created: undefined, ready: false };
        if (node.subtree === undefined) {
          this.error(snapPath, new Error('directory without a subtree id'));
          continue;
        }
        // An included directory exists even when empty; files in it create it on demand too.
        if (inc) void this.ensureDir(sub);
        this.prefetch(subtreeIds.slice(nextSub, nextSub + TREE_PREFETCH));
        const { done } = await this.restoreTree(node.subtree, sub, inc);
        pending.push(done);
        continue;
      }
      if (!inc) continue;
      this.progress(snapPath);
      // A further name of a hard-linked file already being restored: link it to the first one.
      const linkKey = node.type === 'file' && (node.links ?? 0) > 1 ? `${node.dev}:${node.inode}` : undefined;
      const first = linkKey !== undefined ? this.linked.get(linkKey) : undefined;
      let work: Promise<void>;
      let wait: Promise<void> | undefined;
      let release: (() => void) | undefined;
      if (first && first.size === node.size && sameContent(first.content, node.content)) {
        work = this.restoreHardLink(first, node, fsPath, snapPath, dir);
      } else if (this.content && node.type === 'file' && node.content && node.content.length > 0) {
        // Content files go to the pack reader; the traversal pauses when its plan is full.
        if (!dir.created) void this.ensureDir(dir); // (its failure is the file's, when it is written)
        const task: FileTask = { node, fsPath, snapPath, dir, tmp: undefined, fd: undefined, ino: undefined, written: 0 };
        const added = this.content.add(task, node.content);
        work = added.done.then(() => {
          this.result.filesRestored++;
        });
        wait = added.wait;
      } else {
        const slot = this.limiter.acquire();
        if (slot) await slot;
        work = this.restoreLeaf(node, fsPath, snapPath, dir);
        release = () => this.limiter.release();
      }
      if (linkKey !== undefined && !first) this.linked.set(linkKey, { fsPath, size: node.size, content: node.content, done: work.then(() => true, () => false) });
      const p: Promise<void> = work
        .catch((err: unknown) => this.fileFailed(snapPath, err))
        .finally(() => {
          release?.();
          this.inflight.delete(p);
        });
      this.inflight.add(p);
      pending.push(p);
      if (wait) await wait;
    }
    const done = Promise.all(pending).then(async () => {
      if (dir.node && dir.created) {
        try {
          await dir.created;
          await this.setDirMeta(dir);
          this.result.dirsRestored++;
        } catch (err) {
          this.error(dir.snapPath, err);
        }
      }
    });
    return { done };
  }

  /**
   * An entry failed: a file's own problem (content, file system) is reported and the restore goes
   * on; anything else stops it. Failures caused by the stop itself are not reported per file.
   */
  fileFailed(snapPath: string, err: unknown): void {
    let reason = err;
    if (err instanceof ContentError) {
      if (err.blobId === undefined && this.stopReason !== undefined && err.reason === this.stopReason) return;
      reason = err.blobId !== undefined ? new RestoreFileError(snapPath, err.blobId, err.reason) : err.reason;
    }
    if (reason instanceof RestoreFileError || isFsError(reason)) {
      this.error(snapPath, reason);
      return;
    }
    if (this.fatal === undefined) {
      this.fatal = reason;
      void this.stopContent(reason);
    }
  }

  /** The first restored name of each hard-linked file (by `dev:inode`), and whether it was written. */
  readonly linked = new Map<string, { fsPath: Buffer; size: number; content: BlobId[] | undefined; done: Promise<boolean> }>();

  /**
   * A further name of a hard-linked file: a hard link to the first name once that is written. When
   * the first failed or the file system cannot link, the content is written again.
   */
  async restoreHardLink(first: { fsPath: Buffer; done: Promise<boolean> }, node: Node, fsPath: Buffer, snapPath: string, dir: DirState): Promise<void> {
    const written = await first.done;
    await this.ensureDir(dir);
    if (written) {
      try {
        await createReplacing(fsPath, () => link(first.fsPath, fsPath));
        this.result.filesRestored++;
        return;
      } catch (err) {
        if (!CANNOT_LINK.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      }
    }
    await this.restoreFile(node, fsPath, snapPath);
    this.result.filesRestored++;
  }

  /** Why the content reader was stopped (its files fail with it; not reported one by one). */
  stopReason: unknown;

  stopContent(reason: unknown): Promise<void> {
    if (this.stopReason === undefined) this.stopReason = reason ?? new Error('restore stopped');
    return this.content?.stop(this.stopReason) ?? Promise.resolve();
  }

  /** Creates `dir` (and its not-yet-created ancestors); a non-directory in its place is removed. */
  ensureDir(dir: DirState): Promise<void> {
    if (dir.created) return dir.created;
    dir.created = (async () => {
      if (dir.parent) await this.ensureDir(dir.parent);
      try {
        await mkdir(dir.fsPath, { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const st = await lstat(dir.fsPath);
        if (!st.isDirectory()) {
          // A file or symlink where the directory goes: remove it (never follow it).
          await unlink(dir.fsPath);
          await mkdir(dir.fsPath, { mode: 0o700 });
        }
      }
      const st = await lstat(dir.fsPath);
      if (!st.isDirectory()) throw new Error(`${dir.fsPath.toString()} is not a directory after mkdir`);
      dir.ready = true;
    })();
    dir.created.catch(() => undefined);
    return dir.created;
  }

  /** Owner, mode and mtime of a directory, through an O_NOFOLLOW descriptor (after its children). */
  async setDirMeta(dir: DirState): Promise<void> {
    const node = dir.node!;
    const chown = this.owners && (node.uid !== this.euid || node.gid !== this.egid);
    if (this.syncCredits === 0) {
      const t0 = performance.now();
      const fd = openSync(dir.fsPath, DIR_FLAGS);
      try {
        if (chown) fchownSync(fd, node.uid, node.gid);
        fchmodSync(fd, node.mode & 0o7777);
        setTimesNsSync(fd, node.mtimeNs);
      } finally {
        closeSync(fd);
      }
      if (performance.now() - t0 > SYNC_SLOW_MS) this.syncCredits = ASYNC_CREDITS;
      return;
    }
    const fd = await openFd(dir.fsPath, DIR_FLAGS, 0);
    try {
      if (chown) await fchownFd(fd, node.uid, node.gid);
      await fchmodFd(fd, node.mode & 0o7777);
      await setTimesNs(fd, node.mtimeNs);
    } finally {
      await closeFd(fd);
    }
  }

  async restoreLeaf(node: Node, fsPath: Buffer, snapPath: string, dir: DirState): Promise<void> {
    await this.ensureDir(dir);
    switch (node.type) {
      case 'file':
        await this.restoreFile(node, fsPath, snapPath);
        this.result.filesRestored++;
        return;
      case 'symlink':
        await this.restoreSymlink(node, fsPath);
        this.result.symlinksRestored++;
        return;
      default:
        this.result.skipped.push({ path: snapPath, message: `${node.type} not restored (not supported)` });
    }
  }

  /**
   * Small files are written with synchronous calls once their content is
   * loaded: on a local disk that is a few microseconds per call, much less
   * than a thread-pool round trip each. If a synchronous call is ever slow
   * (network file system, cold disk), the next {@link ASYNC_CREDITS} files
   * use asynchronous calls again.
   */
  syncCredits = 0;

  /** Writes a small file synchronously unless synchronous calls have turned out slow; returns false to go async. */
  trySyncWrite(node: Node, fsPath: Buffer, snapPath: string, buf: Buffer | undefined): boolean {
    if (node.size > SYNC_WRITE_MAX || this.syncCredits > 0) {
      if (this.syncCredits > 0) this.syncCredits--;
      return false;
    }
    const t0 = performance.now();
    this.writeSmallFileSync(node, fsPath, snapPath, buf);
    if (performance.now() - t0 > SYNC_SLOW_MS) this.syncCredits = ASYNC_CREDITS;
    return true;
  }

  /**
   * A file without content (empty), or any file when the repository has no
   * pack reader (`lookupBlob`/`loadBlobs`): its blobs are loaded one by one.
   */
  async restoreFile(node: Node, fsPath: Buffer, snapPath: string): Promise<void> {
    const ids = node.content ?? [];
    const load = async (i: number): Promise<Buffer> => {
      try {
        return await this.opts.repository.loadBlob('data', ids[i]!);
      } catch (err) {
        throw new RestoreFileError(snapPath, ids[i], err);
      }
    };
    if (ids.length <= 1) {
      const buf = ids.length === 1 ? await load(0) : undefined;
      this.signal?.throwIfAborted();
      if (this.trySyncWrite(node, fsPath, snapPath, buf)) return;
      await this.writeFileAsync(node, fsPath, snapPath, buf ? [buf] : []);
      return;
    }
    // One blob in memory at a time.
    await this.writeFileAsync(node, fsPath, snapPath, (async function* () {
      for (let i = 0; i < ids.length; i++) yield await load(i);
    })());
  }

  /** Writes a whole file from its blobs, in order (temporary name, metadata, rename). */
  async writeFileAsync(node: Node, fsPath: Buffer, snapPath: string, bufs: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<void> {
    const dirPath = fsPath.subarray(0, fsPath.lastIndexOf(SLASH));
    const tmp = tempPath(dirPath);
    const mode = node.mode & 0o7777;
    // Created with the permission bits already (minus the umask); fchmod only when that is not exact.
    let fd: number | undefined = await openFd(tmp, FILE_FLAGS, mode & 0o777);
    let ok = false;
    try {
      let pos = 0;
      for await (const buf of bufs) {
        this.signal?.throwIfAborted();
        await writeAllAt(fd, buf, pos);
        pos += buf.length;
        this.result.bytesWritten += buf.length;
      }
      await this.finishFd(node, fd, pos, snapPath);
      const f = fd;
      fd = undefined;
      await closeFd(f);
      await rename(tmp, fsPath);
      ok = true;
    } finally {
      if (fd !== undefined) await closeFd(fd).catch(() => undefined);
      if (!ok) await unlink(tmp).catch(() => undefined);
    }
  }

  /** Size check, owner, mode and times of a written file, through its descriptor. */
  async finishFd(node: Node, fd: number, written: number, snapPath: string): Promise<void> {
    this.checkSize(node, written, snapPath);
    const mode = node.mode & 0o7777;
    if (this.owners && (node.uid !== this.euid || node.gid !== this.egid)) await fchownFd(fd, node.uid, node.gid);
    // chown clears setuid/setgid, so the mode goes after it.
    if (mode !== (mode & 0o777 & ~currentUmask())) await fchmodFd(fd, mode);
    await setTimesNs(fd, node.mtimeNs);
  }

  // ------------------------------------------------------------ the pack reader's sink

  /** The only blob of a one-blob file has arrived. */
  writeWhole(f: FileTask, data: Buffer): void | Promise<void> {
    this.signal?.throwIfAborted();
    if (!f.dir.ready) return this.ensureDir(f.dir).then(() => this.writeWhole(f, data));
    if (this.trySyncWrite(f.node, f.fsPath, f.snapPath, data)) return;
    return this.writeFileAsync(f.node, f.fsPath, f.snapPath, [data]);
  }

  /** Partly written multi-blob files with an open descriptor. */
  openFiles = 0;

  /** A blob of a multi-blob file, at its offset (the file is created on the first one). */
  async writeAt(f: FileTask, data: Buffer, offset: number): Promise<void> {
    this.signal?.throwIfAborted();
    const fd = await this.fileFd(f);
    await writeAllAt(fd, data, offset);
    f.written += data.length;
    this.result.bytesWritten += data.length;
    if (this.openFiles > MAX_OPEN_FILES) {
      // Too many files open at once (their blobs are spread over many packs): close this one until its next blob.
      f.ino = (await fstatFd(fd)).ino;
      f.fd = undefined;
      this.openFiles--;
      await closeFd(fd);
    }
  }

  /** The descriptor of a multi-blob file's temporary file: created, kept, or reopened. */
  async fileFd(f: FileTask): Promise<number> {
    if (f.fd !== undefined) return f.fd;
    if (f.tmp === undefined) {
      if (!f.dir.ready) await this.ensureDir(f.dir);
      const tmp = tempPath(f.fsPath.subarray(0, f.fsPath.lastIndexOf(SLASH)));
      f.fd = await openFd(tmp, FILE_FLAGS, f.node.mode & 0o777);
      f.tmp = tmp;
    } else {
      const fd = await openFd(f.tmp, REOPEN_FLAGS, 0);
      f.fd = fd;
      // The name is only ours as long as nobody replaced the file: check it is the one we created.
      if ((await fstatFd(fd)).ino !== f.ino) throw new Error(`${f.tmp.toString()} was replaced while the restore was writing it`);
    }
    this.openFiles++;
    return f.fd;
  }

  /** Every blob of a multi-blob file is written: metadata, then rename into place. */
  async completeFile(f: FileTask): Promise<void> {
    const fd = await this.fileFd(f);
    await this.finishFd(f.node, fd, f.written, f.snapPath);
    f.fd = undefined;
    this.openFiles--;
    await closeFd(fd);
    await rename(f.tmp!, f.fsPath);
    f.tmp = undefined;
  }

  /** A multi-blob file failed: close and remove its temporary file. */
  async discardFile(f: FileTask): Promise<void> {
    if (f.fd !== undefined) {
      const fd = f.fd;
      f.fd = undefined;
      this.openFiles--;
      await closeFd(fd).catch(() => undefined);
    }
    if (f.tmp !== undefined) {
      const tmp = f.tmp;
      f.tmp = undefined;
      await unlink(tmp).catch(() => undefined);
    }
  }

  checkSize(node: Node, written: number, snapPath: string): void {
    if (node.size !== written && node.content) {
      throw new RestoreFileError(snapPath, undefined, new Error(`content is ${written} bytes, the tree says ${node.size}`));
    }
  }

  /** The synchronous twin of the write path above, for a file of at most one blob. */
  writeSmallFileSync(node: Node, fsPath: Buffer, snapPath: string, buf: Buffer | undefined): void {
    const dirPath = fsPath.subarray(0, fsPath.lastIndexOf(SLASH));
    const tmp = tempPath(dirPath);
    const mode = node.mode & 0o7777;
    let fd: number | undefined = openSync(tmp, FILE_FLAGS, mode & 0o777);
    let ok = false;
    try {
      let pos = 0;
      if (buf) {
        while (pos < buf.length) pos += writeSync(fd, buf, pos, buf.length - pos, pos);
        this.result.bytesWritten += buf.length;
      }
      this.checkSize(node, pos, snapPath);
      if (this.owners && (node.uid !== this.euid || node.gid !== this.egid)) fchownSync(fd, node.uid, node.gid);
      if (mode !== (mode & 0o777 & ~currentUmask())) fchmodSync(fd, mode);
      setTimesNsSync(fd, node.mtimeNs);
      const f = fd;
      fd = undefined;
      closeSync(f);
      renameSync(tmp, fsPath);
      ok = true;
    } finally {
      if (fd !== undefined) {
        try {
          closeSync(fd);
        } catch {
          // already failing
        }
      }
      if (!ok) {
        try {
          unlinkSync(tmp);
        } catch {
          // not created or already gone
        }
      }
    }
  }

  async restoreSymlink(node: Node, fsPath: Buffer): Promise<void> {
    const target = node.linkTargetRaw !== undefined ? Buffer.from(node.linkTargetRaw, 'base64') : Buffer.from(node.linkTarget ?? '', 'utf8');
    await createReplacing(fsPath, () => symlink(target, fsPath));
    if (this.owners) await lchown(fsPath, node.uid, node.gid);
    try {
      await lsetTimesNs(fsPath, node.mtimeNs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSYS') throw err;
    }
  }
}

/** Random bytes drawn in bulk for temporary names (one `randomBytes` call per 512 files). */
let randomPool = Buffer.alloc(0);
let randomPos = 0;
const TEMP_PREFIX = Buffer.from('/.kiwi-restore-');
const TEMP_SUFFIX = Buffer.from('.tmp');

/** `dir/.kiwi-restore-<12 random hex digits>.tmp` (created with O_EXCL, so a clash fails safely). */
function tempPath(dirPath: Buffer): Buffer {
  if (randomPos + 6 > randomPool.length) {
    randomPool = randomBytes(6 * 512);
    randomPos = 0;
  }
  const hex = randomPool.toString('hex', randomPos, randomPos + 6);
  randomPos += 6;
  const out = Buffer.allocUnsafe(dirPath.length + TEMP_PREFIX.length + 12 + TEMP_SUFFIX.length);
  dirPath.copy(out, 0);
  let pos = dirPath.length;
  pos += TEMP_PREFIX.copy(out, pos);
  pos += out.write(hex, pos, 'latin1');
  TEMP_SUFFIX.copy(out, pos);
  return out;
}

/** Errors of `link` that mean "this file system cannot link here" (then the content is written again). */
const CANNOT_LINK = new Set(['EPERM', 'EXDEV', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** `create()` makes `path` (a link or symlink); something already there that is not a directory is replaced. */
async function createReplacing(path: Buffer, create: () => Promise<void>): Promise<void> {
  try {
    await create();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const st = await lstat(path);
    if (st.isDirectory()) throw new Error('a directory is in the way');
    await unlink(path);
    await create();
  }
}

function sameContent(a: readonly BlobId[] | undefined, b: readonly BlobId[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

function joinSnap(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function isFsError(err: unknown): boolean {
  return typeof (err as NodeJS.ErrnoException | undefined)?.code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}
