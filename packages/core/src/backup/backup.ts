import { readlinkSync } from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { hostname as osHostname, userInfo } from 'node:os';
import type { BackupInfo, BackupStats, BackupStatus, ContentSource, FileEntry, Logger, VirtualFileOptions } from '../plugins/types.js';
import type { BlobId, Node, Snapshot, Tree } from '../repository/types.js';
import { normalizeSources, walk, type WalkEntry, type WalkEvent, type WalkOptions } from '../walker/index.js';
import { BackupAbortedError } from '../plugins/errors.js';
import type { PluginRuntime } from '../plugins/runtime.js';
import { EntryFailure, FileSaver } from './file-saver.js';
import { BATCH_FILES } from './savers/protocol.js';
import { Limiter } from './limiter.js';
import { nameFields, nameKey, nodeFromStat, toNumberStats } from './node.js';
import { listingOf, sameEntries, unchangedFile, type Listing } from './parent.js';
import { OwnerNames } from './owners.js';
import { TreeLoader } from '../snapshot-ops/tree-loader.js';
import { readXattrs, xattrsAvailable, xattrsUnavailableReason } from '../xattr/xattrs.js';
import { isTransientError } from '../storage/errors.js';
import type { EngineRepository, EntryError } from './types.js';
import { BackupInterruptedError, PROGRAM_VERSION, emptyStats, type BackupOptions, type BackupResult, type ErrorWithBackupResult } from './options.js';

export { PROGRAM_VERSION, BackupInterruptedError, type BackupOptions, type BackupResult, type ErrorWithBackupResult } from './options.js';

/** One finished entry of a directory: its raw name and node. */
interface Item {
  key: Buffer;
  node: Node;
}

/** A directory being assembled (a walked directory, an ancestor of a source, or a virtual directory). */
interface Frame {
  path: string;
  /** The directory's own node (without subtree yet); undefined for the root. */
  node: Node | undefined;
  key: Buffer;
  /** The directory's node in the parent snapshot. */
  parentNode: Promise<Node | undefined>;
  /** The parent snapshot's listing of this directory. */
  parentMap: Promise<Listing | undefined>;
  /** The same once it settled (`listingReady`): entries of the directory are compared at once. */
  listing: Listing | undefined;
  listingReady: boolean;
  /** Children in walk order (done, or in progress); null for skipped/failed entries. */
  children: Array<Item | null | Promise<Item | null>>;
  /** Ancestor/virtual sub-directories by name, assembled after the walk. */
  subframes: Map<string, Frame>;
  /** Skipped by a plug-in: children are discarded. */
  skipped: boolean;
}

interface VirtualFile {
  parts: string[];
  content: ContentSource;
  options: VirtualFileOptions;
  /** From `BackupOptions.files`: failing to read it fails the backup. */
  required: boolean;
}

const PROGRESS_INTERVAL_MS = 100;
/** True when `err` (or an error in its `cause` chain) is a storage failure that retries did not cure. */
function causedByStorage(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (isTransientError(e)) return true;
  }
  return false;
}

/** Stored bytes of parent-snapshot trees read ahead of the walk and not yet used. */
const PARENT_TREES_AHEAD_BYTES = 1024 * 1024;

/**
 * Runs one backup: walk → onFile → change detection → chunk → save blobs →
 * trees → flush → snapshot, inside the plug-in session so `onBackupStart` runs
 * before the walk and `onBackupStop` always runs at the end.
 *
 * Resolves with the result for `success` and `partial`; for `failure`,
 * `aborted` and `interrupted` it rejects (after `onBackupStop` ran) with the
 * original error ({@link BackupAbortedError}, {@link BackupInterruptedError},
 * or whatever failed), which carries the result as `backupResult`.
 */
export async function runBackup(options: BackupOptions): Promise<BackupResult> {
  const run = new BackupRun(options);
  return run.run();
}

