/**
 * Backup excludes that look at an entry itself, built as `onFile` middleware (restic's
 * `--exclude-caches`, `--exclude-if-present`, `--exclude-larger-than`, `--iexclude`).
 *
 * Each is a small plug-in; {@link builtinExcludes} returns the ones a backup asked for, to run in
 * front of the user's plug-ins (`PluginRuntime.withBuiltins`). An entry one of them skips is not
 * stored and not shown to later plug-ins (they do not call `next()` for it). When no such option is
 * given, nothing is registered, and the backup runs no `onFile` chain at all.
 *
 * Plain `--exclude` patterns stay in the walker: they are tested on names before any `lstat`,
 * which is cheaper than any hook.
 */
import { closeSync, constants as fsConstants, lstatSync, openSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Matcher, patternsForSource } from '../../walker/excludes.js';
import type { InlinePlugin } from '../runtime.js';
import type { FileContext, FileHook, PluginDefinition } from '../types.js';

/** The file that marks a cache directory (https://bford.info/cachedir/). */
export const CACHEDIR_TAG = 'CACHEDIR.TAG';
/** The first bytes a valid CACHEDIR.TAG starts with. */
export const CACHEDIR_SIGNATURE = 'Signature: 8a477f597d28d172789f06886806bc55';

/** What marks a directory whose contents are left out: a file name and, optionally, the bytes it starts with. */
export interface ExcludeMarker {
  name: string;
  header?: string;
}

export interface BuiltinExcludeOptions {
  /** Leave out the contents of directories holding a valid CACHEDIR.TAG (the tag file itself is kept). */
  excludeCaches?: boolean;
  /** Leave out the contents of directories holding one of these files (`name` or `name:header`); the marker file is kept. */
  excludeIfPresent?: readonly string[];
  /** Leave out regular files larger than this many bytes. */
  excludeLargerThan?: number;
  /** Exclude patterns as `--exclude` (gitignore syntax, per source), matched case-insensitively. */
  iexclude?: readonly string[];
}

/**
 * A byte size: `1048576`, `512K`, `10M`, `1.5G`, `2T` (powers of 1024, like restic; `KiB`,
 * `MB` and `b` suffixes are accepted too). Throws a `TypeError` naming the value otherwise.
 */
export function parseByteSize(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) throw new TypeError(`"${value}" is not a size (e.g. 500K, 10M, 1.5G, 2T)`);
  const exp = ' kmgtp'.indexOf((m[2] || ' ').toLowerCase());
  const bytes = Math.floor(Number(m[1]) * 1024 ** exp);
  if (!Number.isSafeInteger(bytes)) throw new TypeError(`"${value}" is too large`);
  return bytes;
}

/** `--exclude-larger-than`: skip regular files over `limit` bytes. */
export function excludeLargerThan(limit: number): FileHook {
  return (ctx, next) => {
    const f = ctx.file;
    if (f.type === 'file' && f.stat.size > limit) {
      ctx.log.debug(`excluded ${f.path}: ${f.stat.size} bytes, over ${limit}`);
      ctx.skip();
      return Promise.resolve();
    }
    return next();
  };
}

