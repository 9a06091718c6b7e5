import { lstat as fsLstat, lstatSync as fsLstatSync, readdir as fsReaddir, readdirSync as fsReaddirSync, constants as fsConstants, type BigIntStats, type Dirent } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { MAX_EXCLUDE_FILE, readSmallFile } from '../fsutil/small-file.js';
import { resolve, sep, dirname, basename } from 'node:path';
import { WalkEntry, entryType, type WalkEvent, type WalkLeaveEvent } from './entry.js';
import { Matcher, patternsForSource, splitPatterns } from './excludes.js';
import { assertPattern } from './patterns.js';
import { WalkConfigError, type WalkFs, type WalkOp, type WalkOptions } from './types.js';
import { nativeScanAvailable, sameId, scanDirectories, scanDirectorySync, scanXattrsAtAvailable, ScanStats, type ScannedEntry, type ScanOutcome, type ScanXattrs } from './scan.js';

const SEP = Buffer.from(sep);

const IGNORE_FILE_MAX = 4 * 1024 * 1024;

/**
 * Reads an ignore file without ever blocking on a special file: opened
 * non-blocking and without following a symlink, checked to be a regular file
 * (it may have been swapped since readdir) and at most 4 MiB.
 */
async function readIgnoreFile(p: Buffer): Promise<Buffer> {
  const fh = await openFile(p, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0) | (fsConstants.O_NOFOLLOW ?? 0));
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error(`not a regular file: ${p.toString()}`), { code: 'EINVAL' });
    if (st.size > IGNORE_FILE_MAX) {
      throw Object.assign(new Error(`ignore file larger than ${IGNORE_FILE_MAX} bytes: ${p.toString()}`), { code: 'EFBIG' });
    }
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

const defaultFs: WalkFs = {
  lstat: (p) =>
    new Promise((res, rej) => {
      fsLstat(p, { bigint: true }, (err, st) => (err ? rej(err) : res(st)));
    }),
  readdir: (p) =>
    new Promise((res, rej) => {
      fsReaddir(p, { encoding: 'buffer', withFileTypes: true }, (err, d) => (err ? rej(err) : res(d)));
    }),
  readFile: readIgnoreFile,
  lstatSync: (p) => fsLstatSync(p, { bigint: true }),
  readdirSync: (p) => fsReaddirSync(p, { encoding: 'buffer', withFileTypes: true }),
};

/**
 * In 'auto' stat mode, synchronous lstats averaging more than SLOW_MEAN_MS over
 * a window of SLOW_WINDOW calls, or a single one over SLOW_SINGLE_MS, mean a
 * cold cache or a slow (network) file system, where concurrent async calls win.
 */
const SLOW_WINDOW = 64;
const SLOW_MEAN_MS = 0.1;
const SLOW_SINGLE_MS = 10;
/** After a slow synchronous lstat, this many entries are stat'ed asynchronously (concurrently) before trying sync again. */
const ASYNC_CREDITS = 512;
/** Synchronous lstats in a row before the walker lets the event loop run. */
const SYNC_BURST = 1000;

type StatResult = BigIntStats | NodeJS.ErrnoException;

/**
 * With the native scanner, while reads are slow (see 'auto' below), the walker reads the
 * subdirectories of each open directory ahead of the one it is in, SCAN_AHEAD_BATCH in one
 * threadpool job (a job per directory would cost the main thread more in hand-overs than the
 * reading saves), and the next batch of that directory once the walk has entered the last one. So
 * at most SCAN_AHEAD_BATCH listings are held ahead per directory on the walk's stack.
 */
const SCAN_AHEAD_BATCH = 8;

/** @internal Tests: the native scanner reads ahead on the threadpool from the start, as it does with slow reads. */
export const walkTesting = { scanAhead: false };

/** One directory read now (not ahead). */
async function scanOne(dir: Buffer, xattrs: ScanXattrs, at: boolean): Promise<ScanOutcome> {
  return (await scanDirectories([dir], xattrs, at))[0]!;
}

function compareScanned(a: ScannedEntry, b: ScannedEntry): number {
  return Buffer.compare(a.name, b.name);
}

