/**
 * The restore: traversal and bookkeeping. The stages live beside it:
 * names.ts (what a tree entry may be), select.ts (include/exclude),
 * existing.ts (restoring into a directory that holds files), files.ts
 * (writing regular files), sparse.ts (holes), special.ts (FIFOs, devices,
 * sockets), metadata.ts (owner, mode, attributes, times), content.ts
 * (reading content pack by pack), verify.ts (reading it back), temp.ts
 * (temporary names), hard-links.ts (further names of a file), directories.ts and anchors.ts
 * (making directories, and naming them so that nobody else can redirect the restore's writes).
 */
import { readdir, lstat, realpath, symlink } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { BlobId, Node, Snapshot } from '../repository/types.js';
import { MAX_TREE_DEPTH } from '../repository/limits.js';
import { Limiter } from '../backup/limiter.js';
import { ContentError, ContentReader, type ContentSink, type ContentSource } from './content.js';
import { TreeLoader } from '../snapshot-ops/tree-loader.js';
import { makeDirectory } from '../fsutil/make-directory.js';
import { joinSnap, listTree, type Listing } from './names.js';
import { RestoreSelector } from './select.js';
import { ExistingTarget, OVERWRITE_POLICIES, deleteExtras, removeLeftoverTemps } from './existing.js';
import { childPath, withoutAnchorPaths } from './anchors.js';
import { Directories } from './directories.js';
import { HardLinks } from './hard-links.js';
import { MAX_LISTED, RestoreTargetError, targetFullError, type RestoreOptions, type RestoreProgress, type RestoreResult } from './types.js';
import { FileWriter, RestoreFileError, createReplacing, type DirState, type FileTask } from './files.js';
import { MetaWriter, SyncBudget } from './metadata.js';
import { NotRestorable, isSpecial, makeSpecial } from './special.js';
import { Verifier } from './verify.js';
import { Skeleton } from './skeleton.js';

export { RestoreFileError } from './files.js';
export { MAX_LISTED, RestoreTargetError, type RestoreOptions, type RestoreProgress, type RestoreResult } from './types.js';
export { safeName } from './names.js';
/** Float-second conversion for Node's utimes (the fallback without the native addon). */
export { nsToUtimeSeconds } from './times.js';

const PROGRESS_INTERVAL_MS = 100;
/** Sub-directory trees loaded ahead of the traversal (and their files planned). */
const TREE_PREFETCH = 4;
/** Stored bytes of tree blobs read ahead of the traversal and not yet taken. */
const TREE_AHEAD_BYTES = 4 * 1024 * 1024;

/**
 * Restores a snapshot (or the parts `include`/`exclude` select) into `target`.
 *
 * Every blob is verified by the repository before it is written. A file whose
 * content fails to load is written under a temporary name and removed, never
 * renamed into place; it is reported in `errors` (naming the file, the blob
 * and the repository's reason) and the others are restored. A tree entry that
 * is not sound (names.ts) is one error; the rest of its directory is restored.
 *
 * Safety: names from trees are validated (no empty, `.`, `..`, `/`, NUL;
 * duplicates rejected), a symlink where a directory goes is removed, never
 * followed, files are created with O_EXCL|O_NOFOLLOW under a temporary name
 * and renamed into place, and metadata of files and directories is set
 * through an O_NOFOLLOW descriptor. On Linux every entry is named through a
 * descriptor of its directory (anchors.ts), so not even a process of another
 * user writing in the target while the restore runs can redirect a write out
 * of it; elsewhere paths are plain paths (docs/restore.md).
 *
 * What comes back (docs/restore.md): contents (sparse files with their
 * holes), modes (setuid/setgid/sticky too), mtimes exact to the nanosecond
 * through `@kiwi-backup/native-fs` (microseconds without it; atime is set to
 * the mtime), owners (numeric uid/gid) when `owners`, extended attributes and
 * POSIX ACLs, symlinks, hard links (names of one `dev`/`inode` with `links`
 * are linked to the first one restored), FIFOs, devices (as root) and socket
 * files. What cannot be made here is listed in `skipped`.
 *
 * Performance: sub-directory trees are loaded ahead in batches; file content
 * is read pack by pack (see `content.ts`): the files met by the traversal are
 * planned in windows, each pack's needed blobs come in one or a few ranged
 * reads, and each blob is read once per window and written to every file (and
 * offset) that uses it. A repository without `lookupBlob` and `loadBlobs` (a
 * stand-in in tests) is read blob by blob, file by file.
 */
