/**
 * The restore's directories: made (or found) when something in them is restored, opened when an
 * existing one's entries are looked at, each held by a descriptor so that nobody else can
 * redirect what is written in it (anchors.ts). A directory's descriptor is closed when its
 * metadata is set ({@link Directories.close}); later uses (a hard link to a file in it) open the
 * way again, one name at a time.
 */
import { closeSync, close as fsClose, openSync, fstat as fsFstat, open as fsOpen, type Stats } from 'node:fs';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { DirState } from './files.js';
import { removeLeftoverTemps } from './existing.js';
import type { Skeleton } from './skeleton.js';
import { DIR_OPEN_FLAGS, anchorsAvailable, childPath, fdPath, maxOpenDirs, ownMadeDirectory } from './anchors.js';

const openFd = promisify(fsOpen) as (path: Buffer | string, flags: number) => Promise<number>;
const closeFd = promisify(fsClose);
const fstatFd = promisify(fsFstat) as (fd: number) => Promise<Stats>;

export class Directories {
  readonly anchors = anchorsAvailable();
  /** Anchored descriptors open at most (the traversal waits in {@link room}). */
  readonly max = maxOpenDirs();
  readonly euid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
  /** Directories with a descriptor open (the target's not counted in {@link count}). */
  readonly #anchored = new Set<DirState>();
  count = 0;
  /** Directory operations running (awaited before descriptors are closed at the end). */
  readonly #ops = new Set<Promise<void>>();
  #waiters: Array<() => void> = [];

  constructor(
    readonly skeleton: Skeleton,
    readonly tempsRemoved: (n: number) => void,
  ) {}

  /** The target directory `real` (a real path, just made or found), opened; `fresh`: it is empty. */
  async target(real: string, fresh: boolean): Promise<DirState> {
    const root: DirState = {
      name: undefined,
      fsPath: Buffer.from(real, 'utf8'),
      fd: undefined,
      safe: false,
      closed: false,
      snapPath: '/',
      node: undefined,
      parent: undefined,
      depth: 0,
      created: Promise.resolve(),
      opened: undefined,
      ready: true,
      fresh,
    };
    if (this.anchors) {
      const fd = await openFd(real, DIR_OPEN_FLAGS);
      root.fd = fd;
      root.fsPath = fdPath(fd);
      this.#anchored.add(root);
    }
    return root;
  }

  /** A directory of the snapshot below `parent`, neither made nor opened yet. */
  child(parent: DirState, name: Buffer, snapPath: string, node: DirState['node'], fresh: boolean): DirState {
    return { name, fsPath: undefined, fd: undefined, safe: false, closed: false, snapPath, node, parent, depth: parent.depth + 1, created: undefined, opened: undefined, ready: false, fresh };
  }

  #track(p: Promise<void>): Promise<void> {
    this.#ops.add(p);
    p.catch(() => undefined).finally(() => this.#ops.delete(p));
    return p;
  }

