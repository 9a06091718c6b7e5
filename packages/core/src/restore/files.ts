/**
 * Writing restored regular files: each is created under a temporary name in
 * its directory (O_EXCL|O_NOFOLLOW, see temp.ts), written, given its metadata
 * through the descriptor (metadata.ts) and renamed into place; a file that
 * fails is removed, never renamed. A one-blob file from the pack reader is
 * written on libuv's threadpool when native-fs has `writeFiles` (several
 * directories at once, one directory's files one after another, in batches);
 * otherwise small files are written with synchronous
 * calls (async again when the disk turns out slow); a multi-blob file takes
 * its blobs in any order at their offsets, and is closed between blobs when
 * too many are open. A sparse file's zero blocks stay holes (sparse.ts).
 */
import {
  close as fsClose,
  closeSync,
  constants as fsConstants,
  fstat as fsFstat,
  ftruncate as fsFtruncate,
  ftruncateSync,
  open as fsOpen,
  openSync,
  renameSync,
  unlinkSync,
  write as fsWrite,
  writeSync,
} from 'node:fs';
import { lstat, rename, unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { BlobId, Node } from '../repository/types.js';
import type { MetaWriter, SyncBudget } from './metadata.js';
import { writeSparseAt, writeSparseAtSync } from './sparse.js';
import { tempName, tempPath } from './temp.js';
import { childPath } from './anchors.js';
import { nativeFs, type NativeFs } from '../native/native-fs.js';

const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
const FILE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | O_NOFOLLOW;
// (O_NONBLOCK: a FIFO put in a file's place fails the open instead of blocking it; no effect on files.)
const REOPEN_FLAGS = fsConstants.O_WRONLY | O_NOFOLLOW | fsConstants.O_NONBLOCK;
const META_FLAGS = fsConstants.O_RDONLY | O_NOFOLLOW | fsConstants.O_NONBLOCK;
const SLASH = 0x2f;
const openFd = promisify(fsOpen) as (path: Buffer, flags: number, mode: number) => Promise<number>;
const closeFd = promisify(fsClose);
const fstatFd = promisify(fsFstat);
const ftruncateFd = promisify(fsFtruncate);
function writeFd(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
/** Writes all of `buf` at file position `pos`. */
async function writeAllAt(fd: number, buf: Buffer, pos: number): Promise<void> {
  let off = 0;
  while (off < buf.length) off += await writeFd(fd, buf, off, buf.length - off, pos + off);
}

/** Files up to this size (one blob) are written with synchronous calls. */
const SYNC_WRITE_MAX = 256 * 1024;
/** Partly written multi-blob files kept open at most (past this, a file is closed between its blobs). */
const MAX_OPEN_FILES = 128;

/** Thrown for an integrity or load failure of one file's content; names the file and the blob. */
export class RestoreFileError extends Error {
  override readonly name = 'RestoreFileError';
  constructor(
    readonly path: string,
    readonly blobId: string | undefined,
    cause: unknown,
  ) {
    // (The path is not in the message: errors are reported with their path beside it.)
    super(`${blobId ? `blob ${blobId}: ` : ''}${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** A directory of the restore. */
export interface DirState {
  /** Its name in its parent (undefined for the target). */
  name: Buffer | undefined;
  /**
   * What its entries' paths start with (`fsPath/name`, see anchors.ts): set once it exists and is
   * open (`created`, or `opened` for an existing directory only looked at); undefined before.
   */
  fsPath: Buffer | undefined;
  /** Its own descriptor when it is anchored (anchors.ts); closed when `closed`. */
  fd: number | undefined;
  /** Nobody else can change its entries (the restore made it, mode 0700, and has not set its metadata yet). */
  safe: boolean;
  /** Its metadata is set (or the restore is over): `fsPath` no longer names it safely. */
  closed: boolean;
  /** {@link Directories.withPath} calls using its descriptor: it is closed once they are done. */
  holds?: number;
  snapPath: string;
  node: Node | undefined;
  parent: DirState | undefined;
  /** Directories above it in the snapshot (the target's root is 0). */
  depth: number;
  /** Resolves when the directory exists (lazily created when something in it is restored). */
  created: Promise<void> | undefined;
  /** Resolves when an existing directory is open for looking at its entries (nothing created). */
  opened: Promise<void> | undefined;
  /** True once `created` has resolved. */
  ready: boolean;
  /**
   * The restore made this directory, so it held nothing: its entries are created without looking
   * at what is there. Known before it is created when its parent is fresh, else once it is.
   */
  fresh: boolean;
  /**
   * One-blob files of this directory waiting for (or in) a native `writeFiles` job: files of one
   * directory are created one after another, in batches, and files of different directories at
   * once. Creating a file holds its directory's lock in the kernel; two threads creating in one
   * directory only wait for each other (spinning, on a core the other could use).
   */
  writes?: DirWrites | undefined;
}

/** A file whose content the pack reader delivers. */
export interface FileTask {
  node: Node;
  /** Its name in `dir`. */
  name: Buffer;
  /** `dir.fsPath/name`, once `dir` is ready (see {@link FileWriter.path}). */
  fsPath: Buffer | undefined;
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

/** What the writer needs from the restore run. */
export interface WriterHost {
  readonly signal: AbortSignal | undefined;
  addBytes(n: number): void;
  ensureDir(dir: DirState): Promise<void>;
  loadBlob(id: BlobId): Promise<Buffer>;
}

type NativeFileArgs = [tmp: Buffer, final: Buffer, data: Buffer | null, mode: number, chmodMode: number, uid: number, gid: number, mtimeNs: bigint];
type NativeWriteFiles = (files: NativeFileArgs[]) => Promise<Array<Error | null>>;

/** A directory's queue of one-blob files for the native writer. */
export interface DirWrites {
  queued: Array<{ args: NativeFileArgs; resolve: () => void; reject: (e: unknown) => void }>;
  /** A batch of this directory is being written. */
  busy: boolean;
  /** A batch will start once the current burst of blobs is delivered. */
  scheduled: boolean;
}

/** Files per native job at most (a job holds their buffers until all are written). */
const MAX_BATCH = 64;

/** The addon's `writeFiles`, or one built on `writeFile` (an addon built before `writeFiles`), or undefined. */
function nativeWriter(native: NativeFs | null): NativeWriteFiles | undefined {
  if (native?.writeFiles) return native.writeFiles.bind(native);
  const one = native?.writeFile?.bind(native);
  if (!one) return undefined;
  return async (files) => {
    const out: Array<Error | null> = [];
    for (const a of files) out.push(await one(...a).then(() => null, (e: Error) => e));
    return out;
  };
}

export class FileWriter {
  /** Partly written multi-blob files with an open descriptor. */
  openFiles = 0;
  /** Whole files in threadpool jobs (undefined without native-fs, or one built before `writeFile`). */
  readonly nativeWrite: NativeWriteFiles | undefined;
  /** The addon's `writeFilesAt` (names in a directory descriptor), when it has it. */
  readonly nativeWriteAt: ((dirFd: number, files: NativeFileArgs[]) => Promise<Array<Error | null>>) | undefined;

  constructor(
    readonly host: WriterHost,
    readonly meta: MetaWriter,
    readonly budget: SyncBudget,
    native: NativeFs | null = nativeFs(),
  ) {
    this.nativeWrite = nativeWriter(native);
    this.nativeWriteAt = native?.writeFilesAt?.bind(native);
  }

  /** A file without content (empty), or any file when the repository has no pack reader: blobs load one by one. */
  async restoreFile(node: Node, fsPath: Buffer, snapPath: string, fresh: boolean): Promise<void> {
    const ids = node.content ?? [];
    const load = async (i: number): Promise<Buffer> => {
      try {
        return await this.host.loadBlob(ids[i]!);
      } catch (err) {
        throw new RestoreFileError(snapPath, ids[i], err);
      }
    };
    if (ids.length <= 1) {
      const buf = ids.length === 1 ? await load(0) : undefined;
      this.host.signal?.throwIfAborted();
      if (this.trySyncWrite(node, fsPath, snapPath, buf, fresh)) return;
      await this.writeFileAsync(node, fsPath, snapPath, buf ? [buf] : [], fresh);
      return;
    }
    // One blob in memory at a time.
    await this.writeFileAsync(
      node,
      fsPath,
      snapPath,
      (async function* () {
        for (let i = 0; i < ids.length; i++) yield await load(i);
      })(),
      fresh,
    );
  }

  /** Writes a small file synchronously unless synchronous calls have turned out slow; false: go async. */
  trySyncWrite(node: Node, fsPath: Buffer, snapPath: string, buf: Buffer | undefined, fresh: boolean): boolean {
    if (node.size > SYNC_WRITE_MAX || !this.budget.take()) return false;
    const t0 = performance.now();
    this.writeSmallFileSync(node, fsPath, snapPath, buf, fresh);
    this.budget.timed(t0);
    return true;
  }

  /** Writes a whole file from its blobs, in order (temporary name, metadata, rename). */
  async writeFileAsync(node: Node, fsPath: Buffer, snapPath: string, bufs: Iterable<Buffer> | AsyncIterable<Buffer>, fresh: boolean): Promise<void> {
    const tmp = tempPath(fsPath.subarray(0, fsPath.lastIndexOf(SLASH)));
    // Created with the permission bits already (minus the umask); fchmod only when that is not exact.
    let fd: number | undefined = await openFd(tmp, FILE_FLAGS, node.mode & 0o777);
    let ok = false;
    try {
      let pos = 0;
      for await (const buf of bufs) {
        this.host.signal?.throwIfAborted();
        if (node.sparse) await writeSparseAt(fd, buf, pos);
        else await writeAllAt(fd, buf, pos);
        pos += buf.length;
        this.host.addBytes(buf.length);
      }
      await this.finishFd(node, fd, pos, snapPath, fresh);
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

  /** Size check, length of a sparse file, owner, mode, attributes and times, through the descriptor. */
  async finishFd(node: Node, fd: number, written: number, snapPath: string, fresh: boolean): Promise<void> {
    this.checkSize(node, written, snapPath);
    if (node.sparse) await ftruncateFd(fd, node.size);
    await this.meta.file(node, fd, snapPath, fresh);
  }

  checkSize(node: Node, written: number, snapPath: string): void {
    if (node.size !== written && node.content) {
      throw new RestoreFileError(snapPath, undefined, new Error(`content is ${written} bytes, the tree says ${node.size}`));
    }
  }

  /** The synchronous twin of the write path, for a file of at most one blob. */
  writeSmallFileSync(node: Node, fsPath: Buffer, snapPath: string, buf: Buffer | undefined, fresh: boolean): void {
    const tmp = tempPath(fsPath.subarray(0, fsPath.lastIndexOf(SLASH)));
    let fd: number | undefined = openSync(tmp, FILE_FLAGS, node.mode & 0o777);
    let ok = false;
    try {
      let pos = 0;
      if (buf) {
        if (node.sparse) writeSparseAtSync(fd, buf, 0);
        else while (pos < buf.length) pos += writeSync(fd, buf, pos, buf.length - pos, pos);
        pos = buf.length;
        this.host.addBytes(buf.length);
      }
      this.checkSize(node, pos, snapPath);
      if (node.sparse) ftruncateSync(fd, node.size);
      this.meta.fileSync(node, fd, snapPath, fresh);
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

  /**
   * An existing file that is already the snapshot's (if-changed: same size
   * and mtime): only its metadata is set, through an O_NOFOLLOW descriptor.
   */
  async updateMetadata(node: Node, fsPath: Buffer, snapPath: string): Promise<void> {
    const fd = await openFd(fsPath, META_FLAGS, 0);
    try {
      const st = await fstatFd(fd);
      if (!st.isFile()) throw new Error('replaced while the restore looked at it');
      await this.meta.file(node, fd, snapPath, false);
    } finally {
      await closeFd(fd);
    }
  }

  // ------------------------------------------------------------ the pack reader's sink

  /** Whether one-blob files of `dir` are written by name in its descriptor (see anchors.ts), else by path. */
  writesAt(dir: DirState): boolean {
    return this.nativeWriteAt !== undefined && dir.fd !== undefined;
  }

  /** The path of a task's file (its directory is ready: created and open). */
  path(f: FileTask): Buffer {
    return (f.fsPath ??= childPath(f.dir.fsPath!, f.name));
  }

  /** The only blob of a one-blob file has arrived. */
  writeWhole(f: FileTask, data: Buffer): void | Promise<void> {
    this.host.signal?.throwIfAborted();
    if (!f.dir.ready) return this.host.ensureDir(f.dir).then(() => this.writeWhole(f, data));
    const native = this.nativeWrite;
    if (native && !f.node.sparse && f.node.xattrs === undefined) return this.writeWholeNative(native, f, data);
    const fsPath = this.path(f);
    if (this.trySyncWrite(f.node, fsPath, f.snapPath, data, f.dir.fresh)) return;
    return this.writeFileAsync(f.node, fsPath, f.snapPath, [data], f.dir.fresh);
  }

  /**
   * A one-blob file written on libuv's threadpool (native-fs `writeFiles`): creation, write,
   * owner, mode, times and rename run off the main thread, a directory's files in batches (one
   * job, one call from this thread per batch), several directories at once; the bytes are written
   * from `data` where it lies (no copy). Resolves when the file is in place.
   */
  async writeWholeNative(native: NativeWriteFiles, f: FileTask, data: Buffer): Promise<void> {
    const node = f.node;
    this.checkSize(node, data.length, f.snapPath);
    const dir = f.dir;
    const at = this.writesAt(dir);
    const tmp = at ? tempName() : tempPath(dir.fsPath!);
    const chown = this.meta.chown(node);
    const args: NativeFileArgs = [tmp, at ? f.name : this.path(f), data.length > 0 ? data : null, node.mode & 0o777, this.meta.chmodMode(node, dir.fresh), chown ? node.uid : -1, chown ? node.gid : -1, BigInt(node.mtimeNs)];
    await new Promise<void>((resolve, reject) => {
      const b = (dir.writes ??= { queued: [], busy: false, scheduled: false });
      b.queued.push({ args, resolve, reject });
      if (b.busy || b.scheduled) return;
      // The rest of this burst of blobs (one read's worth) joins the batch.
      b.scheduled = true;
      setImmediate(() => {
        b.scheduled = false;
        this.flushDir(native, dir, b);
      });
    });
    this.host.addBytes(data.length);
  }

  /** Starts the next batch of a directory's queued files (one threadpool job, in order), unless one is running. */
  flushDir(native: NativeWriteFiles, dir: DirState, b: DirWrites): void {
    if (b.busy) return;
    const signal = this.host.signal;
    if (signal?.aborted) {
      // Stopped: files not started yet are not written (their failure is the stop's).
      for (const q of b.queued.splice(0)) q.reject(signal.reason);
    }
    if (b.queued.length === 0) {
      if (dir.writes === b) dir.writes = undefined;
      return;
    }
    const batch = b.queued.splice(0, MAX_BATCH);
    b.busy = true;
    let job: Promise<Array<Error | null>>;
    try {
      // (Queued files are names in the descriptor when the directory has one: it stays open until they settle.)
      const args = batch.map((q) => q.args);
      job = this.writesAt(dir) ? this.nativeWriteAt!(dir.fd!, args) : native(args);
    } catch (err) {
      // A call that throws at once (a mismatched addon) fails these files; it must not leave them waiting.
      job = Promise.reject(err);
    }
    job.then(
      (results) => {
        for (let i = 0; i < batch.length; i++) {
          const e = results[i];
          if (e) batch[i]!.reject(e);
          else batch[i]!.resolve();
        }
      },
      (err: unknown) => {
        for (const q of batch) q.reject(err);
      },
    ).finally(() => {
      b.busy = false;
      this.flushDir(native, dir, b);
    });
  }


  /** A blob of a multi-blob file, at its offset (the file is created on the first one). */
  async writeAt(f: FileTask, data: Buffer, offset: number): Promise<void> {
    this.host.signal?.throwIfAborted();
    const fd = await this.fileFd(f);
    if (f.node.sparse) await writeSparseAt(fd, data, offset);
    else await writeAllAt(fd, data, offset);
    f.written += data.length;
    this.host.addBytes(data.length);
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
      if (!f.dir.ready) await this.host.ensureDir(f.dir);
      const tmp = tempPath(f.dir.fsPath!);
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
    await this.finishFd(f.node, fd, f.written, f.snapPath, f.dir.fresh);
    f.fd = undefined;
    this.openFiles--;
    await closeFd(fd);
    await rename(f.tmp!, this.path(f));
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
}

/** `create()` makes `path` (a link, symlink or special file); something already there that is not a directory is replaced. */
export async function createReplacing(path: Buffer, create: () => Promise<void>): Promise<void> {
  try {
    await create();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const st = await lstat(path);
    if (st.isDirectory()) throw Object.assign(new Error('a directory is in the way'), { code: 'EISDIR', syscall: 'replace' });
    await unlink(path);
    await create();
  }
}