/** A directory that is no longer the one its parent listed (code ECHANGED). */
function replacedError(): NodeJS.ErrnoException {
  return Object.assign(new Error('the directory was replaced while the walk read it (a directory above it swapped for a symlink?): nothing below it was read'), { code: 'ECHANGED' });
}

function toErrno(err: unknown): NodeJS.ErrnoException {
  return err instanceof Error ? err : new Error(String(err));
}

/** lstat that never rejects (a rejection may sit unobserved while earlier siblings are yielded). */
function lstatSettled(fs: WalkFs, p: Buffer): Promise<StatResult> {
  if (fs.lstat === defaultFs.lstat) {
    return new Promise((res) => {
      fsLstat(p, { bigint: true }, (err, st) => res(err ?? st));
    });
  }
  return fs.lstat(p).then(
    (st) => st,
    (err: unknown) => toErrno(err),
  );
}

function joinPath(parent: Buffer, name: Buffer): Buffer {
  const trailing = parent.length > 0 && parent[parent.length - 1] === SEP[0];
  const len = parent.length + (trailing ? 0 : SEP.length) + name.length;
  const out = Buffer.allocUnsafe(len);
  parent.copy(out, 0);
  let off = parent.length;
  if (!trailing) off += SEP.copy(out, off);
  name.copy(out, off);
  return out;
}

/** Whether the child `name` of the directory at `rel` is excluded (the last matcher with a verdict decides). */
function excludedBy(matchers: readonly Matcher[], rel: string, name: Buffer, isDir: boolean): boolean {
  const nameStr = name.toString('utf8');
  const childRel = rel === '' ? nameStr : `${rel}/${nameStr}`;
  const test = isDir ? childRel + '/' : childRel;
  let excluded = false;
  for (const m of matchers) {
    const v = m.verdict(test, rel);
    if (v !== undefined) excluded = v;
  }
  return excluded;
}

function compareNames(a: Dirent<Buffer>, b: Dirent<Buffer>): number {
  return Buffer.compare(a.name, b.name);
}

interface Frame {
  dir: WalkEntry;
  /** Path relative to the source root, '/'-separated ('' for the root). */
  rel: string;
  dev: bigint;
  names: Buffer[];
  paths: (Buffer | undefined)[];
  stats: (Promise<StatResult> | undefined)[];
  next: number;
  launched: number;
  matchers: Matcher[];
  incomplete: WalkLeaveEvent['incomplete'];
  /** Native scanner: each name's entry (dropped once visited). */
  scanned?: (ScannedEntry | undefined)[];
  /** Native scanner: indexes of the children that are directories to descend into. */
  subdirs?: number[];
  /** Next position in `subdirs` to read ahead. */
  aheadNext: number;
  /** Subdirectories read ahead, by child index. */
  ahead: Map<number, Promise<ScanOutcome>>;
  /**
   * Native scanner: a directory from the source root down to this one may be written to by someone
   * else, who could swap one below for a symlink: the scans below read attributes by name in the
   * directory's descriptor, never by path (see {@link writableByOthers}).
   */
  exposed: boolean;
}

const EUID = typeof process.geteuid === 'function' ? BigInt(process.geteuid()) : undefined;

/**
 * Whether someone other than this process's user may write to the directory of `st`: another
 * owner, or write permission for its group or everyone. Only such a one can have its entries
 * swapped under the walk by someone else.
 */
function writableByOthers(st: BigIntStats): boolean {
  return EUID === undefined || st.uid !== EUID || (st.mode & 0o022n) !== 0n;
}

/**
 * Resolves, dedupes and checks walk sources: absolute paths, sorted by bytes,
 * duplicates dropped; a source inside another throws {@link WalkConfigError}.
 */
export function normalizeSources(sources: readonly string[]): string[] {
  if (sources.length === 0) throw new WalkConfigError('walk: no source paths given');
  const abs = [...new Set(sources.map((s) => resolve(s)))].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const a of abs) {
    const prefix = a.endsWith(sep) ? a : a + sep;
    const outer = abs.find((b) => b !== a && b.startsWith(prefix));
    if (outer !== undefined) {
      throw new WalkConfigError(`walk: source ${outer} is inside source ${a}; give only one of them`);
    }
  }
  return abs;
}

