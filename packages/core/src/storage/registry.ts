/**
 * From a repository URL to a {@link Storage}: parse the scheme, find the
 * adapter (a built-in object or a module named in the config), open it, and
 * wrap it in the shared retry layer.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StorageError } from './errors.js';
import { withRetry, type RetryInfo, type RetryOptions } from './retry.js';
import { redactUrl } from './redact.js';
import type { Storage, StorageAdapter } from './types.js';

/** A repository URL split into its scheme and the rest. */
export interface RepositoryUrl {
  /** Lowercase scheme without the colon: `local`, `s3`, `sftp`, or a custom one. */
  scheme: string;
  /** What follows `scheme:`. For `local`, an absolute path with `~` expanded. */
  rest: string;
}

const SCHEME = /^([a-z][a-z0-9+.-]+):/;

export interface ParseRepositoryUrlOptions {
  /** Base for relative local paths (default `process.cwd()`). */
  cwd?: string;
  /** Home directory for `~` (default `os.homedir()`). */
  home?: string;
}

/**
 * Split a repository URL. A bare path (absolute, relative, `~/...`, or a
 * Windows `C:\...`) and `local:/path` give scheme `local` with an absolute path;
 * `s3:...`, `sftp:...` and any `name:...` whose scheme matches
 * `/^[a-z][a-z0-9+.-]+$/` (two characters or more) give that scheme and the rest
 * unchanged. To use a local directory whose name looks like a scheme, write it
 * as `./name:...` or `local:name:...`.
 */
export function parseRepositoryUrl(url: string, options: ParseRepositoryUrlOptions = {}): RepositoryUrl {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new StorageError('the repository location is empty', { kind: 'config' });
  }
  const m = SCHEME.exec(url);
  if (m && m[1] !== 'local') return { scheme: m[1]!, rest: url.slice(m[0].length) };
  const path = m ? url.slice(m[0].length) : url;
  if (path === '') throw new StorageError('the repository URL "local:" has no path', { kind: 'config' });
  return { scheme: 'local', rest: localPath(path, options) };
}

function localPath(path: string, options: ParseRepositoryUrlOptions): string {
  let p = path;
  if (p === '~' || p.startsWith('~/') || p.startsWith('~\\')) p = join(options.home ?? homedir(), p.slice(1));
  return resolve(options.cwd ?? process.cwd(), p);
}

export { redactUrl } from './redact.js';

export interface OpenStorageOptions {
  /**
   * Adapters by scheme: an adapter object, or a module to import (an npm package
   * name resolved from `cwd`, or a path to a file) whose default export or
   * `adapter` export is one.
   */
  adapters: Record<string, StorageAdapter<any> | string>;
  /** Options per scheme, passed to the adapter's `open` (the config file's `storageOptions`). */
  options?: Record<string, Record<string, unknown>>;
  /** Environment for credentials (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Where module names and relative paths resolve from (default `process.cwd()`). */
  cwd?: string;
  /** Options of the retry layer the storage is wrapped in. */
  retry?: RetryOptions;
  /** Shorthand for `retry.onRetry`: told before each retry wait, for logging. */
  onRetry?: (info: RetryInfo) => void;
}

/**
 * Open the storage a repository URL names, wrapped in {@link withRetry}.
 * Local paths are handed to the `local` adapter as `local:<absolute path>`; other
 * URLs are passed as given. Errors (unknown scheme, adapter module missing or
 * malformed) are `StorageError`s of kind `config` that say what to fix.
 */
export async function openStorage(url: string, options: OpenStorageOptions): Promise<Storage> {
  const cwd = options.cwd ?? process.cwd();
  const parsed = parseRepositoryUrl(url, { cwd });
  const entry = Object.prototype.hasOwnProperty.call(options.adapters, parsed.scheme)
    ? options.adapters[parsed.scheme]
    : undefined;
  if (entry === undefined) {
    const known = Object.keys(options.adapters).sort();
    throw new StorageError(
      `no storage adapter for the scheme "${parsed.scheme}:" in ${redactUrl(url)}; known schemes: ${
        known.length ? known.map((s) => `${s}:`).join(', ') : '(none)'
      }. A custom adapter is selected in the config, e.g. storage: { ${parsed.scheme}: "kiwi-storage-${parsed.scheme}" }`,
      { kind: 'config' },
    );
  }
  const adapter = typeof entry === 'string' ? await loadStorageAdapter(entry, cwd) : checkAdapter(entry, `the adapter for "${parsed.scheme}:"`);
  if (!adapter.schemes.includes(parsed.scheme)) {
    throw new StorageError(
      `the adapter configured for "${parsed.scheme}:" serves ${adapter.schemes.map((s) => `"${s}:"`).join(', ')}, not "${parsed.scheme}:"`,
      { kind: 'config' },
    );
  }
  const target = parsed.scheme === 'local' ? `local:${parsed.rest}` : url;
  const storage = await adapter.open(target, options.options?.[parsed.scheme] ?? {}, options.env ?? process.env);
  const onRetry = options.retry?.onRetry ?? options.onRetry;
  return withRetry(storage, onRetry ? { ...options.retry, onRetry } : options.retry);
}

/**
 * Import a storage adapter module: an npm package name (resolved from `cwd`,
 * preferring its ESM entry) or a file path (absolute, or relative to `cwd`).
 * Accepts a default export or a named `adapter` export.
 */