class BackupRun {
  readonly repo: EngineRepository;
  readonly opts: BackupOptions;
  readonly sources: string[];
  readonly stats = emptyStats();
  readonly errors: EntryError[] = [];
  readonly warnings: EntryError[] = [];
  readonly owners = new OwnerNames();
  readonly log: Logger | undefined;
  readonly dryRun: boolean;
  readonly internal = new AbortController();
  readonly limiter: Limiter;
  /** Reads files and saves their content (saver threads, or this thread). */
  readonly saver: FileSaver;
  /** File workers running (awaited before the run ends, also after a failure). */
  readonly inflight = new Set<Promise<unknown>>();
  readonly virtualFiles: VirtualFile[] = [];
  readonly realTopNames: Set<string>;
  readonly info: BackupInfo;
  /**
   * The parent snapshot's trees, read ahead in batches while the walk goes on (one request per
   * directory would cost a round trip each over remote storage).
   */
  readonly parentTrees: TreeLoader;
  fatal: unknown;
  /** Files being read now, for progress displays. */
  readonly reading = new Set<string>();
  /** `stats.bytesRead` of files whose reading finished: the rest of it is in progress. */
  finishedReadBytes = 0;
  lastProgress = 0;
  /** The entry (or path) seen last. */
  currentEntry: WalkEntry | string = '';
  get currentPath(): string {
    return typeof this.currentEntry === 'string' ? this.currentEntry : this.currentEntry.path;
  }
  walkDone = false;
  /** Extended attributes are read for every entry (the native addon is there); else one warning per run. */
  readonly xattrs = xattrsAvailable();
  /** The parent snapshot recorded extended attributes: an unchanged file reuses its parent node's. */
  parentHasXattrs = false;

  constructor(opts: BackupOptions) {
    this.opts = opts;
    this.repo = opts.repository;
    this.log = opts.logger;
    this.dryRun = Boolean(opts.dryRun);
    const files = opts.files ?? [];
    if ((!opts.sources || opts.sources.length === 0) && files.length === 0) throw new Error('backup: no source paths given');
    this.sources = opts.sources?.length ? normalizeSources(opts.sources) : [];
    if (opts.time !== undefined && !Number.isFinite(opts.time.getTime())) throw new TypeError('backup: time is an invalid Date');
    const concurrency = Math.max(1, opts.concurrency ?? 8);
    this.saver = new FileSaver({
      repository: this.repo,
      stats: this.stats,
      warnings: this.warnings,
      owners: this.owners,
      log: this.log,
      dryRun: this.dryRun,
      signal: this.internal.signal,
      concurrency,
      workers: opts.workers,
    });
    // With saver threads, small files go to them in batches: more of them may be in flight.
    this.limiter = new Limiter(this.saver.savers ? Math.max(concurrency, this.saver.savers.size * BATCH_FILES * 2) : concurrency);
    this.realTopNames = new Set(this.sources.map((s) => s.split('/').filter(Boolean)[0] ?? ''));
    for (const f of files) {
      this.addVirtualFile(f.path, f.content, { ...(f.mode !== undefined ? { mode: f.mode } : {}), ...(f.mtime ? { mtime: f.mtime } : {}) }, true);
    }
    this.parentTrees = new TreeLoader(this.repo, PARENT_TREES_AHEAD_BYTES, true);
    // An abort (failure, interruption) stops the saver threads' files at their next step.
    this.internal.signal.addEventListener('abort', () => this.saver.abort(this.internal.signal.reason), { once: true });
    this.info = {
      id: randomBytes(8).toString('hex'),
      sources: this.sources,
      repository: opts.repositoryLocation ?? this.repo.location ?? '',
      host: opts.host ?? osHostname(),
      tags: [...(opts.tags ?? [])],
      dryRun: this.dryRun,
      stats: this.stats,
      status: 'running',
      metadata: {},
    };
  }

  get signal(): AbortSignal {
    return this.internal.signal;
  }

