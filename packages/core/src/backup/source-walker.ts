/**
 * The walk over the sources, the first stage of a backup: which sources exist, and frames for
 * their ancestors (with real lstat metadata); then the walker's events in order, a plug-in's
 * `onFile` decision for each entry (skip, metadata, content), a frame for each directory entered
 * (its tree saved when it is left), and every other entry backed up: at once when there is
 * nothing to wait for, else as a file worker (up to the run's limit at once), its result put in
 * its directory in walk order.
 */
import { lstat } from 'node:fs/promises';
import type { ContentSource, FileEntry } from '../plugins/types.js';
import type { PluginRuntime } from '../plugins/runtime.js';
import type { Node } from '../repository/types.js';
import { walk, type WalkEntry, type WalkEvent } from '../walker/index.js';
import type { EntrySaver } from './entries.js';
import type { Limiter } from './limiter.js';
import { nodeFromStat, syntheticDirNode, toNumberStats } from './node.js';
import type { BackupOptions } from './options.js';
import type { OwnerNames } from './owners.js';
import type { Progress } from './progress.js';
import type { Frame, TreeSaver } from './tree-saver.js';
import type { EntryError } from './types.js';

/** What the walk needs of the run. */
export interface SourceWalkerContext {
  readonly opts: BackupOptions;
  readonly sources: string[];
  readonly errors: EntryError[];
  readonly owners: OwnerNames;
  readonly signal: AbortSignal;
  /** File workers at once. */
  readonly limiter: Limiter;
  /** File workers running (awaited before the run ends, also after a failure). */
  readonly inflight: Set<Promise<unknown>>;
  readonly currentSession: ReturnType<PluginRuntime['createBackupSession']> | undefined;
  readonly progress: Progress;
  readonly trees: TreeSaver;
  readonly entries: EntrySaver;
  /** Extended attributes are read for every entry (the native addon is there). */
  readonly xattrs: boolean;
  /** The parent snapshot has extended attributes: unchanged files reuse them. */
  readonly parentHasXattrs: boolean;
  recordError(path: string, message: string): void;
  guard<T>(p: Promise<T>): Promise<T>;
  checkFatal(): void;
}

/** Walks the sources of one backup run; see the module comment. */
export class SourceWalker {
  constructor(private readonly ctx: SourceWalkerContext) {}

