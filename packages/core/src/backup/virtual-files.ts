/**
 * Virtual files: content stored with no file behind it, from `BackupOptions.files` and plug-ins'
 * `ctx.addFile`, at the top of the root tree under their relative path. Each path is checked as
 * it is added (until the walk is done); after the walk, their content is saved and they are put
 * in the tree with their virtual directories (mode 0700), before the tree is finished.
 */
import type { BackupStats, ContentSource, VirtualFileOptions } from '../plugins/types.js';
import { EntryFailure, type FileSaver } from './file-saver.js';
import { syntheticDirNode } from './node.js';
import type { OwnerNames } from './owners.js';
import type { Frame, TreeSaver } from './tree-saver.js';

export interface VirtualFile {
  parts: string[];
  content: ContentSource;
  options: VirtualFileOptions;
  /** From `BackupOptions.files`: failing to read it fails the backup. */
  required: boolean;
}

/** What virtual files need of the run. */
export interface VirtualFilesContext {
  readonly stats: BackupStats;
  readonly owners: OwnerNames;
  readonly saver: Pick<FileSaver, 'saveContent'>;
  readonly trees: Pick<TreeSaver, 'newFrame'>;
  recordError(path: string, message: string): void;
  checkFatal(): void;
}

/** The virtual files of one backup run; see the module comment. */
export class VirtualFiles {
  readonly files: VirtualFile[] = [];
  /** Set once the walk is done: the snapshot's tree is being built, no file can be added. */
  walkDone = false;

  constructor(
    private readonly ctx: VirtualFilesContext,
    /** Top-level names of the backed-up paths: a virtual file may not clash with them. */
    private readonly realTopNames: Set<string>,
  ) {}

  add(path: string, content: ContentSource, options: VirtualFileOptions = {}, required = false): void {
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
    for (const v of this.files) {
      const other = v.parts.join('/');
      if (other === joined || other.startsWith(joined + '/') || joined.startsWith(other + '/')) {
        throw new Error(`addFile('${path}'): clashes with the virtual file '${other}'`);
      }
    }
    this.files.push({ parts, content, options, required });
  }

  /** Saves each file's content and puts it in the tree under `root` (virtual directories made as needed). */
  async saveInto(root: Frame): Promise<void> {
    const { stats, owners } = this.ctx;
    for (const vf of this.files) {
      this.ctx.checkFatal();
      let frame = root;
      let path = '';
      for (const part of vf.parts.slice(0, -1)) {
        path += '/' + part;
        let sub = frame.subframes.get(part);
        if (!sub) {
          const key = Buffer.from(part, 'utf8');
          sub = this.ctx.trees.newFrame(path, key, syntheticDirNode(key, 0o700, owners), frame);
          frame.subframes.set(part, sub);
        }
        frame = sub;
      }
      const name = vf.parts[vf.parts.length - 1]!;
      const key = Buffer.from(name, 'utf8');
      const file = syntheticDirNode(key, vf.options.mode ?? 0o600, owners, vf.options.mtime ?? new Date());
      file.type = 'file';
      const filePath = `${path}/${name}`;
      try {
        await this.ctx.saver.saveContent(file, vf.content);
      } catch (err) {
        if (err instanceof EntryFailure) {
          if (vf.required) throw new Error(`${filePath.slice(1)}: ${err.message}`, { cause: err.cause });
          this.ctx.recordError(filePath, `virtual file: ${err.message}`);
          continue;
        }
        throw err;
      }
      stats.filesNew++;
      stats.totalFiles++;
      stats.totalBytes += file.size;
      frame.children.push(Promise.resolve({ key, node: file }));
    }
  }
}