/**
 * Walks `sources` depth first with `lstat` only (symlinks are reported, never
 * followed), children in byte order of their names (`Buffer.compare`; names
 * that are not UTF-8 survive as exact bytes in `pathBuf`/`name`).
 *
 * Events: `enter` for a directory, then its children, then `leave`; `entry`
 * for everything else; `error` for an lstat/readdir/ignore-file failure (the
 * walk goes on). A source that doesn't exist is an `error` event.
 *
 * Special files (fifo, socket, chardev, blockdev) are reported as entries with
 * their type and are never opened by the walker; the rule for consumers is to
 * record them as metadata only and never read them.
 *
 * Skipping a directory's children: on its `enter` event call
 * `entry.skipChildren()` (or resume with `gen.next(true)`); its `leave` follows
 * with `incomplete: 'skipped'`.
 *
 * Excludes: see {@link WalkOptions}. An excluded entry produces no event and
 * an excluded directory is not read. Sources are resolved, deduped and walked
 * in byte order; a source inside another throws {@link WalkConfigError} at the
 * call. The generator throws {@link WalkConfigError} on its first step if an
 * exclude file can't be read, and `signal.reason` when aborted.
 */
export function walk(sources: readonly string[], options: WalkOptions = {}): AsyncGenerator<WalkEvent, void, boolean | undefined> {
  const roots = normalizeSources(sources);
  return walkSources(roots, options);
}