  /**
   * The sources that exist, and for each the frame its top entry belongs to: the root's
   * sub-frames for its ancestors are made here.
   */
  async sourceFrames(root: Frame): Promise<{ present: string[]; sourceParent: Map<string, Frame> }> {
    // A source that does not exist is one error, and neither it nor its missing ancestors become
    // (phantom) directories in the snapshot. Its path stays in the snapshot's `paths`.
    const present: string[] = [];
    for (const src of this.ctx.sources) {
      const missing = await lstat(src).then(
        () => undefined,
        (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' || err.code === 'ENOTDIR' ? err.code : undefined),
      );
      if (missing) this.ctx.recordError(src, `lstat: ${missing === 'ENOENT' ? 'no such file or directory' : 'a parent is not a directory'} (${missing})`);
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
            node = nodeFromStat(key, 'dir', await lstat(path, { bigint: true }), this.ctx.owners);
            this.ctx.entries.addXattrs(node, Buffer.from(path), path);
          } catch (err) {
            this.ctx.recordError(path, `lstat: ${(err as Error).message}`);
            node = syntheticDirNode(key, 0o755, this.ctx.owners);
          }
          sub = this.ctx.trees.newFrame(path, key, node, frame);
          frame.subframes.set(part, sub);
        }
        frame = sub;
      }
      sourceParent.set(src, frame);
    }
    return { present, sourceParent };
  }

  async walkSources(root: Frame, sourceParent: Map<string, Frame>, sources: string[] = this.ctx.sources): Promise<void> {
    const { opts, trees, entries, limiter, inflight, progress } = this.ctx;
    const stack: Frame[] = [];
    let sourcesSeen = 0;
    if (this.ctx.sources.length === 0) return; // only `files`
    const hasOnFile = this.ctx.currentSession !== undefined && (opts.plugins?.has('onFile') ?? false);
    if (sources.length === 0) {
      throw new Error(`none of the sources could be read: ${this.ctx.errors.map((e) => `${e.path} (${e.message})`).join('; ')}`);
    }
    const events = walk(sources, {
      exclude: opts.exclude ?? [],
      excludeFiles: opts.excludeFiles ?? [],
      oneFileSystem: Boolean(opts.oneFileSystem),
      signal: this.ctx.signal,
      // Attributes read with each directory on the threadpool; those of regular files only when no
      // parent snapshot has them (an unchanged file reuses its parent node's; a changed one reads its own).
      prefetchXattrs: !this.ctx.xattrs ? 'none' : this.ctx.parentHasXattrs ? 'non-files' : 'all',
      ...(opts.walkFs ? { fs: opts.walkFs } : {}),
    }) as AsyncIterable<WalkEvent>;
    for await (const ev of events) {
      this.ctx.checkFatal();
      if (ev.kind === 'error') {
        this.ctx.recordError(ev.path, `${ev.op}: ${ev.error?.message ?? String(ev.error)}`);
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
        parentFrame.children.push(this.ctx.guard(trees.finishFrame(frame)));
        continue;
      }

      // 'enter' or 'entry'
      if (entry.depth === 0) sourcesSeen++;
      progress.at(entry);
      const parentFrame = stack.length > 0 ? stack[stack.length - 1]! : sourceParent.get(entry.source);
      if (!parentFrame) throw new Error(`walker: no parent frame for ${entry.path} (source ${entry.source})`);
      const skippedParent = parentFrame.skipped;
      let metadata: Record<string, unknown> | undefined;
      let content: ContentSource | undefined;
      let skip = skippedParent;
      if (!skip && hasOnFile) {
        const decision = await this.askPlugins(entry);
        this.ctx.checkFatal();
        if (decision) {
          skip = decision.skip;
          metadata = decision.metadata;
          content = decision.content;
        }
      }

      if (ev.kind === 'enter') {
        if (skip) {
          skipChildren(entry);
          const frame = trees.newFrame(entry.path, entry.name, undefined, undefined);
          frame.skipped = true;
          stack.push(frame);
          continue;
        }
        // The source '/' itself is the root frame.
        if (entry.depth === 0 && entry.path === '/') {
          stack.push(root);
          continue;
        }
        const node = nodeFromStat(entry.name, 'dir', entry.stat, this.ctx.owners);
        if (metadata && Object.keys(metadata).length) node.metadata = metadata;
        entries.addXattrs(node, entry.pathBuf, entry.path, entry._xattrs);
        stack.push(trees.newFrame(entry.path, entry.name, node, parentFrame));
        continue;
      }

      // A non-directory entry.
      if (skip) continue;
      if (content === undefined) {
        // Nothing to wait for (an unchanged file whose parent listing is here, a symlink, a
        // special file): done here, without a promise.
        const done = entries.entryNow(entry, parentFrame, metadata);
        if (done !== undefined) {
          parentFrame.children.push(done);
          continue;
        }
      }
      const wait = limiter.acquire();
      if (wait) await wait;
      this.ctx.checkFatal();
      const p = entries.backupEntry(entry, parentFrame, metadata, content).finally(() => {
        limiter.release();
        inflight.delete(p);
      });
      inflight.add(p);
      parentFrame.children.push(this.ctx.guard(p));
    }
    if (stack.length > 0) throw new Error(`walker: ${stack.length} directories were entered but not left`);
    if (sourcesSeen === 0) {
      throw new Error(`none of the sources could be read: ${this.ctx.errors.map((e) => `${e.path} (${e.message})`).join('; ')}`);
    }
  }

  async askPlugins(entry: WalkEntry): Promise<{ skip: boolean; content?: ContentSource; metadata?: Record<string, unknown> } | undefined> {
    const session = this.ctx.currentSession;
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
}

function skipChildren(entry: WalkEntry): void {
  const e = entry as WalkEntry & { skipChildren?: () => void; skip?: () => void };
  if (typeof e.skipChildren === 'function') e.skipChildren();
  else if (typeof e.skip === 'function') e.skip();
}