export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  if (options.overwrite !== undefined && !OVERWRITE_POLICIES.includes(options.overwrite)) {
    throw new TypeError(`restoreSnapshot: overwrite must be one of ${OVERWRITE_POLICIES.join(', ')}`);
  }
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
    specialsRestored: 0,
    bytesWritten: 0,
    filesUnchanged: 0,
    kept: 0,
    deleted: 0,
    verified: 0,
    errors: [],
    errorCount: 0,
    skipped: [],
    skippedCount: 0,
    tempFilesRemoved: 0,
    unmatchedPatterns: [],
  };
  readonly limiter: Limiter;
  /** Reads file content pack by pack (undefined: the repository cannot; files load blob by blob). */
  readonly content: ContentReader<FileTask> | undefined;
  readonly trees: TreeLoader;
  readonly selector: RestoreSelector | undefined;
  readonly existing: ExistingTarget;
  readonly budget = new SyncBudget();
  readonly meta: MetaWriter;
  readonly writer: FileWriter;
  readonly verifier: Verifier | undefined;
  /** The caller's signal, and the restore's own stop (a full file system). */
  readonly signal: AbortSignal;
  private readonly stop = new AbortController();
  /** The snapshot's source paths: `delete` works at or below them only. */
  readonly sources: string[];
  lastProgress = 0;
  currentPath = '';
  readonly skeleton = new Skeleton();
  readonly dirs = new Directories(this.skeleton, (n) => {
    this.result.tempFilesRemoved += n;
  });
  readonly hardLinks: HardLinks;

  constructor(
    readonly opts: RestoreOptions,
    readonly snapshot: Snapshot,
  ) {
    this.limiter = new Limiter(Math.max(1, opts.concurrency ?? 8));
    const repo = opts.repository;
    this.signal = opts.signal ? AbortSignal.any([opts.signal, this.stop.signal]) : this.stop.signal;
    const owners = opts.owners ?? (typeof process.getuid === 'function' && process.getuid() === 0);
    this.meta = new MetaWriter(owners, { error: (p, e) => this.error(p, e), skip: (p, m) => this.skip(p, m) }, this.budget);
    this.writer = new FileWriter(
      {
        signal: this.signal,
        addBytes: (n) => {
          this.result.bytesWritten += n;
        },
        ensureDir: (d) => this.dirs.ensure(d),
        loadBlob: (id) => repo.loadBlob('data', id),
      },
      this.meta,
      this.budget,
    );
    this.hardLinks = new HardLinks(this.dirs, this.writer);
    this.content = undefined;
    if (repo.loadBlobs && repo.lookupBlob) {
      const source = {
        lookupBlob: repo.lookupBlob.bind(repo),
        loadBlobs: repo.loadBlobs.bind(repo),
        ...(repo.adoptUnlistedPacks ? { adoptUnlistedPacks: repo.adoptUnlistedPacks.bind(repo) } : {}),
      } satisfies ContentSource;
      const w = this.writer;
      const sink: ContentSink<FileTask> = {
        writeWhole: (f, data) => w.writeWhole(f, data),
        writeAt: (f, data, offset) => w.writeAt(f, data, offset),
        complete: (f) => w.completeFile(f),
        discard: (f) => w.discardFile(f),
      };
      this.content = new ContentReader(source, sink, opts.contentReader);
    }
    this.sources = (Array.isArray(snapshot.paths) ? snapshot.paths : []).filter((p): p is string => typeof p === 'string' && p.startsWith('/'));
    const selector = new RestoreSelector(opts, this.sources);
    this.selector = selector.active ? selector : undefined;
    this.existing = new ExistingTarget(opts.overwrite ?? 'if-changed', opts.delete === true);
    this.trees = new TreeLoader(repo, TREE_AHEAD_BYTES, !this.selector?.restricts);
    this.verifier = opts.verify
      ? new Verifier(
          {
            ...(repo.blobId ? { blobId: repo.blobId.bind(repo) } : {}),
            ...(repo.lookupBlob ? { lookupBlob: repo.lookupBlob.bind(repo) } : {}),
            loadBlob: (type, id) => repo.loadBlob(type, id),
          },
          (p, e) => this.error(p, e),
        )
      : undefined;
  }

  async run(): Promise<RestoreResult> {
    const target = resolvePath(this.opts.target);
    let root: DirState;
    try {
      const created = (await makeDirectory(target)).created;
      const real = await realpath(target);
      if (!(await lstat(real)).isDirectory()) throw new Error(`${target} is not a directory`);
      // An empty target is as good as a new one: nothing there to look at.
      const fresh = created || (await readdir(real)).length === 0;
      root = await this.dirs.target(real, fresh);
      this.meta.noteDefaultAcl(Buffer.from(real, 'utf8'));
    } catch (err) {
      await this.dirs.closeAll();
      throw new RestoreTargetError(`restore target: ${(err as Error).message}`, { cause: err });
    }
    const onAbort = () => void this.stopContent(this.signal.reason);
    this.signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (!root.fresh) this.result.tempFilesRemoved += await removeLeftoverTemps(root.fsPath!);
      // A whole snapshot into a fresh target: every directory first (skeleton.ts), then the files.
      if (root.fresh && !this.selector) await this.skeleton.make(this.opts.repository, this.snapshot.tree, root.fsPath!, this.signal);
      const { done } = await this.restoreTree(this.snapshot.tree, root, !this.selector?.restricts);
      // The traversal is over: what is still planned is read now.
      await this.content?.finish();
      await done;
      await this.verifier?.finish();
      // Stopped after the traversal (while content was still being written): the restore is incomplete.
      this.signal.throwIfAborted();
    } catch (err) {
      await this.stopContent(err);
      throw err;
    } finally {
      this.signal.removeEventListener('abort', onAbort);
      this.trees.close();
      // (Entries wait for their verification: what is queued is dropped first when the restore failed.)
      await this.verifier?.stop();
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
      await this.dirs.closeAll();
    }
    this.result.deleted += this.existing.deleted;
    this.result.verified = this.verifier?.verified ?? 0;
    this.result.unmatchedPatterns = this.selector?.unmatched() ?? [];
    this.opts.onProgress?.({ ...this.counters(), current: '' });
    return this.result;
  }

  counters(): Omit<RestoreProgress, 'current'> {
    return {
      filesRestored: this.result.filesRestored,
      dirsRestored: this.result.dirsRestored,
      bytesWritten: this.result.bytesWritten,
      errors: this.result.errorCount,
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
    // A full target: every later file would fail the same way, so stop with one clear error.
    const full = this.stop.signal.aborted ? undefined : targetFullError(path, err);
    if (full) this.stop.abort(full);
    const message = withoutAnchorPaths(err instanceof Error ? err.message : String(err));
    const e = { path, message };
    this.result.errorCount++;
    if (this.result.errors.length < MAX_LISTED) this.result.errors.push(e);
    if (this.opts.onError) this.opts.onError(e);
    else this.opts.logger?.error(`restore ${path}: ${message}`);
  }

  skip(path: string, message: string): void {
    const e = { path, message };
    this.result.skippedCount++;
    if (this.result.skipped.length < MAX_LISTED) this.result.skipped.push(e);
    if (this.opts.onSkip) this.opts.onSkip(e);
    else this.opts.logger?.warn(`restore ${path}: ${message}`);
  }

  /** Tree loads started ahead of the traversal (bounded), by tree id. */
  readonly prefetched = new Map<BlobId, Promise<Listing>>();
  /** Entry writes running (awaited before the restore returns or throws). */
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

  /** `path` is a backed-up source path or below one (where `delete` may remove entries). */
  withinSource(path: string): boolean {
    return this.sources.some((s) => s === '/' || path === s || path.startsWith(s + '/'));
  }

  /**
   * Restores the entries of tree `treeId` into directory `dir`. `included`:
   * whether `dir` itself is included (then so is everything below it that is
   * not excluded). Resolves once the whole subtree has been traversed and its
   * files started (the traversal goes on while files are written); `done`
   * resolves when every entry below is written and the directories' metadata set.
   */
  async restoreTree(treeId: BlobId, dir: DirState, included: boolean): Promise<{ done: Promise<void> }> {
    this.signal.throwIfAborted();
    let listing: Listing;
    try {
      listing = await this.loadListing(treeId);
    } catch (err) {
      this.error(dir.snapPath, new Error(`tree ${treeId}: ${(err as Error).message}`));
      return { done: this.dirs.abandon(dir) };
    }
    // Entries the tree validator refused are reported, one error each; the rest is restored.
    for (const bad of listing.invalid ?? []) {
      this.error(joinSnap(dir.snapPath, bad.name ?? `#${bad.index}`), new Error(`invalid entry ${bad.index} of tree ${treeId}, not restored: ${bad.reason}`));
    }
    const unlisted = (listing.invalidCount ?? 0) - (listing.invalid?.length ?? 0);
    if (unlisted > 0) this.error(dir.snapPath, new Error(`and ${unlisted} more invalid entries of tree ${treeId}, not restored`));
    if (!dir.fresh) {
      // What is there is looked at, through the directory's own descriptor (anchors.ts).
      try {
        await this.dirs.open(dir);
      } catch (err) {
        this.error(dir.snapPath, err);
        return { done: this.dirs.abandon(dir) };
      }
    }
    // The entries are checked again for what the restore relies on (names.ts); duplicates are all rejected.
    const seen = listing.counts;
    const named: Array<{ node: Node; raw: Buffer; snapPath: string } | null> = listing.items.map(({ node, raw, err, display }) => {
      if (raw !== undefined) return { node, raw, snapPath: joinSnap(dir.snapPath, node.name) };
      this.error(joinSnap(dir.snapPath, display), err);
      return null;
    });
    const sel = this.selector;
    const subtreeIds: BlobId[] = [];
    for (const item of named) {
      if (!item || item.node.type !== 'dir' || item.node.subtree === undefined) continue;
      if ((seen.get(item.raw.toString('latin1')) ?? 0) > 1) continue; // not restored
      // Prefetch only trees the traversal will enter.
      if (included || !sel || sel.mayContain(item.snapPath)) subtreeIds.push(item.node.subtree);
    }
    this.trees.want(subtreeIds);
    let nextSub = 0;
    const pending: Array<Promise<void>> = [];
    for (const item of named) {
      if (!item) continue;
      const { node, raw, snapPath } = item;
      if ((seen.get(raw.toString('latin1')) ?? 0) > 1) {
        this.error(snapPath, new Error(`duplicate name in tree ${treeId}; not restored`));
        continue;
      }
      this.signal.throwIfAborted();
      const isDir = node.type === 'dir';
      const selection = sel ? sel.select(snapPath, isDir, included) : 'include';
      if (selection === 'skip') continue;
      const inc = selection === 'include';
      if (isDir) {
        if (node.subtree === undefined) {
          this.error(snapPath, new Error('directory without a subtree id'));
          continue;
        }
        nextSub++;
        if (dir.depth + 1 > MAX_TREE_DEPTH) {
          // Only a damaged or hostile snapshot nests this deep (a path this long cannot be opened anyway).
          this.error(snapPath, new Error(`directories nested deeper than ${MAX_TREE_DEPTH} levels; not restored below`));
          continue;
        }
        const sub = this.dirs.child(dir, raw, snapPath, node, dir.fresh);
        if (!dir.fresh) {
          // What is at its path decides whether it is fresh, or kept (the policy leaves a file there).
          let state;
          try {
            state = await this.existing.planDir(node, childPath(dir.fsPath!, raw));
          } catch (err) {
            this.error(snapPath, err);
            continue;
          }
          if (state === 'keep') {
            // Not one entry but a whole directory left out: said, not only counted.
            this.result.kept++;
            this.skip(snapPath, `a file or symlink is where this directory goes, kept by --overwrite ${this.existing.policy}: nothing below it restored`);
            continue;
          }
          sub.fresh = state === 'new';
        }
        this.prefetch(subtreeIds.slice(nextSub, nextSub + TREE_PREFETCH));
        // Too many directory descriptors open: wait for directories below which everything is written
        // (before this one is opened: it is not done until the traversal has been through it).
        for (let room = this.dirs.room(dir.depth + 1); room; room = this.dirs.room(dir.depth + 1)) await room;
        // An included directory exists even when empty; files in it create it on demand too.
        if (inc) void this.dirs.ensure(sub);
        const { done } = await this.restoreTree(node.subtree, sub, inc);
        pending.push(done);
        continue;
      }
      if (!inc) continue;
      this.progress(snapPath);
      // (Wrapped: an async function returning the promise itself would wait for it.)
      const started = await this.restoreEntry(node, raw, snapPath, dir);
      if (started) pending.push(started.done);
      if (this.verifierRoom) await this.verifierRoom;
    }
    const done = Promise.all(pending).then(async () => {
      try {
        if (!dir.created) return;
        await dir.created;
        if (this.existing.deleteExtra && included && !dir.fresh && this.withinSource(dir.snapPath)) await this.deleteExtras(dir, listing);
        if (dir.node) {
          await this.meta.dir(dir.node, dir.fsPath!, dir.snapPath, dir.fd);
          this.result.dirsRestored++;
        }
      } catch (err) {
        this.error(dir.snapPath, err);
      } finally {
        // Everything below is written: its descriptor is closed (the target's at the end).
        if (dir.parent) this.dirs.close(dir);
      }
    });
    return { done };
  }

  /** Set while the verifier's queue is full (the traversal waits on it). */
  verifierRoom: Promise<void> | undefined;

  /** Starts restoring one non-directory entry; `done` settles when it is complete. */
  async restoreEntry(node: Node, raw: Buffer, snapPath: string, dir: DirState): Promise<{ done: Promise<void> } | undefined> {
    let metaOnly = false;
    if (!dir.fresh) {
      // Something may be there: the overwrite policy decides.
      let plan;
      try {
        // (Not fresh: restoreTree opened it, or it was made and found existing.)
        plan = await this.existing.plan(node, childPath(dir.fsPath!, raw));
      } catch (err) {
        this.error(snapPath, err);
        return undefined;
      }
      if (plan.kind === 'keep') {
        this.result.kept++;
        return undefined;
      }
      if (plan.kind === 'fail') {
        this.error(snapPath, new Error(plan.reason));
        return undefined;
      }
      metaOnly = plan.kind === 'meta';
    }
    // A further name of a hard-linked file already being restored: link it to the first one.
    const linkKey = this.hardLinks.key(node);
    const first = this.hardLinks.firstOf(linkKey, node);
    let work: Promise<void>;
    let wait: Promise<void> | undefined;
    let release: (() => void) | undefined;
    if (first) {
      work = this.hardLinks.restore(first, node, raw, snapPath, dir).then(() => {
        this.result.filesRestored++;
      });
    } else if (metaOnly) {
      work = this.dirs
        .ensure(dir)
        .then(() => this.writer.updateMetadata(node, childPath(dir.fsPath!, raw), snapPath))
        .then(() => {
          this.result.filesUnchanged++;
        });
    } else if (this.content && node.type === 'file' && node.content && node.content.length > 0) {
      // Content files go to the pack reader; the traversal pauses when its plan is full.
      if (!dir.created) void this.dirs.ensure(dir); // (its failure is the file's, when it is written)
      const task: FileTask = { node, name: raw, fsPath: undefined, snapPath, dir, tmp: undefined, fd: undefined, ino: undefined, written: 0 };
      const added = this.content.add(task, node.content);
      work = added.done.then(() => {
        this.result.filesRestored++;
      });
      wait = added.wait;
    } else {
      const slot = this.limiter.acquire();
      if (slot) await slot;
      work = this.restoreLeaf(node, raw, snapPath, dir);
      release = () => this.limiter.release();
    }
    if (linkKey !== undefined && !first) this.hardLinks.record(linkKey, node, dir, raw, work);
    const verifier = this.verifier;
    // (The entry is done once verified: its directory stays open until then.)
    const checked = verifier && node.type === 'file' ? work.then(() => this.verify(verifier, childPath(dir.fsPath!, raw), node, snapPath)) : work;
    const p: Promise<void> = checked
      .catch((err: unknown) => this.fileFailed(snapPath, err))
      .finally(() => {
        release?.();
        this.inflight.delete(p);
      });
    this.inflight.add(p);
    if (wait) await wait;
    return { done: p };
  }

  /** Queues a restored file for verification (resolves once verified); the traversal waits while the queue is full. */
  verify(verifier: Verifier, fsPath: Buffer, node: Node, snapPath: string): Promise<void> {
    const { done, room } = verifier.add(fsPath, node, snapPath);
    if (room && !this.verifierRoom) {
      this.verifierRoom = room.then(() => {
        this.verifierRoom = undefined;
      });
    }
    return done;
  }

  /**
   * An entry failed: reported as its error (or as not restored by rule), and the restore goes on.
   * Failures caused by a stop (abort) are not reported per file: the run ends with the stop.
   */
  fileFailed(snapPath: string, err: unknown): void {
    let reason = err;
    if (err instanceof ContentError) {
      if (err.blobId === undefined && this.stopReason !== undefined && err.reason === this.stopReason) return;
      reason = err.blobId !== undefined ? new RestoreFileError(snapPath, err.blobId, err.reason) : err.reason;
    }
    if (this.signal.aborted && (reason === this.signal.reason || this.stopReason !== undefined)) return;
    if (reason instanceof NotRestorable) {
      this.skip(snapPath, reason.message);
      return;
    }
    this.error(snapPath, reason);
  }

  /** Why the content reader was stopped (its files fail with it; not reported one by one). */
  stopReason: unknown;

  stopContent(reason: unknown): Promise<void> {
    if (this.stopReason === undefined) this.stopReason = reason ?? new Error('restore stopped');
    return this.content?.stop(this.stopReason) ?? Promise.resolve();
  }

  /** `delete`: the entries of a complete directory that the snapshot does not have. */
  async deleteExtras(dir: DirState, listing: Listing): Promise<void> {
    const sel = this.selector;
    const spared = sel ? (name: Buffer, isDir: boolean) => sel.excluded(joinSnap(dir.snapPath, name.toString('utf8')), isDir) : () => false;
    const removed = await deleteExtras(dir.fsPath!, listing.names, spared, (name, err) => this.error(joinSnap(dir.snapPath, name.toString('utf8')), err));
    this.result.deleted += removed.length;
  }

  async restoreLeaf(node: Node, raw: Buffer, snapPath: string, dir: DirState): Promise<void> {
    await this.dirs.ensure(dir);
    const fsPath = childPath(dir.fsPath!, raw);
    if (node.type === 'file') {
      await this.writer.restoreFile(node, fsPath, snapPath, dir.fresh);
      this.result.filesRestored++;
    } else if (node.type === 'symlink') {
      const target = node.linkTargetRaw !== undefined ? Buffer.from(node.linkTargetRaw, 'base64') : Buffer.from(node.linkTarget ?? '', 'utf8');
      await createReplacing(fsPath, () => symlink(target, fsPath));
      await this.meta.symlink(node, fsPath, snapPath);
      this.result.symlinksRestored++;
    } else if (isSpecial(node.type)) {
      await createReplacing(fsPath, async () => makeSpecial(node, fsPath));
      await this.meta.special(node, fsPath, snapPath);
      this.result.specialsRestored++;
    } else {
      this.skip(snapPath, `${node.type} not restored (not supported)`);
    }
  }
}