  async run(): Promise<BackupResult> {
    const external = this.opts.signal;
    const onExternalAbort = () => this.internal.abort(new BackupInterruptedError(external?.reason));
    if (external?.aborted) onExternalAbort();
    else external?.addEventListener('abort', onExternalAbort, { once: true });

    const result: BackupResult = {
      status: 'running',
      stats: this.stats,
      errors: this.errors,
      warnings: this.warnings,
      stopErrors: [],
    };
    let failure: unknown;
    // The lock comes first: when the repository is locked, no hook runs (nothing to undo).
    let lock: { release(options?: { attempts?: number }): Promise<void> | void } | undefined;
    try {
      lock = await this.repo.lock('shared');
    } catch (err) {
      external?.removeEventListener('abort', onExternalAbort);
      throw err;
    }
    const session = this.opts.plugins?.createBackupSession({
      backup: this.info,
      signal: this.internal.signal,
      abortController: this.internal,
      onAddFile: (path: string, content: ContentSource, opts?: VirtualFileOptions) => this.addVirtualFile(path, content, opts),
    });
    this.currentSession = session;
    try {
      const body = async () => {
        this.signal.throwIfAborted();
        const out = await this.body();
        result.snapshot = out.snapshot;
        result.snapshotId = out.snapshotId;
        result.parentId = out.parentId;
      };
      if (session) await session.start(body);
      else await body();
      result.status = this.errors.length > 0 ? 'partial' : 'success';
    } catch (err) {
      failure = err;
      result.status = this.classify(err);
      if (result.status === 'interrupted' && !(err instanceof BackupInterruptedError)) {
        failure = new BackupInterruptedError(external?.reason);
      }
    } finally {
      external?.removeEventListener('abort', onExternalAbort);
      if (!this.internal.signal.aborted && failure !== undefined) this.internal.abort(failure);
      // No file worker may touch the repository after the run ended.
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
      await this.saver.close();
      this.info.status = result.status;
      if (failure !== undefined) this.info.error = failure instanceof Error ? failure : new Error(String(failure));
      if (result.snapshotId !== undefined) this.info.snapshotId = result.snapshotId;
      if (lock) {
        try {
          // Storage unreachable: try once more, not through the whole backoff (the lock goes stale anyway).
          await lock.release(failure !== undefined && causedByStorage(failure) ? { attempts: 2 } : undefined);
        } catch (err) {
          this.log?.warn(`releasing the repository lock failed: ${(err as Error).message}`);
        }
      }
      if (session) {
        try {
          result.stopErrors = await session.stop();
        } catch (err) {
          result.stopErrors = [err as Error];
        }
      }
      this.opts.onProgress?.(this.stats, '', { filesInProgress: [], bytesInProgress: 0 });
    }
    if (failure !== undefined) {
      const err = (failure instanceof Error ? failure : new Error(String(failure))) as ErrorWithBackupResult;
      try {
        err.backupResult = result;
      } catch {
        // frozen error objects: fine
      }
      throw err;
    }
    return result;
  }

  classify(err: unknown): BackupStatus {
    if (err instanceof BackupAbortedError || (err as Error | undefined)?.name === 'BackupAbortedError') return 'aborted';
    if (err instanceof BackupInterruptedError || this.opts.signal?.aborted) return 'interrupted';
    return 'failure';
  }

  addVirtualFile(path: string, content: ContentSource, options: VirtualFileOptions = {}, required = false): void {
    if (this.walkDone) throw new Error(`addFile('${path}'): too late, the snapshot's tree is already built`);
    if (typeof path !== 'string') throw new TypeError('addFile: path must be a string');
    const parts = path.split('/').filter((p) => p !== '');
    if (parts.length === 0) throw new Error(`addFile('${path}'): empty path`);
    for (const p of parts) {
      if (p === '.' || p === '..' || p.includes('\0')) throw new Error(`addFile('${path}'): invalid path component '${p}'`);
    }
    if (this.realTopNames.has(parts[0]!)) {
      throw new Error(`addFile('${path}'): clashes with the backed-up path '/${parts[0]}'`);
    }
    const joined = parts.join('/');
    for (const v of this.virtualFiles) {
      const other = v.parts.join('/');
      if (other === joined || other.startsWith(joined + '/') || joined.startsWith(other + '/')) {
        throw new Error(`addFile('${path}'): clashes with the virtual file '${other}'`);
      }
    }
    this.virtualFiles.push({ parts, content, options, required });
  }

  // ---------------------------------------------------------------- the walk

  recordError(path: string, message: string): void {
    const e = { path, message };
    this.errors.push(e);
    this.stats.errors++;
    if (this.opts.onError) this.opts.onError(e);
    else this.log?.warn(`${path}: ${message}`);
  }

  /** {@link progress} for a walked entry (its display path made only when it is shown). */
  progressAt(entry: WalkEntry): void {
    this.currentEntry = entry;
    if (!this.opts.onProgress) return;
    const now = Date.now();
    if (now - this.lastProgress >= PROGRESS_INTERVAL_MS) this.progress(entry.path);
  }

  progress(path: string): void {
    this.currentEntry = path;
    const cb = this.opts.onProgress;
    if (!cb) return;
    const now = Date.now();
    if (now - this.lastProgress >= PROGRESS_INTERVAL_MS) {
      this.lastProgress = now;
      cb(this.stats, path, {
        filesInProgress: [...this.reading],
        bytesInProgress: Math.max(0, this.stats.bytesRead - this.finishedReadBytes),
      });
    }
  }

  /** Keeps a background promise from being an unhandled rejection; its failure ends the run. */
  guard<T>(p: Promise<T>): Promise<T> {
    p.catch((err: unknown) => {
      if (this.fatal === undefined) {
        this.fatal = err;
        if (!this.internal.signal.aborted) this.internal.abort(err);
      }
    });
    return p;
  }