export async function loadStorageAdapter(spec: string, cwd: string = process.cwd()): Promise<StorageAdapter<any>> {
  const isPath = spec.startsWith('.') || isAbsolute(spec) || spec.startsWith('file:') || /^[A-Za-z]:[\\/]/.test(spec);
  let href: string;
  if (isPath) {
    const file = spec.startsWith('file:') ? spec : resolve(cwd, spec);
    if (!spec.startsWith('file:') && !existsSync(file)) {
      throw new StorageError(`storage adapter module ${spec} not found: ${file} does not exist`, { kind: 'config' });
    }
    href = spec.startsWith('file:') ? spec : pathToFileURL(file).href;
  } else {
    href = pathToFileURL(resolvePackage(spec, cwd)).href;
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(href)) as Record<string, unknown>;
  } catch (err) {
    throw new StorageError(`storage adapter module ${spec} failed to load: ${(err as Error)?.message ?? String(err)}`, {
      kind: 'config',
      cause: err,
    });
  }
  const candidate = pickExport(mod);
  if (candidate === undefined) {
    throw new StorageError(
      `storage adapter module ${spec} exports no adapter: expected a default export or an export named "adapter" ` +
        `with { schemes: string[], open(url, options, env) } (found exports: ${Object.keys(mod).join(', ') || 'none'})`,
      { kind: 'config' },
    );
  }
  return checkAdapter(candidate, `storage adapter module ${spec}`);
}

function pickExport(mod: Record<string, unknown>): unknown {
  const def = mod.default as Record<string, unknown> | undefined;
  if (looksLikeAdapter(def)) return def;
  if (looksLikeAdapter(mod.adapter)) return mod.adapter;
  // A CommonJS module imported from ESM: module.exports is the default.
  if (def && typeof def === 'object' && looksLikeAdapter(def.adapter)) return def.adapter;
  if (def && typeof def === 'object' && looksLikeAdapter(def.default)) return def.default;
  return def ?? mod.adapter;
}

function looksLikeAdapter(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'schemes' in v && 'open' in v;
}

function checkAdapter(v: unknown, what: string): StorageAdapter<any> {
  const a = v as Partial<StorageAdapter> | null;
  const problems: string[] = [];
  if (typeof a !== 'object' || a === null) problems.push(`it is ${a === null ? 'null' : typeof a}, not an object`);
  else {
    if (!Array.isArray(a.schemes) || a.schemes.length === 0 || !a.schemes.every((s) => typeof s === 'string' && /^[a-z][a-z0-9+.-]+$/.test(s))) {
      problems.push('"schemes" must be a non-empty array of lowercase scheme names without the colon (e.g. ["myscheme"])');
    }
    if (typeof a.open !== 'function') problems.push('"open" must be a function (url, options, env) => Storage');
  }
  if (problems.length) {
    throw new StorageError(`${what} is not a valid storage adapter: ${problems.join('; ')}`, { kind: 'config' });
  }
  return a as StorageAdapter<any>;
}

/** Find an npm package's ESM entry from `cwd`, walking up `node_modules` folders. */
function resolvePackage(spec: string, cwd: string): string {
  const parts = spec.split('/');
  const pkgName = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  const subpath = `.${spec.slice(pkgName.length)}`;
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const pkgDir = join(dir, 'node_modules', pkgName);
    const pkgFile = join(pkgDir, 'package.json');
    if (existsSync(pkgFile)) {
      const entry = packageEntry(pkgDir, pkgFile, subpath);
      if (entry) return entry;
      break;
    }
    if (dirname(dir) === dir) break;
  }
  // Fall back to Node's own resolution (CommonJS conditions).
  try {
    return createRequire(join(resolve(cwd), 'noop.js')).resolve(spec);
  } catch {
    throw new StorageError(
      `storage adapter module ${spec} not found from ${cwd}: install it (npm install ${pkgName}) or give a path to the file`,
      { kind: 'config' },
    );
  }
}

function packageEntry(pkgDir: string, pkgFile: string, subpath: string): string | undefined {
  let pkg: { exports?: unknown; module?: string; main?: string };
  try {
    pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as typeof pkg;
  } catch {
    return undefined;
  }
  if (pkg.exports !== undefined) {
    const exp = pkg.exports;
    let target: unknown;
    if (typeof exp === 'string' || Array.isArray(exp)) target = subpath === '.' ? exp : undefined;
    else if (exp && typeof exp === 'object') {
      const keys = Object.keys(exp);
      target = keys.some((k) => k.startsWith('.')) ? (exp as Record<string, unknown>)[subpath] : subpath === '.' ? exp : undefined;
    }
    const rel = pickCondition(target);
    return rel ? join(pkgDir, rel) : undefined;
  }
  if (subpath !== '.') return join(pkgDir, subpath);
  for (const rel of [pkg.module, pkg.main, 'index.js', 'index.mjs']) {
    if (!rel) continue;
    const file = join(pkgDir, rel);
    if (existsSync(file) && statSync(file).isFile()) return file;
    if (existsSync(`${file}.js`)) return `${file}.js`;
    if (existsSync(join(file, 'index.js'))) return join(file, 'index.js');
  }
  return undefined;
}

function pickCondition(target: unknown): string | undefined {
  if (typeof target === 'string') return target;
  if (Array.isArray(target)) {
    for (const t of target) {
      const r = pickCondition(t);
      if (r) return r;
    }
    return undefined;
  }
  if (target && typeof target === 'object') {
    const t = target as Record<string, unknown>;
    for (const cond of ['import', 'node', 'default', 'require']) {
      if (cond in t) {
        const r = pickCondition(t[cond]);
        if (r) return r;
      }
    }
  }
  return undefined;
}
