/**
 * Backing up one walked entry other than a directory, between the walk and the file saver: its
 * node from the walk's lstat; for a regular file, a plug-in's content, the parent snapshot's
 * content list when the file is unchanged, or its bytes read and saved by the file saver; for a
 * symlink, its target; then its extended attributes. A file-system error of the entry is recorded
 * and leaves the entry out; the backup goes on.
 */
import { readlinkSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import type { BackupStats, ContentSource } from '../plugins/types.js';
import type { BlobId, Node } from '../repository/types.js';
import type { WalkEntry } from '../walker/index.js';
import { readXattrs, xattrsFromList } from '../xattr/xattrs.js';
import { EntryFailure, type FileSaver } from './file-saver.js';
import { nameKey, nodeFromStat, strictUtf8 } from './node.js';
import type { OwnerNames } from './owners.js';
import { unchangedFile } from './parent.js';
import type { Progress } from './progress.js';
import type { Frame, Item } from './tree-saver.js';
import type { EngineRepository } from './types.js';

/** What backing up an entry needs of the run. */
export interface EntrySaverContext {
  readonly repo: EngineRepository;
  readonly stats: BackupStats;
  readonly owners: OwnerNames;
  /** Reads files and saves their content. */
  readonly saver: Pick<FileSaver, 'readFile' | 'saveContent'>;
  readonly progress: Progress;
  /** Extended attributes are read for every entry (the native addon is there). */
  readonly xattrs: boolean;
  /** The parent snapshot recorded extended attributes: an unchanged file reuses its parent node's. */
  readonly parentHasXattrs: boolean;
  recordError(path: string, message: string): void;
}

/** Backs up the walk's entries other than directories; see the module comment. */
export class EntrySaver {
  constructor(private readonly ctx: EntrySaverContext) {}

  async backupEntry(
    entry: WalkEntry,
    frame: Frame,
    metadata: Record<string, unknown> | undefined,
    content: ContentSource | undefined,
  ): Promise<Item | null> {
    const { stats, progress } = this.ctx;
    let node = nodeFromStat(entry.name, entry.type, entry.stat, this.ctx.owners);
    if (metadata) node.metadata = metadata;
    let reusedXattrs = false;
    try {
      switch (entry.type) {
        case 'file': {
          const parentNode = (await frame.parentMap)?.byName.get(nameKey(entry.name));
          if (content !== undefined) {
            await this.ctx.saver.saveContent(node, content);
            this.countFile(parentNode);
          } else if (parentNode && this.unchanged(parentNode, node)) {
            node.content = parentNode.content!.slice();
            // An attribute change changes the ctime: the parent's attributes still hold.
            if (this.ctx.parentHasXattrs && this.ctx.xattrs) {
              if (Array.isArray(parentNode.xattrs)) node.xattrs = parentNode.xattrs;
              reusedXattrs = true;
            }
            stats.filesUnmodified++;
          } else {
            progress.reading.add(entry.path);
            const readBefore = stats.bytesRead;
            try {
              node = await this.ctx.saver.readFile(entry, node);
              progress.finishedReadBytes += node.size;
            } catch (err) {
              // A file that failed part-way: what it read is no longer in progress.
              progress.finishedReadBytes += Math.max(0, Math.min(stats.bytesRead - readBefore, Number(entry.stat.size)));
              throw err;
            } finally {
              progress.reading.delete(entry.path);
            }
            this.countFile(parentNode);
          }
          stats.totalBytes += node.size;
          break;
        }
        case 'symlink': {
          let target: Buffer;
          if (entry._link instanceof Error) throw new EntryFailure('readlink', entry._link);
          else if (entry._link !== undefined) target = entry._link;
          else {
            try {
              target = (await readlink(entry.pathBuf, { encoding: 'buffer' })) as Buffer;
            } catch (err) {
              throw new EntryFailure('readlink', err);
            }
          }
          const s = strictUtf8(target);
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
      if (!reusedXattrs) this.addXattrs(node, entry.pathBuf, entry.path, entry._xattrs);
    } catch (err) {
      if (err instanceof EntryFailure) {
        this.ctx.recordError(entry.path, describeFsError(err.op, err.cause));
        return null;
      }
      throw err;
    }
    stats.totalFiles++;
    progress.at(entry);
    return { key: entry.name, node };
  }

  /**
   * An entry that needs no waiting, done synchronously: an unchanged file (its directory's parent
   * listing already here), a symlink (its target read with a synchronous readlink), a special file.
   * Undefined when it needs the asynchronous path ({@link backupEntry}).
   */
  entryNow(entry: WalkEntry, frame: Frame, metadata: Record<string, unknown> | undefined): Item | null | undefined {
    if (entry.type === 'file' && !frame.listingReady) return undefined;
    const { stats } = this.ctx;
    const node = nodeFromStat(entry.name, entry.type, entry.stat, this.ctx.owners);
    if (metadata) node.metadata = metadata;
    let reusedXattrs = false;
    if (entry.type === 'file') {
      const prev = frame.listing?.byName.get(nameKey(entry.name));
      if (!prev || !this.unchanged(prev, node)) return undefined;
      node.content = prev.content!.slice();
      // An attribute change changes the ctime: the parent's attributes still hold.
      if (this.ctx.parentHasXattrs && this.ctx.xattrs) {
        if (Array.isArray(prev.xattrs)) node.xattrs = prev.xattrs;
        reusedXattrs = true;
      }
      stats.filesUnmodified++;
      stats.totalBytes += node.size;
    } else if (entry.type === 'symlink') {
      let target: Buffer;
      try {
        if (entry._link instanceof Error) throw entry._link;
        target = entry._link ?? readlinkSync(entry.pathBuf, { encoding: 'buffer' });
      } catch (err) {
        this.ctx.recordError(entry.path, describeFsError('readlink', err));
        return null;
      }
      const s = strictUtf8(target);
      if (s !== undefined) node.linkTarget = s;
      else {
        node.linkTarget = target.toString('utf8');
        node.linkTargetRaw = target.toString('base64');
      }
    }
    if (!reusedXattrs) this.addXattrs(node, entry.pathBuf, entry.path, entry._xattrs);
    stats.totalFiles++;
    this.ctx.progress.at(entry);
    return { key: entry.name, node };
  }

  /**
   * Records the extended attributes of `pathBuf` in `node` (never following a symlink), or those
   * the walk read with its directory. An attribute that cannot be stored (unreadable, over the
   * size limits) is an error of the entry; the entry itself is stored.
   */
  addXattrs(node: Node, pathBuf: Buffer, path: string, prefetched?: WalkEntry['_xattrs']): void {
    if (!this.ctx.xattrs) return;
    // Read with the directory by the walker's native scanner (`prefetched`), or now.
    const r = prefetched !== undefined ? xattrsFromList(prefetched) : readXattrs(pathBuf);
    if (r.xattrs) node.xattrs = r.xattrs;
    for (const p of r.problems) this.ctx.recordError(path, p);
  }

  countFile(parentNode: Node | undefined): void {
    if (parentNode) this.ctx.stats.filesChanged++;
    else this.ctx.stats.filesNew++;
  }

  /** Same type, size, mtime, ctime and inode, and every content blob still in the repository. */
  unchanged(prev: Node, cur: Node): boolean {
    return unchangedFile(prev, cur, this.hasData);
  }

  readonly hasData = (id: BlobId): boolean => this.ctx.repo.hasBlob('data', id);
}

function describeFsError(op: string, cause: unknown): string {
  const e = cause as NodeJS.ErrnoException;
  const code = e?.code ? `${e.code}: ` : '';
  const msg = (e?.message ?? String(cause)).replace(/^[A-Z]+: /, '');
  return `${op}: ${code}${msg}`;
}