/** True when `dir` holds `marker` (a file starting with its header, when it has one). */
function holdsMarker(dir: string, marker: ExcludeMarker): boolean {
  const path = join(dir, marker.name);
  if (marker.header === undefined) {
    try {
      lstatSync(path);
      return true;
    } catch {
      return false;
    }
  }
  const want = Buffer.from(marker.header, 'utf8');
  let fd: number;
  try {
    // Never follow a symlink or block on a FIFO named like a marker.
    fd = openSync(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | (fsConstants.O_NONBLOCK ?? 0));
  } catch {
    return false;
  }
  try {
    const got = Buffer.alloc(want.length);
    let n = 0;
    while (n < want.length) {
      const r = readSync(fd, got, n, want.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return n === want.length && got.equals(want);
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** A marker from `name` or `name:header`. */
export function parseMarker(spec: string): ExcludeMarker {
  const i = spec.indexOf(':');
  const name = i < 0 ? spec : spec.slice(0, i);
  if (name === '' || name.includes('/') || name === '.' || name === '..') {
    throw new TypeError(`"${spec}": the marker must be a file name (no "/"), optionally followed by ":header"`);
  }
  return i < 0 ? { name } : { name, header: spec.slice(i + 1) };
}

/**
 * `--exclude-if-present` / `--exclude-caches`: a directory holding a marker file keeps only its
 * marker files; everything else in it is skipped (sub-directories with their whole subtree).
 * Costs one `lstat` (or a read of the header's length) per directory and marker.
 */
export function excludeIfPresent(markers: readonly ExcludeMarker[]): FileHook {
  const names = new Set(markers.map((m) => m.name));
  /** Directories found marked (→ the marker found); their children come right after them in the walk. */
  const marked = new Map<string, string>();
  return (ctx: FileContext, next) => {
    const f = ctx.file;
    const marker = marked.size > 0 ? marked.get(dirname(f.path)) : undefined;
    if (marker !== undefined) {
      if (f.type === 'file' && names.has(basename(f.path))) return next();
      ctx.log.debug(`excluded ${f.path}: its directory holds ${marker}`);
      ctx.skip();
      return Promise.resolve();
    }
    if (f.type === 'dir') {
      const found = markers.find((m) => holdsMarker(f.path, m));
      if (found) marked.set(f.path, found.name);
    }
    return next();
  };
}

/** `--iexclude`: gitignore-style patterns, as `--exclude` (per source), matched case-insensitively. */
export function iexclude(patterns: readonly string[]): FileHook {
  const lowered = patterns.map((p) => p.toLowerCase());
  let forSources: readonly string[] | undefined;
  let roots: Array<{ source: string; prefix: string; matcher: Matcher | undefined; excludeRoot: boolean }> = [];
  return (ctx, next) => {
    const sources = ctx.backup.sources;
    if (sources !== forSources) {
      forSources = sources;
      const all = sources.map((s) => s.toLowerCase());
      roots = sources.map((source, i) => {
        const { patterns: own, excludeRoot } = patternsForSource(lowered, all[i]!, all);
        const useful = own.some((p) => p.trim() !== '' && !p.startsWith('#'));
        return { source, prefix: source.endsWith('/') ? source : `${source}/`, matcher: useful ? new Matcher('', own) : undefined, excludeRoot };
      });
    }
    const path = ctx.file.path;
    for (const r of roots) {
      if (path === r.source) {
        if (r.excludeRoot) {
          ctx.skip();
          return Promise.resolve();
        }
        return next();
      }
      if (!path.startsWith(r.prefix)) continue;
      const rel = path.slice(r.prefix.length).toLowerCase();
      if (r.matcher) {
        const slash = rel.lastIndexOf('/');
        const test = ctx.file.type === 'dir' ? `${rel}/` : rel;
        if (r.matcher.verdict(test, slash < 0 ? '' : rel.slice(0, slash)) === true) {
          ctx.log.debug(`excluded ${path} (--iexclude)`);
          ctx.skip();
          return Promise.resolve();
        }
      }
      return next();
    }
    return next();
  };
}

function plugin(name: string, onFile: FileHook): InlinePlugin {
  const def: PluginDefinition = { name, onFile };
  return { name, module: def };
}

/**
 * The built-in middleware for these options, in a fixed order (cheapest test first); empty when
 * none is set. Throws a `TypeError` for a malformed marker.
 */
export function builtinExcludes(opts: BuiltinExcludeOptions): InlinePlugin[] {
  const out: InlinePlugin[] = [];
  if (opts.excludeLargerThan !== undefined) out.push(plugin('exclude-larger-than', excludeLargerThan(opts.excludeLargerThan)));
  if (opts.iexclude?.some((p) => p.trim() !== '')) out.push(plugin('iexclude', iexclude(opts.iexclude)));
  const markers = [
    ...(opts.excludeCaches ? [{ name: CACHEDIR_TAG, header: CACHEDIR_SIGNATURE }] : []),
    ...(opts.excludeIfPresent ?? []).map(parseMarker),
  ];
  if (markers.length > 0) out.push(plugin('exclude-if-present', excludeIfPresent(markers)));
  return out;
}