  checkFatal(): void {
    if (this.fatal !== undefined) throw this.fatal;
    this.signal.throwIfAborted();
  }

  async resolveParent(): Promise<{ id: string; snapshot: Snapshot } | undefined> {
    const p = this.opts.parent;
    if (p === null) return undefined;
    const repo = this.repo as EngineRepository & {
      findSnapshot?: (ref: string, filter?: { host?: string; paths?: string[] }) => Promise<{ id: string; snapshot: Snapshot } | undefined>;
      // Repository.findSnapshot rejects with SnapshotNotFoundError when nothing matches.
    };
    if (typeof p === 'string') {
      if (repo.findSnapshot) {
        const found = await repo.findSnapshot(p);
        if (!found) throw new Error(`parent snapshot ${p} not found`);
        return found;
      }
      return { id: p, snapshot: await this.repo.loadSnapshot(p) };
    }
    if (!repo.findSnapshot) return undefined;
    try {
      return (await repo.findSnapshot('latest', { host: this.info.host, paths: this.sources })) ?? undefined;
    } catch (err) {
      if ((err as Error | undefined)?.name === 'SnapshotNotFoundError') return undefined;
      throw err;
    }
  }

  async loadListing(id: BlobId | undefined): Promise<Listing | undefined> {
    if (id === undefined) return undefined;
    try {
      const tree = this.parentTrees.takeLoaded(id) ?? (await this.parentTrees.take(id));
      return listingOf(id, tree);
    } catch (err) {
      this.log?.warn(`parent tree ${id} could not be loaded, its files are read again: ${(err as Error).message}`);
      return undefined;
    }
  }

  newFrame(path: string, key: Buffer, node: Node | undefined, parent: Frame | undefined): Frame {
    const parentNode = parent
      ? parent.listingReady
        ? Promise.resolve(parent.listing?.byName.get(nameKey(key)))
        : parent.parentMap.then((m) => m?.byName.get(nameKey(key)))
      : Promise.resolve(undefined);
    const parentMap = parent
      ? parentNode.then((n) => (n && n.type === 'dir' ? this.loadListing(n.subtree) : undefined))
      : Promise.resolve(undefined);
    const frame: Frame = { path, node, key, parentNode, parentMap, listing: undefined, listingReady: false, children: [], subframes: new Map(), skipped: false };
    this.trackListing(frame);
    // parentNode is awaited later; keep it from being flagged as unhandled meanwhile.
    parentNode.catch(() => undefined);
    return frame;
  }

  /** Records the frame's listing once it settled (see {@link Frame.listingReady}). */
  trackListing(frame: Frame): void {
    const p = frame.parentMap;
    p.then(
      (l) => {
        if (frame.parentMap !== p) return;
        frame.listing = l;
        frame.listingReady = true;
      },
      () => undefined,
    );
  }

