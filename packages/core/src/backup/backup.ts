/**
 * One backup run, from lock to snapshot: the lifecycle (the repository lock, the plug-in session
 * with `onBackupStart` and `onBackupStop`, interruption and failure, the result) and the order of
 * the stages: parent snapshot → walk (source-walker.ts) → entries (entries.ts) → file contents
 * (file-saver.ts) → virtual files (virtual-files.ts) → trees (tree-saver.ts) → flush → snapshot.
 * Run-wide state lives here; each stage is given the run through its own narrow context.
 */
import { randomBytes } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import type { BackupInfo, BackupStatus, ContentSource, Logger, VirtualFileOptions } from '../plugins/types.js';
import type { Snapshot } from '../repository/types.js';
import { normalizeSources } from '../walker/index.js';
import { BackupAbortedError } from '../plugins/errors.js';
import type { PluginRuntime } from '../plugins/runtime.js';
import { FileSaver } from './file-saver.js';
import { BATCH_FILES } from './savers/protocol.js';
import { Limiter } from './limiter.js';
import { safeUserInfo } from './node.js';
import { OwnerNames } from './owners.js';
import { TreeLoader } from '../snapshot-ops/tree-loader.js';
import { xattrsAvailable, xattrsUnavailableReason } from '../xattr/xattrs.js';
import { isTransientError } from '../storage/errors.js';
import type { EngineRepository, EntryError } from './types.js';
import { BackupInterruptedError, PROGRAM_VERSION, emptyStats, type BackupOptions, type BackupResult, type ErrorWithBackupResult } from './options.js';
import { EntrySaver } from './entries.js';
import { Progress } from './progress.js';
import { SourceWalker } from './source-walker.js';
import { TreeSaver } from './tree-saver.js';
import { VirtualFiles } from './virtual-files.js';

export { PROGRAM_VERSION, BackupInterruptedError, type BackupOptions, type BackupResult, type ErrorWithBackupResult } from './options.js';

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
  readonly virtualFiles: VirtualFiles;
  readonly info: BackupInfo;
  /**
   * The parent snapshot's trees, read ahead in batches while the walk goes on (one request per
   * directory would cost a round trip each over remote storage).
   */
  readonly parentTrees: TreeLoader;
  fatal: unknown;
  /** Progress reports: the path the walk is at, the files being read. */
  readonly progress = new Progress(this);
  /** Extended attributes are read for every entry (the native addon is there); else one warning per run. */
  readonly xattrs = xattrsAvailable();
  /** The parent snapshot recorded extended attributes: an unchanged file reuses its parent node's. */
  parentHasXattrs = false;
  currentSession: ReturnType<PluginRuntime['createBackupSession']> | undefined;
  /** The stages: each sees this run through its own narrow context interface. */
  readonly trees = new TreeSaver(this);
  readonly entries = new EntrySaver(this);
  readonly walker = new SourceWalker(this);

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
    this.virtualFiles = new VirtualFiles(this, new Set(this.sources.map((s) => s.split('/').filter(Boolean)[0] ?? '')));
    for (const f of files) {
      this.virtualFiles.add(f.path, f.content, { ...(f.mode !== undefined ? { mode: f.mode } : {}), ...(f.mtime ? { mtime: f.mtime } : {}) }, true);
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
      onAddFile: (path: string, content: ContentSource, opts?: VirtualFileOptions) => this.virtualFiles.add(path, content, opts),
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

  recordError(path: string, message: string): void {
    // Node's system errors end with the path (", open '/the/path'"): the report has it in front already.
    const e = { path, message: message.split(` '${path}'`).join('') };
    this.errors.push(e);
    this.stats.errors++;
    if (this.opts.onError) this.opts.onError(e);
    else this.log?.warn(`${path}: ${message}`);
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
    const root = this.trees.rootFrame(parent?.snapshot);
    const { present, sourceParent } = await this.walker.sourceFrames(root);

    try {
      await this.walker.walkSources(root, sourceParent, present);
    } finally {
      this.parentTrees.close();
    }
    this.virtualFiles.walkDone = true;

    // Virtual files from plug-ins: top level of the root tree under their relative path.
    await this.virtualFiles.saveInto(root);
    this.checkFatal();

    const rootItem = await this.trees.finishFrame(root);
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
      paths: this.sources.length > 0 ? [...this.sources] : this.virtualFiles.files.filter((v) => v.required).map((v) => `/${v.parts.join('/')}`).sort(),
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
}