async function* walkSources(
  roots: string[],
  options: WalkOptions,
): AsyncGenerator<WalkEvent, void, boolean | undefined> {
  const fs: WalkFs = { ...defaultFs, ...options.fs };
  const signal = options.signal;
  const concurrency = Math.max(1, options.concurrency ?? 32);
  const ignoreName = options.ignoreFileName === undefined ? '.kiwiignore' : options.ignoreFileName;
  const ignoreNameBuf = ignoreName === null ? null : Buffer.from(ignoreName);
  const oneFs = options.oneFileSystem === true;
  const lstatSync = fs.lstatSync;
  // A custom async lstat without a sync twin can't be used synchronously.
  const syncOk = lstatSync !== undefined && (options.fs?.lstat === undefined || options.fs.lstatSync !== undefined);
  const readdirSync = fs.readdirSync;
  const readdirSyncOk = readdirSync !== undefined && (options.fs?.readdir === undefined || options.fs.readdirSync !== undefined);
  const statMode = syncOk ? (options.statMode ?? 'auto') : 'async';
  const scanXattrs: ScanXattrs = options.prefetchXattrs ?? 'none';
  // The native scanner: in 'auto' mode when the addon has it and no file-system call is replaced.
  const useScan = statMode === 'auto' && options.fs === undefined && nativeScanAvailable();
  // Where others may write above a directory, its attributes are read by name in its descriptor,
  // those of regular files too (a changed file would otherwise read its own by path).
  const xattrsAt = useScan && scanXattrs !== 'none' && scanXattrsAtAvailable();
  const xattrsBelow = (exposed: boolean): ScanXattrs => (exposed && scanXattrs === 'non-files' ? 'all' : scanXattrs);
  let asyncCredits = statMode === 'async' || (useScan && walkTesting.scanAhead) ? Infinity : 0;
  let syncBurst = 0;
  let windowCalls = 0;
  let windowMs = 0;
  /** Accounts a timed sync call in 'auto' mode; true when it is time to go async. */
  const tooSlow = (ms: number, units: number): boolean => {
    windowCalls += units;
    windowMs += ms;
    let slow = ms > SLOW_SINGLE_MS;
    if (windowCalls >= SLOW_WINDOW) {
      slow ||= windowMs / windowCalls > SLOW_MEAN_MS;
      windowCalls = 0;
      windowMs = 0;
    }
    return slow;
  };

  const patterns = [...(options.exclude ?? [])];
  for (const file of options.excludeFiles ?? []) {
    let text: string;
    try {
      // A regular file of a bounded size: `/dev/zero` or an endless pipe must not fill the memory.
      text = (await readSmallFile(file, { max: MAX_EXCLUDE_FILE })).toString('utf8');
    } catch (err) {
      throw new WalkConfigError(`walk: cannot read exclude file ${file}: ${toErrno(err).message}`, { cause: err });
    }
    // One by one: an exclude file of up to MAX_EXCLUDE_FILE may hold more patterns than a spread
    // into push() can pass as arguments (the stack overflows past ~100,000).
    for (const p of splitPatterns(text)) patterns.push(p);
  }
  // A pattern that cannot match what it says would exclude nothing, without a word.
  for (const p of patterns) assertPattern(p, 'exclude pattern');

  for (const source of roots) {
    signal?.throwIfAborted();
    const { patterns: own, excludeRoot } = patternsForSource(patterns, source, roots);
    if (excludeRoot) continue;
    const rootMatchers = own.some((p) => p.trim() !== '' && !p.startsWith('#')) ? [new Matcher('', own)] : [];
    const rootBuf = Buffer.from(source);
    let st: BigIntStats;
    try {
      st = statMode !== 'async' ? lstatSync!(rootBuf) : await fs.lstat(rootBuf);
    } catch (err) {
      yield { kind: 'error', path: source, pathBuf: rootBuf, error: toErrno(err), op: 'lstat', source, depth: 0 };
      continue;
    }
    const root = new WalkEntry(
      rootBuf,
      Buffer.from(basename(source)),
      Buffer.from(dirname(source)),
      entryType(st),
      st,
      0,
      source,
    );
    if (root.type !== 'dir') {
      yield { kind: 'entry', entry: root };
      continue;
    }

    const stack: Frame[] = [];
    // Opens a directory that was just entered: reads, sorts and filters its
    // names and starts the first lstats. Yields error events on failure.
    const open = async function* (
      dir: WalkEntry,
      rel: string,
      dev: bigint,
      parentMatchers: Matcher[],
      /** A directory above this one (within the source) may be written to by others; false for the root. */
      above: boolean,
      readAhead?: Promise<ScanOutcome>,
    ): AsyncGenerator<WalkEvent, Frame, boolean | undefined> {
      const frame: Frame = {
        dir,
        rel,
        dev,
        names: [],
        paths: [],
        stats: [],
        next: 0,
        launched: 0,
        matchers: parentMatchers,
        incomplete: undefined,
        aheadNext: 0,
        ahead: new Map(),
        exposed: xattrsAt && (above || writableByOthers(dir.stat)),
      };
      if (useScan) {
        let listing: ScanOutcome;
        if (readAhead !== undefined) listing = await readAhead;
        else if (asyncCredits === 0) {
          // Warm caches: read here. Slow reads switch to reading ahead on the threadpool for a while.
          const t0 = performance.now();
          listing = scanDirectorySync(dir.pathBuf, xattrsBelow(above), above);
          if (tooSlow(performance.now() - t0, (listing instanceof Error ? 0 : listing.length) + 1)) asyncCredits = ASYNC_CREDITS;
        } else listing = await scanOne(dir.pathBuf, xattrsBelow(above), above);
        return yield* openScanned(frame, listing);
      }
      let dirents: Dirent<Buffer>[];
      try {
        if (readdirSyncOk && statMode !== 'async' && asyncCredits === 0) {
          const t0 = performance.now();
          dirents = readdirSync!(dir.pathBuf);
          if (statMode === 'auto' && tooSlow(performance.now() - t0, dirents.length + 1)) asyncCredits = ASYNC_CREDITS;
        } else {
          dirents = await fs.readdir(dir.pathBuf);
        }
      } catch (err) {
        frame.incomplete = 'error';
        yield { kind: 'error', path: dir.path, pathBuf: dir.pathBuf, error: toErrno(err), op: 'readdir', source, depth: dir.depth };
        return frame;
      }
      dirents.sort(compareNames);
      if (ignoreNameBuf !== null && dirents.some((d) => d.name.equals(ignoreNameBuf) && d.isFile())) yield* readIgnoreFile(frame);
      const matchers = frame.matchers;
      for (const d of dirents) {
        if (matchers.length > 0 && excludedBy(matchers, rel, d.name, d.isDirectory())) continue;
        frame.names.push(d.name);
      }
      if (asyncCredits > 0) launch(frame, 0);
      return frame;
    };
    // Adds the patterns of the directory's ignore file (a regular file, just listed) to its matchers.
    const readIgnoreFile = async function* (frame: Frame): AsyncGenerator<WalkEvent, void, boolean | undefined> {
      const p = joinPath(frame.dir.pathBuf, ignoreNameBuf!);
      try {
        const text = (await fs.readFile(p)).toString('utf8');
        frame.matchers = [...frame.matchers, new Matcher(frame.rel, splitPatterns(text))];
      } catch (err) {
        yield { kind: 'error', path: p.toString(), pathBuf: p, error: toErrno(err), op: 'readIgnore', source, depth: frame.dir.depth + 1 };
      }
    };
    // open() with the native scanner: the listing comes with every child's lstat.
    const openScanned = async function* (frame: Frame, listing: ScanOutcome): AsyncGenerator<WalkEvent, Frame, boolean | undefined> {
      const dir = frame.dir;
      if (listing instanceof Error) {
        frame.incomplete = 'error';
        yield { kind: 'error', path: dir.path, pathBuf: dir.pathBuf, error: listing, op: 'readdir', source, depth: dir.depth };
        return frame;
      }
      // The scanner opens the directory by its path: O_NOFOLLOW guards its last name only, and a
      // directory above it swapped for a symlink since it was listed would lead anywhere (a root
      // backup of a user's home could store /etc/ssh under the user's name). So the directory
      // opened must be the one listed in its parent.
      const opened = listing.opened;
      if (opened !== undefined && !(sameId(opened.dev, dir.stat.dev) && sameId(opened.ino, dir.stat.ino))) {
        frame.incomplete = 'error';
        yield { kind: 'error', path: dir.path, pathBuf: dir.pathBuf, error: replacedError(), op: 'readdir', source, depth: dir.depth };
        return frame;
      }
      listing.sort(compareScanned);
      if (ignoreNameBuf !== null && listing.some((d) => d.name.equals(ignoreNameBuf) && d.stat instanceof ScanStats && d.stat.isFile())) {
        yield* readIgnoreFile(frame);
      }
      const matchers = frame.matchers;
      const scanned: ScannedEntry[] = [];
      const subdirs: number[] = [];
      for (const d of listing) {
        const isDir = d.stat instanceof ScanStats && d.stat.isDirectory();
        if (matchers.length > 0 && excludedBy(matchers, frame.rel, d.name, isDir)) continue;
        if (isDir && !(oneFs && (d.stat as ScanStats).dev !== frame.dev)) subdirs.push(scanned.length);
        frame.names.push(d.name);
        scanned.push(d);
      }
      frame.scanned = scanned;
      frame.subdirs = subdirs;
      readAheadIn(frame);
      return frame;
    };
    // Starts reading the next subdirectories of `frame` ahead (one batch), within the bounds above.
    const readAheadIn = (frame: Frame): void => {
      const subdirs = frame.subdirs!;
      if (frame.ahead.size > 0 || asyncCredits === 0) return;
      while (frame.aheadNext < subdirs.length && subdirs[frame.aheadNext]! < frame.next) frame.aheadNext++;
      const take = Math.min(SCAN_AHEAD_BATCH, subdirs.length - frame.aheadNext);
      if (take <= 0) return;
      const which = subdirs.slice(frame.aheadNext, frame.aheadNext + take);
      frame.aheadNext += take;
      const batch = scanDirectories(
        which.map((i) => joinPath(frame.dir.pathBuf, frame.names[i]!)),
        xattrsBelow(frame.exposed),
        frame.exposed,
      );
      which.forEach((i, k) => frame.ahead.set(i, batch.then((r) => r[k]!)));
    };
    // Takes the read-ahead of child `i` (undefined when there is none).
    const takeAhead = (frame: Frame, i: number): Promise<ScanOutcome> | undefined => {
      const p = frame.ahead.get(i);
      if (p === undefined) return undefined;
      frame.ahead.delete(i);
      return p;
    };

    // Starts async lstats for the children from `from` up to the concurrency window.
    const launch = (frame: Frame, from: number): void => {
      const limit = Math.min(frame.names.length, from + concurrency);
      if (frame.launched < from) frame.launched = from;
      while (frame.launched < limit) {
        const p = joinPath(frame.dir.pathBuf, frame.names[frame.launched]!);
        frame.paths[frame.launched] = p;
        frame.stats[frame.launched] = lstatSettled(fs, p);
        frame.launched++;
      }
    };

    // The source root.
    let skip = (yield { kind: 'enter', entry: root }) === true || root._skip;
    if (skip) {
      yield { kind: 'leave', entry: root, incomplete: 'skipped' };
      continue;
    }
    stack.push(yield* open(root, '', st.dev, rootMatchers, false));

    while (stack.length > 0) {
      signal?.throwIfAborted();
      const frame = stack[stack.length - 1]!;
      if (frame.next >= frame.names.length) {
        stack.pop();
        yield frame.incomplete === undefined
          ? { kind: 'leave', entry: frame.dir }
          : { kind: 'leave', entry: frame.dir, incomplete: frame.incomplete };
        continue;
      }
      const i = frame.next++;
      const name = frame.names[i]!;
      let res: StatResult;
      let pending = frame.stats[i];
      let scanned: ScannedEntry | undefined;
      if (frame.scanned !== undefined) {
        scanned = frame.scanned[i]!;
        frame.scanned[i] = undefined;
        frame.paths[i] = joinPath(frame.dir.pathBuf, name);
        res = scanned.stat;
        if (asyncCredits === 0) {
          if (++syncBurst >= SYNC_BURST) {
            syncBurst = 0;
            await new Promise<void>((r) => setImmediate(r));
          }
        } else if (asyncCredits !== Infinity) asyncCredits--;
      } else if (pending === undefined && asyncCredits === 0) {
        // Warm caches: a synchronous lstat costs a few µs, a thread-pool round
        // trip several times more. A slow one switches to concurrent async
        // lstats for a while (cold cache, network file system).
        const p = joinPath(frame.dir.pathBuf, name);
        frame.paths[i] = p;
        const t0 = performance.now();
        try {
          res = lstatSync!(p);
        } catch (err) {
          res = toErrno(err);
        }
        if (statMode === 'auto' && tooSlow(performance.now() - t0, 1)) asyncCredits = ASYNC_CREDITS;
        if (++syncBurst >= SYNC_BURST) {
          syncBurst = 0;
          await new Promise<void>((r) => setImmediate(r));
        }
      } else {
        launch(frame, i);
        pending ??= frame.stats[i]!;
        res = await pending;
        frame.stats[i] = undefined;
        if (asyncCredits !== Infinity && asyncCredits > 0) asyncCredits--;
      }
      const path = frame.paths[i]!;
      const depth = frame.dir.depth + 1;
      if (res instanceof Error) {
        yield { kind: 'error', path: path.toString('utf8'), pathBuf: path, error: res, op: 'lstat' as WalkOp, source, depth };
        continue;
      }
      frame.paths[i] = undefined;
      const entry = new WalkEntry(path, name, frame.dir.pathBuf, entryType(res), res, depth, source);
      entry._dir = frame.dir.stat;
      if (scanned !== undefined) {
        entry._link = scanned.link;
        entry._xattrs = scanned.xattrs;
      }
      if (entry.type !== 'dir') {
        yield { kind: 'entry', entry };
        continue;
      }
      const readAhead = frame.scanned !== undefined ? takeAhead(frame, i) : undefined;
      if (frame.scanned !== undefined) readAheadIn(frame);
      skip = (yield { kind: 'enter', entry }) === true || entry._skip;
      if (skip) {
        yield { kind: 'leave', entry, incomplete: 'skipped' };
        continue;
      }
      if (oneFs && res.dev !== frame.dev) {
        yield { kind: 'leave', entry, incomplete: 'other-fs' };
        continue;
      }
      const nameStr = frame.matchers.length > 0 || ignoreNameBuf !== null ? name.toString('utf8') : '';
      const rel = frame.rel === '' ? nameStr : `${frame.rel}/${nameStr}`;
      stack.push(yield* open(entry, rel, frame.dev, frame.matchers, frame.exposed, readAhead));
    }
  }
}