  async body(): Promise<{ snapshot?: Snapshot; snapshotId?: string; parentId?: string }> {
    const startTime = new Date();
    // Pick up index files written since the repository was opened (by us or others): dedup needs them.
    // The packs are listed too: a blob whose pack is missing or damaged is never deduplicated against
    // (it is stored again), and packs an interrupted backup left unindexed are adopted (docs/security.md).
    if (this.repo.loadIndex) await this.repo.loadIndex({ verifyPacks: true });
    this.saver.seedFilter();
    const parent = await this.resolveParent();
    if (parent) this.log?.info(`using parent snapshot ${parent.id.slice(0, 8)}`);
    this.parentHasXattrs = parent?.snapshot.xattrs === true;
    if (!this.xattrs) this.log?.warn(`extended attributes and ACLs are not backed up: ${xattrsUnavailableReason() ?? 'unavailable'}`);

    // The root frame mirrors '/': ancestors of each source become sub-frames with real lstat metadata.
    const root = this.newFrame('/', Buffer.alloc(0), undefined, undefined);
    if (parent) this.parentTrees.want([parent.snapshot.tree]);
    root.parentMap = parent ? this.loadListing(parent.snapshot.tree) : Promise.resolve(undefined);
    this.trackListing(root);
    // A source that does not exist is one error, and neither it nor its missing ancestors become
    // (phantom) directories in the snapshot. Its path stays in the snapshot's `paths`.
    const present: string[] = [];
    for (const src of this.sources) {
      const missing = await lstat(src).then(
        () => undefined,
        (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' || err.code === 'ENOTDIR' ? err.code : undefined),
      );
      if (missing) this.recordError(src, `lstat: ${missing === 'ENOENT' ? 'no such file or directory' : 'a parent is not a directory'} (${missing})`);
      else present.push(src);
    }
    /** source path → the frame its top entry belongs to. */
    const sourceParent = new Map<string, Frame>();
    for (const src of present) {
      const parts = src.split('/').filter(Boolean);
      let frame = root;
      let path = '';
      for (const part of parts.slice(0, -1)) {
        path += '/' + part;
        let sub = frame.subframes.get(part);
        if (!sub) {
          const key = Buffer.from(part, 'utf8');
          let node: Node;
          try {
            node = nodeFromStat(key, 'dir', await lstat(path, { bigint: true }), this.owners);
            this.addXattrs(node, Buffer.from(path), path);
          } catch (err) {
            this.recordError(path, `lstat: ${(err as Error).message}`);
            node = this.syntheticDirNode(key, 0o755);
          }
          sub = this.newFrame(path, key, node, frame);
          frame.subframes.set(part, sub);
        }
        frame = sub;
      }
      sourceParent.set(src, frame);
    }

    try {
      await this.walkSources(root, sourceParent, present);
    } finally {
      this.parentTrees.close();
    }
    this.walkDone = true;

    // Virtual files from plug-ins: top level of the root tree under their relative path.
    await this.addVirtualFiles(root);
    this.checkFatal();

    const rootItem = await this.finishFrame(root);
    this.checkFatal();
    const treeId = rootItem.node.subtree!;
    if (!this.dryRun) await this.repo.flush();
    this.checkFatal();

    const endTime = new Date();
    const me = safeUserInfo();
    const snapshot: Snapshot = {
      time: (this.opts.time ?? startTime).toISOString(),
      hostname: this.info.host,
      username: me?.username ?? '',
      ...(me && me.uid >= 0 ? { uid: me.uid, gid: me.gid } : {}),
      paths: this.sources.length > 0 ? [...this.sources] : this.virtualFiles.filter((v) => v.required).map((v) => `/${v.parts.join('/')}`).sort(),
      tags: [...this.info.tags],
      tree: treeId,
      ...(parent ? { parent: parent.id } : {}),
      ...(this.opts.exclude?.length ? { excludes: [...this.opts.exclude] } : {}),
      summary: {
        ...this.stats,
        startTime: startTime.toISOString(),
        endTime: endTime.toISOString(),
      },
      programVersion: PROGRAM_VERSION,
      ...(Object.keys(this.info.metadata).length ? { plugins: this.info.metadata } : {}),
      ...(this.errors.length ? { partial: true } : {}),
      ...(this.xattrs ? { xattrs: true } : {}),
    };
    if (this.dryRun) return { snapshot, ...(parent ? { parentId: parent.id } : {}) };
    this.signal.throwIfAborted();
    const snapshotId = await this.repo.saveSnapshot(snapshot);
    return { snapshot, snapshotId, ...(parent ? { parentId: parent.id } : {}) };
  }

  syntheticDirNode(key: Buffer, mode: number, mtime: Date = new Date()): Node {
    const me = safeUserInfo();
    const uid = me?.uid ?? 0;
    const gid = me?.gid ?? 0;
    const ns = (BigInt(mtime.getTime()) * 1_000_000n).toString();
    const node: Node = {
      ...nameFields(key),
      type: 'dir',
      mode,
      uid: uid < 0 ? 0 : uid,
      gid: gid < 0 ? 0 : gid,
      mtimeNs: ns,
      ctimeNs: ns,
      inode: '0',
      dev: '0',
      size: 0,
    };
    const user = this.owners.user(node.uid);
    if (user !== undefined) node.user = user;
    const group = this.owners.group(node.gid);
    if (group !== undefined) node.group = group;
    return node;
  }

  async walkSources(root: Frame, sourceParent: Map<string, Frame>, sources: string[] = this.sources): Promise<void> {
    const stack: Frame[] = [];
    let sourcesSeen = 0;
    if (this.sources.length === 0) return; // only `files`
    const hasOnFile = this.currentSession !== undefined && (this.opts.plugins?.has('onFile') ?? false);
    if (sources.length === 0) {
      throw new Error(`none of the sources could be read: ${this.errors.map((e) => `${e.path} (${e.message})`).join('; ')}`);
    }
    const events = walk(sources, {
      exclude: this.opts.exclude ?? [],
      excludeFiles: this.opts.excludeFiles ?? [],
      oneFileSystem: Boolean(this.opts.oneFileSystem),
      signal: this.signal,
      ...(this.opts.walkFs ? { fs: this.opts.walkFs } : {}),
    }) as AsyncIterable<WalkEvent>;
    for await (const ev of events) {
      this.checkFatal();
      if (ev.kind === 'error') {
        this.recordError(ev.path, `${ev.op}: ${ev.error?.message ?? String(ev.error)}`);
        continue;
      }
      const entry = ev.entry;
      if (ev.kind === 'leave') {
        const frame = stack.pop();
        if (!frame) throw new Error(`walker: unbalanced leave for ${entry.path}`);
        if (frame.skipped) continue;
        // The source '/' is the root frame itself, finished after the walk.
        if (frame === root) continue;
        const parentFrame = stack.length > 0 ? stack[stack.length - 1]! : sourceParent.get(entry.source)!;
        if (parentFrame.skipped) continue;
        parentFrame.children.push(this.guard(this.finishFrame(frame)));
        continue;
      }

      // 'enter' or 'entry'
      if (entry.depth === 0) sourcesSeen++;
      this.progressAt(entry);
      const parentFrame = stack.length > 0 ? stack[stack.length - 1]! : sourceParent.get(entry.source);
      if (!parentFrame) throw new Error(`walker: no parent frame for ${entry.path} (source ${entry.source})`);
      const skippedParent = parentFrame.skipped;
      let metadata: Record<string, unknown> | undefined;
      let content: ContentSource | undefined;
      let skip = skippedParent;
      if (!skip && hasOnFile) {
        const decision = await this.askPlugins(entry);
        this.checkFatal();
        if (decision) {
          skip = decision.skip;
          metadata = decision.metadata;
          content = decision.content;
        }
      }

      if (ev.kind === 'enter') {
        if (skip) {
          skipChildren(entry);
          const frame = this.newFrame(entry.path, entry.name, undefined, undefined);
          frame.skipped = true;
          stack.push(frame);
          continue;
        }
        // The source '/' itself is the root frame.
        if (entry.depth === 0 && entry.path === '/') {
          stack.push(root);
          continue;
        }
        const node = nodeFromStat(entry.name, 'dir', entry.stat, this.owners);
        if (metadata && Object.keys(metadata).length) node.metadata = metadata;
        this.addXattrs(node, entry.pathBuf, entry.path);
        stack.push(this.newFrame(entry.path, entry.name, node, parentFrame));
        continue;
      }

      // A non-directory entry.
      if (skip) continue;
      if (content === undefined) {
        // Nothing to wait for (an unchanged file whose parent listing is here, a symlink, a
        // special file): done here, without a promise.
        const done = this.entryNow(entry, parentFrame, metadata);
        if (done !== undefined) {
          parentFrame.children.push(done);
          continue;
        }
      }
      const wait = this.limiter.acquire();
      if (wait) await wait;
      this.checkFatal();
      const p = this.backupEntry(entry, parentFrame, metadata, content).finally(() => {
        this.limiter.release();
        this.inflight.delete(p);
      });
      this.inflight.add(p);
      parentFrame.children.push(this.guard(p));
    }
    if (stack.length > 0) throw new Error(`walker: ${stack.length} directories were entered but not left`);
    if (sourcesSeen === 0) {
      throw new Error(`none of the sources could be read: ${this.errors.map((e) => `${e.path} (${e.message})`).join('; ')}`);
    }
  }

  async askPlugins(entry: WalkEntry): Promise<{ skip: boolean; content?: ContentSource; metadata?: Record<string, unknown> } | undefined> {
    const session = this.currentSession;
    if (!session) return undefined;
    const fileEntry: FileEntry = {
      path: entry.path,
      type: entry.type === 'file' || entry.type === 'dir' || entry.type === 'symlink' ? entry.type : 'other',
      stat: toNumberStats(entry.stat),
    };
    const pending = session.file(fileEntry);
    if (pending === undefined) return undefined;
    const d = await pending;
    const metadata = d.metadata ?? fileEntry.metadata;
    return {
      skip: Boolean(d.skip),
      ...(d.content !== undefined && entry.type === 'file' ? { content: d.content } : {}),
      ...(metadata && Object.keys(metadata).length ? { metadata } : {}),
    };
  }

  currentSession: ReturnType<PluginRuntime['createBackupSession']> | undefined;

  // --------------------------------------------------------------- entries

  async backupEntry(
    entry: WalkEntry,
    frame: Frame,
    metadata: Record<string, unknown> | undefined,
    content: ContentSource | undefined,
  ): Promise<Item | null> {
    let node = nodeFromStat(entry.name, entry.type, entry.stat, this.owners);
    if (metadata) node.metadata = metadata;
    let reusedXattrs = false;
    try {
      switch (entry.type) {
        case 'file': {
          const parentNode = (await frame.parentMap)?.byName.get(nameKey(entry.name));
          if (content !== undefined) {
            await this.saveContent(node, content);
            this.countFile(parentNode);
          } else if (parentNode && this.unchanged(parentNode, node)) {
            node.content = parentNode.content!.slice();
            // An attribute change changes the ctime: the parent's attributes still hold.
            if (this.parentHasXattrs && this.xattrs) {
              if (Array.isArray(parentNode.xattrs)) node.xattrs = parentNode.xattrs;
              reusedXattrs = true;
            }
            this.stats.filesUnmodified++;
          } else {
            this.reading.add(entry.path);
            const readBefore = this.stats.bytesRead;
            try {
              node = await this.saver.readFile(entry, node);
              this.finishedReadBytes += node.size;
            } catch (err) {
              // A file that failed part-way: what it read is no longer in progress.
              this.finishedReadBytes += Math.max(0, Math.min(this.stats.bytesRead - readBefore, Number(entry.stat.size)));
              throw err;
            } finally {
              this.reading.delete(entry.path);
            }
            this.countFile(parentNode);
          }
          this.stats.totalBytes += node.size;
          break;
        }
        case 'symlink': {
          let target: Buffer;
          try {
            target = (await readlink(entry.pathBuf, { encoding: 'buffer' })) as Buffer;
          } catch (err) {
            throw new EntryFailure('readlink', err);
          }
          const s = strictUtf8OrUndefined(target);
          if (s !== undefined) node.linkTarget = s;
          else {
            node.linkTarget = target.toString('utf8');
            node.linkTargetRaw = target.toString('base64');
          }
          break;
        }
        default:
          // fifo, socket, devices: metadata only, never opened.
          break;
      }
      if (!reusedXattrs) this.addXattrs(node, entry.pathBuf, entry.path);
    } catch (err) {
      if (err instanceof EntryFailure) {
        this.recordError(entry.path, describeFsError(err.op, err.cause));
        return null;
      }
      throw err;
    }
    this.stats.totalFiles++;
    this.progressAt(entry);
    return { key: entry.name, node };
  }

  /**
   * An entry that needs no waiting, done synchronously: an unchanged file (its directory's parent
   * listing already here), a symlink (its target read with a synchronous readlink), a special file.
   * Undefined when it needs the asynchronous path ({@link backupEntry}).
   */
  entryNow(entry: WalkEntry, frame: Frame, metadata: Record<string, unknown> | undefined): Item | null | undefined {
    if (entry.type === 'file' && !frame.listingReady) return undefined;
    const node = nodeFromStat(entry.name, entry.type, entry.stat, this.owners);
    if (metadata) node.metadata = metadata;
    let reusedXattrs = false;
    if (entry.type === 'file') {
      const prev = frame.listing?.byName.get(nameKey(entry.name));
      if (!prev || !this.unchanged(prev, node)) return undefined;
      node.content = prev.content!.slice();
      // An attribute change changes the ctime: the parent's attributes still hold.
      if (this.parentHasXattrs && this.xattrs) {
        if (Array.isArray(prev.xattrs)) node.xattrs = prev.xattrs;
        reusedXattrs = true;
      }
      this.stats.filesUnmodified++;
      this.stats.totalBytes += node.size;
    } else if (entry.type === 'symlink') {
      let target: Buffer;
      try {
        target = readlinkSync(entry.pathBuf, { encoding: 'buffer' });
      } catch (err) {
        this.recordError(entry.path, describeFsError('readlink', err));
        return null;
      }
      const s = strictUtf8OrUndefined(target);
      if (s !== undefined) node.linkTarget = s;
      else {
        node.linkTarget = target.toString('utf8');
        node.linkTargetRaw = target.toString('base64');
      }
    }
    if (!reusedXattrs) this.addXattrs(node, entry.pathBuf, entry.path);
    this.stats.totalFiles++;
    this.progressAt(entry);
    return { key: entry.name, node };
  }

  /**
   * Records the extended attributes of `pathBuf` in `node` (never following a symlink). An
   * attribute that cannot be stored (unreadable, over the size limits) is an error of the entry;
   * the entry itself is stored.
   */
  addXattrs(node: Node, pathBuf: Buffer, path: string): void {
    if (!this.xattrs) return;
    const r = readXattrs(pathBuf);
    if (r.xattrs) node.xattrs = r.xattrs;
    for (const p of r.problems) this.recordError(path, p);
  }

  countFile(parentNode: Node | undefined): void {
    if (parentNode) this.stats.filesChanged++;
    else this.stats.filesNew++;
  }

  /** Same type, size, mtime, ctime and inode, and every content blob still in the repository. */
  unchanged(prev: Node, cur: Node): boolean {
    return unchangedFile(prev, cur, this.hasData);
  }

  readonly hasData = (id: BlobId): boolean => this.repo.hasBlob('data', id);

  saveContent(node: Node, content: ContentSource): Promise<void> {
    return this.saver.saveContent(node, content);
  }

  saveTreeBlob(tree: Tree): Promise<BlobId> {
    return this.saver.saveTreeBlob(tree);
  }

  // ------------------------------------------------------------ directories

  /** Waits for a directory's children, saves its tree and returns its node. */
  async finishFrame(frame: Frame): Promise<Item> {
    for (const sub of frame.subframes.values()) frame.children.push(this.guard(this.finishFrame(sub)));
    const items = (await Promise.all(frame.children)).filter((i): i is Item => i !== null);
    items.sort((a, b) => Buffer.compare(a.key, b.key));
    const nodes: Node[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i > 0 && items[i - 1]!.key.equals(item.key)) {
        this.recordError(joinPath(frame.path, item.node.name), 'two entries with the same name; the later one is left out');
        continue;
      }
      nodes.push(item.node);
    }
    this.signal.throwIfAborted();
    // The same entries as in the parent snapshot: its tree blob is this one (when it is still stored).
    const listing = frame.listingReady ? frame.listing : await frame.parentMap.catch(() => undefined);
    const id = listing && sameEntries(listing, nodes) && this.repo.hasBlob('tree', listing.id) ? listing.id : await this.saveTreeBlob({ nodes });
    const node: Node = frame.node ? { ...frame.node, subtree: id } : this.rootNode(id);
    if (frame.node) {
      const prev = await frame.parentNode;
      if (!prev) this.stats.dirsNew++;
      else if (prev.subtree === id) this.stats.dirsUnmodified++;
      else this.stats.dirsChanged++;
    }
    return { key: frame.key, node };
  }

