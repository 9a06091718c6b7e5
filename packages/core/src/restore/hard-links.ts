/**
 * Hard links of a restore: names of one file (same `dev`/`inode`, `links` > 1) after the first one
 * restored are hard links to it, made once it is written. When the first failed, or the file
 * system cannot link there, the content is written again instead.
 */
import { link } from 'node:fs/promises';
import type { BlobId, Node } from '../repository/types.js';
import { childPath } from './anchors.js';
import type { Directories } from './directories.js';
import { createReplacing, type DirState, type FileWriter } from './files.js';

/** Errors of `link` that mean "this file system cannot link here" (then the content is written again). */
const CANNOT_LINK = new Set(['EPERM', 'EXDEV', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** The first restored name of a hard-linked file, and whether it was written. */
export interface FirstName {
  dir: DirState;
  name: Buffer;
  size: number;
  content: BlobId[] | undefined;
  done: Promise<boolean>;
}

export class HardLinks {
  /** By `dev:inode`. */
  readonly #first = new Map<string, FirstName>();

  constructor(
    readonly dirs: Directories,
    readonly writer: FileWriter,
  ) {}

  /** The key of a file with several names, else undefined. */
  key(node: Node): string | undefined {
    return node.type === 'file' && (node.links ?? 0) > 1 ? `${node.dev}:${node.inode}` : undefined;
  }

  /** The first name of `node`'s file already being restored, when `node` is a further name of it (same size and content). */
  firstOf(key: string | undefined, node: Node): FirstName | undefined {
    const first = key !== undefined ? this.#first.get(key) : undefined;
    return first && first.size === node.size && sameContent(first.content, node.content) ? first : undefined;
  }

  /** Records the first name of a file with several names; `work` settles when it is written. */
  record(key: string, node: Node, dir: DirState, name: Buffer, work: Promise<void>): void {
    if (this.#first.has(key)) return;
    this.#first.set(key, { dir, name, size: node.size, content: node.content, done: work.then(() => true, () => false) });
  }

  /** Restores `name` in `dir` as a further name of `first`'s file: a link once that is written, else the content again. */
  async restore(first: FirstName, node: Node, name: Buffer, snapPath: string, dir: DirState): Promise<void> {
    const written = await first.done;
    await this.dirs.ensure(dir);
    const fsPath = childPath(dir.fsPath!, name);
    if (written) {
      try {
        // (The first name's directory may be done by now: withPath opens the way to it again.)
        await this.dirs.withPath(first.dir, (from) => createReplacing(fsPath, () => link(childPath(from, first.name), fsPath)));
        return;
      } catch (err) {
        if (!CANNOT_LINK.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      }
    }
    await this.writer.restoreFile(node, fsPath, snapPath, dir.fresh);
  }
}

function sameContent(a: readonly BlobId[] | undefined, b: readonly BlobId[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