  #adopt(dir: DirState, fd: number): void {
    dir.fd = fd;
    dir.fsPath = fdPath(fd);
    this.#anchored.add(dir);
    this.count++;
  }

  /** Opens an existing directory to look at its entries (nothing is made; its parent is opened first). */
  open(dir: DirState): Promise<void> {
    if (dir.fsPath) return Promise.resolve();
    if (dir.created) return dir.created;
    if (dir.opened) return dir.opened;
    dir.opened = this.#track(
      (async () => {
        const parent = dir.parent!;
        await this.open(parent);
        const path = childPath(parent.fsPath!, dir.name!);
        if (!this.anchors) {
          dir.fsPath = path;
          return;
        }
        this.#adopt(dir, await openFd(path, DIR_OPEN_FLAGS));
      })(),
    );
    return dir.opened;
  }

  /**
   * Makes `dir` (and its not-yet-made ancestors) and opens it; a non-directory in its place is
   * removed (the overwrite policy was asked first, see `ExistingTarget.planDir`). In a directory
   * the restore did not make, temporary files that killed restores left are removed before
   * anything is written.
   */
  ensure(dir: DirState): Promise<void> {
    if (dir.created) return dir.created;
    dir.created = this.#track(this.#make(dir));
    return dir.created;
  }

  async #make(dir: DirState): Promise<void> {
    const parent = dir.parent!;
    await this.ensure(parent);
    if (dir.opened) await dir.opened.catch(() => undefined);
    if (dir.fsPath) {
      // An existing directory, opened to look at its entries.
      dir.fresh = false;
      this.tempsRemoved(await removeLeftoverTemps(dir.fsPath));
      dir.ready = true;
      return;
    }
    const path = childPath(parent.fsPath!, dir.name!);
    const made = this.skeleton.pending ? this.skeleton.take(keyOf(dir)) : false;
    if (made !== false) {
      // Made by the skeleton: the restore's own, in a directory of its own (or handed over with its descriptor).
      if (made !== true) this.#adopt(dir, made);
      else if (!this.anchors) dir.fsPath = path;
      else if (!parent.safe) throw new Error('internal: a skeleton directory below one the restore does not own');
      // (Its path goes through directories of the restore's own only: opened as it is.)
      else this.#adopt(dir, openSync(path, DIR_OPEN_FLAGS));
      dir.safe = this.anchors;
      dir.fresh = true;
      dir.ready = true;
      return;
    }
    let madeNow = false;
    try {
      await mkdir(path, { mode: 0o700 });
      madeNow = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!(await lstat(path)).isDirectory()) {
        // A file or symlink where the directory goes: remove it (never follow it).
        await unlink(path);
        await mkdir(path, { mode: 0o700 });
        madeNow = true;
      }
    }
    if (!this.anchors) {
      if (!(await lstat(path)).isDirectory()) throw new Error('not a directory after mkdir');
      dir.fsPath = path;
    } else {
      const fd = await openFd(path, DIR_OPEN_FLAGS);
      if (madeNow && !parent.safe) {
        // Others may write in its parent: is it the one just made (the restore's own, mode 0700)? If not
        // (someone swapped in a directory of theirs; or a file system whose owners and modes are
        // made up, vfat, exFAT, CIFS), what is in it is looked at as in any existing directory. Either
        // way the writes stay in it, below the target: it is held by its descriptor.
        const st = await fstatFd(fd);
        if (!ownMadeDirectory(st, this.euid)) madeNow = false;
      }
      dir.safe = madeNow;
      this.#adopt(dir, fd);
    }
    dir.fresh = madeNow;
    if (!madeNow) this.tempsRemoved(await removeLeftoverTemps(dir.fsPath!));
    dir.ready = true;
  }

  /**
   * Everything below `dir` is written and its metadata set: its descriptor (if any) is closed and its
   * path no longer used. While a {@link withPath} call still uses the descriptor, it is closed when
   * that call is done (closing it under the call would make its path name nothing, or whatever
   * directory gets the descriptor's number next).
   */
  close(dir: DirState): void {
    dir.closed = true;
    dir.safe = false;
    if (dir.fd === undefined || (dir.holds ?? 0) > 0) return;
    this.#closeFd(dir);
  }

  #closeFd(dir: DirState): void {
    const fd = dir.fd!;
    dir.fd = undefined;
    this.#anchored.delete(dir);
    if (dir.parent) this.count--;
    closeSync(fd);
    // (Waiters check again: see room.)
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Nothing below `dir` will be written (its tree cannot be read): closed once its making or opening has settled. */
  async abandon(dir: DirState): Promise<void> {
    await (dir.created ?? dir.opened)?.catch(() => undefined);
    if (dir.parent) this.close(dir);
  }

  /** A promise to wait on before entering a directory `depth` deep, while too many descriptors are open; ask again once it resolves. */
  room(depth: number): Promise<void> | undefined {
    // (The directories on the traversal's way down stay open: they do not count against the bound.
    // Those are the depth - 1 above it, the target's own descriptor not being counted.)
    if (this.count - (depth - 1) <= this.max) return undefined;
    return new Promise((r) => this.#waiters.push(r));
  }

  /**
   * Calls `fn` with a path naming directory `dir`, made earlier: its descriptor's while it is
   * open; once it is closed (its metadata set), the way to it is opened again from the nearest
   * open directory above, one name at a time, O_NOFOLLOW.
   */
  async withPath<T>(dir: DirState, fn: (path: Buffer) => Promise<T>): Promise<T> {
    if (!this.anchors) return fn(dir.fsPath!);
    const names: Buffer[] = [];
    let d = dir;
    while (d.closed && d.parent) {
      names.push(d.name!);
      d = d.parent;
    }
    // The open directory the way starts from stays open until `fn` is done (see close).
    const held = d;
    held.holds = (held.holds ?? 0) + 1;
    let prefix = d.fsPath!;
    let fd: number | undefined;
    try {
      for (let i = names.length - 1; i >= 0; i--) {
        const next = await openFd(childPath(prefix, names[i]!), DIR_OPEN_FLAGS);
        if (fd !== undefined) await closeFd(fd);
        fd = next;
        prefix = fdPath(next);
      }
      return await fn(prefix);
    } finally {
      if (fd !== undefined) await closeFd(fd);
      if (--held.holds! === 0 && held.closed && held.fd !== undefined) this.#closeFd(held);
    }
  }

  /** The restore is over: waits for directory operations still running, then closes every descriptor. */
  async closeAll(): Promise<void> {
    while (this.#ops.size > 0) await Promise.allSettled([...this.#ops]);
    for (const d of [...this.#anchored]) {
      d.closed = true;
      if (d.fd !== undefined) this.#closeFd(d);
    }
    this.skeleton.close();
  }
}

/** The latin1 key of `dir`'s path below the target (the skeleton's keys). */
function keyOf(dir: DirState): string {
  let key = dir.name!.toString('latin1');
  for (let d = dir.parent; d?.parent; d = d.parent) key = `${d.name!.toString('latin1')}/${key}`;
  return key;
}