  rootNode(id: BlobId): Node {
    return { ...this.syntheticDirNode(Buffer.alloc(0), 0o755), subtree: id };
  }

  async addVirtualFiles(root: Frame): Promise<void> {
    for (const vf of this.virtualFiles) {
      this.checkFatal();
      let frame = root;
      let path = '';
      for (const part of vf.parts.slice(0, -1)) {
        path += '/' + part;
        let sub = frame.subframes.get(part);
        if (!sub) {
          const key = Buffer.from(part, 'utf8');
          sub = this.newFrame(path, key, this.syntheticDirNode(key, 0o700), frame);
          frame.subframes.set(part, sub);
        }
        frame = sub;
      }
      const name = vf.parts[vf.parts.length - 1]!;
      const key = Buffer.from(name, 'utf8');
      const file = this.syntheticDirNode(key, vf.options.mode ?? 0o600, vf.options.mtime ?? new Date());
      file.type = 'file';
      const filePath = `${path}/${name}`;
      try {
        await this.saveContent(file, vf.content);
      } catch (err) {
        if (err instanceof EntryFailure) {
          if (vf.required) throw new Error(`${filePath.slice(1)}: ${err.message}`, { cause: err.cause });
          this.recordError(filePath, `virtual file: ${err.message}`);
          continue;
        }
        throw err;
      }
      this.stats.filesNew++;
      this.stats.totalFiles++;
      this.stats.totalBytes += file.size;
      frame.children.push(Promise.resolve({ key, node: file }));
    }
  }
}

function skipChildren(entry: WalkEntry): void {
  const e = entry as WalkEntry & { skipChildren?: () => void; skip?: () => void };
  if (typeof e.skipChildren === 'function') e.skipChildren();
  else if (typeof e.skip === 'function') e.skip();
}

function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function strictUtf8OrUndefined(b: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return undefined;
  }
}

function describeFsError(op: string, cause: unknown): string {
  const e = cause as NodeJS.ErrnoException;
  const code = e?.code ? `${e.code}: ` : '';
  const msg = (e?.message ?? String(cause)).replace(/^[A-Z]+: /, '');
  return `${op}: ${code}${msg}`;
}

function safeUserInfo(): { username: string; uid: number; gid: number } | undefined {
  try {
    return userInfo();
  } catch {
    return undefined;
  }
}

