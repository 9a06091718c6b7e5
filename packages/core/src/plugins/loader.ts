import { readdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KiwiConfig } from '../config/config.js';
import { isPathSpec, resolveUserPath } from '../config/config.js';
import { closestMatch } from '../config/suggest.js';
import { pluginsDir as pluginsDirOf } from '../datadir.js';
import { childLogger } from '../log/logger.js';
import { PluginError } from './errors.js';
import { isHookName, looksLikeHook, suggestHookName } from './hooknames.js';
import { HOOK_NAMES, type HookName, type Logger, type PluginApi, type PluginHooks, type PluginModule } from './types.js';
import type { UndoHandler } from './recovery.js';

/**
 * Where a plug-in came from: `<dataDir>/plugins/<name>/`, a path in the config, an npm package in the
 * config, or Kiwi itself (built-in middleware such as backup's `--exclude-caches`).
 */
export type PluginSource = 'datadir' | 'config' | 'package' | 'builtin';

/** A loaded plug-in, as `kiwi plugins` shows it. */
export interface PluginInfo {
  name: string;
  source: PluginSource;
  /** The module file that was imported. */
  path: string;
  /** The hooks it registered, in canonical order. */
  hooks: HookName[];
  options: Record<string, unknown>;
  /** Problems that did not stop it from loading (misnamed hooks, …). */
  warnings: string[];
}

/** A plug-in the config disabled (`enabled: false`). */
export interface DisabledPluginInfo {
  name: string;
  source: PluginSource;
  path?: string;
}

/** A plug-in with its hook functions, bound to its definition. */
export interface LoadedPlugin extends PluginInfo {
  readonly impl: Readonly<PluginHooks>;
  /** Undo handlers for the recovery journal, by action name. */
  readonly undo: Readonly<Record<string, UndoHandler>>;
}

interface Candidate {
  /** Name from the config entry, if given. */
  configName: string | undefined;
  /** Name derived from folder/file/package. */
  derivedName: string;
  source: PluginSource;
  /** A file or folder (datadir/config), or a package specifier. */
  location: string;
  options: Record<string, unknown>;
}

export interface DiscoverOptions {
  dataDir: string;
  config?: KiwiConfig;
  /** The config file; package names resolve from its folder. */
  configPath?: string;
  /** Base for package names without a config file, and for relative paths (default `process.cwd()`). */
  cwd?: string;
  /**
   * Built-in plug-ins: name → module file (e.g. the CLI maps `script-launcher` to
   * `@kiwi-backup/plugin-script-launcher`). A built-in runs when the config names it, or when a
   * data-directory folder of that name has no module of its own (e.g. a folder holding only
   * `pre_backup.sh`).
   */
  builtins?: Record<string, string>;
}

/** Subfolders of `<dataDir>/plugins` (skipping hidden ones and `node_modules`), sorted by name. */
export async function listDataDirPlugins(dataDir: string): Promise<string[]> {
  const dir = pluginsDirOf(dataDir);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new PluginError('*', 'load', err, { path: dir, message: `cannot read the plug-in folder ${dir}: ${(err as Error).message}` });
  }
  const names: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    let isDir = e.isDirectory();
    if (e.isSymbolicLink()) isDir = await stat(join(dir, e.name)).then((s) => s.isDirectory(), () => false);
    if (isDir) names.push(e.name);
  }
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Decide which plug-ins run, in which order: config `plugins` entries in their
 * order (a data-dir plug-in named there takes that position and options), then
 * the other data-dir plug-ins sorted by name; `enabled: false` removes one.
 */
export async function discoverPlugins(opts: DiscoverOptions): Promise<{ candidates: Candidate[]; disabled: DisabledPluginInfo[] }> {
  const dataDirNames = await listDataDirPlugins(opts.dataDir);
  const inDataDir = new Set(dataDirNames);
  const pdir = pluginsDirOf(opts.dataDir);
  const base = opts.configPath ? dirname(resolve(opts.configPath)) : resolve(opts.cwd ?? process.cwd());
  const usedDataDir = new Set<string>();
  const candidates: Candidate[] = [];
  const disabled: DisabledPluginInfo[] = [];

  const entries = opts.config?.plugins ?? [];
  const pluginOptions = opts.config?.pluginOptions ?? {};
  entries.forEach((raw, index) => {
    const entry = typeof raw === 'string' ? { spec: raw } : { ...raw, spec: undefined as string | undefined };
    const where = `plugins[${index}]`;
    let source: PluginSource;
    let location: string;
    let derivedName: string;
    const spec = entry.spec;
    const path = 'path' in entry ? entry.path : undefined;
    const pkg = 'package' in entry ? entry.package : undefined;
    const configName = 'name' in entry ? entry.name : undefined;
    if (spec !== undefined) {
      if (isPathSpec(spec)) {
        source = 'config';
        location = resolveUserPath(spec, base);
        derivedName = nameFromPath(location);
      } else if (!inDataDir.has(spec) && builtinFile(opts.builtins, spec) !== undefined) {
        source = 'package';
        location = builtinFile(opts.builtins, spec)!;
        derivedName = spec;
      } else if (inDataDir.has(spec)) {
        source = 'datadir';
        location = join(pdir, spec);
        derivedName = spec;
      } else {
        source = 'package';
        location = spec;
        derivedName = spec;
      }
    } else if (path !== undefined) {
      source = 'config';
      location = resolveUserPath(path, base);
      derivedName = nameFromPath(location);
    } else if (pkg !== undefined) {
      source = 'package';
      location = pkg;
      derivedName = pkg;
    } else if (configName !== undefined && !inDataDir.has(configName) && builtinFile(opts.builtins, configName) !== undefined) {
      // `{ "name": "mysql-state", "options": … }` with no folder of that name: the built-in, as for the string form.
      source = 'package';
      location = builtinFile(opts.builtins, configName)!;
      derivedName = configName;
    } else if (configName !== undefined) {
      source = 'datadir';
      location = join(pdir, configName);
      derivedName = configName;
      if (!inDataDir.has(configName) && entry.enabled !== false) {
        throw new PluginError(configName, 'load', undefined, {
          path: location,
          message: `config ${where} names plug-in "${configName}", but there is no folder ${location}`,
        });
      }
    } else {
      throw new PluginError('?', 'load', undefined, { message: `config ${where} needs "name", "path" or "package"` });
    }
    if (source === 'datadir') usedDataDir.add(derivedName);
    const options = { ...ownEntry(pluginOptions, configName ?? derivedName), ...(('options' in entry && entry.options) || {}) };
    if ('enabled' in entry && entry.enabled === false) {
      disabled.push(source === 'package' ? { name: configName ?? derivedName, source } : { name: configName ?? derivedName, source, path: location });
      return;
    }
    candidates.push({ configName, derivedName, source, location, options: { ...options } });
  });

  for (const name of dataDirNames) {
    if (usedDataDir.has(name)) continue;
    candidates.push({ configName: undefined, derivedName: name, source: 'datadir', location: join(pdir, name), options: { ...ownEntry(pluginOptions, name) } });
  }
  return { candidates, disabled };
}

function nameFromPath(p: string): string {
  const file = basename(p);
  const ext = extname(file);
  const stem = ext ? file.slice(0, -ext.length) : file;
  if (stem === 'index') return basename(dirname(p));
  return stem;
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isFile(), () => false);
}

/** Pick the ESM entry of an `exports` field for the package root. */
function exportsEntry(exportsField: unknown): string | undefined {
  const pick = (v: unknown): string | undefined => {
    if (typeof v === 'string') return v;
    if (Array.isArray(v)) {
      for (const x of v) {
        const r = pick(x);
        if (r) return r;
      }
      return undefined;
    }
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      for (const cond of ['import', 'node', 'default', 'require']) if (o[cond] !== undefined) {
        const r = pick(o[cond]);
        if (r) return r;
      }
    }
    return undefined;
  };
  if (typeof exportsField === 'string' || Array.isArray(exportsField)) return pick(exportsField);
  if (exportsField && typeof exportsField === 'object') {
    const o = exportsField as Record<string, unknown>;
    if ('.' in o) return pick(o['.']);
    if (!Object.keys(o).some((k) => k.startsWith('.'))) return pick(o);
  }
  return undefined;
}

/**
 * The module file of a plug-in folder: its `package.json` `exports` (`.`) or
 * `main`, else `index.mjs`, `index.js`, `index.cjs`.
 */
export async function resolvePluginFolder(dir: string, name: string, builtins?: Record<string, string>): Promise<string> {
  const pkgFile = join(dir, 'package.json');
  let pkgText: string | undefined;
  try {
    pkgText = await readFile(pkgFile, 'utf8');
  } catch {
    pkgText = undefined;
  }
  if (pkgText !== undefined) {
    let pkg: { exports?: unknown; main?: unknown };
    try {
      pkg = JSON.parse(pkgText) as typeof pkg;
    } catch (err) {
      throw new PluginError(name, 'load', err, { path: pkgFile, message: `plug-in "${name}" (${pkgFile}): package.json is not valid JSON: ${(err as Error).message}` });
    }
    const rel = exportsEntry(pkg.exports) ?? (typeof pkg.main === 'string' ? pkg.main : undefined);
    if (rel !== undefined) {
      const file = resolve(dir, rel);
      for (const f of [file, `${file}.js`, `${file}.mjs`, join(file, 'index.js')]) if (await isFile(f)) return f;
      throw new PluginError(name, 'load', undefined, { path: file, message: `plug-in "${name}": the entry ${file} named in ${pkgFile} does not exist` });
    }
  }
  for (const f of ['index.mjs', 'index.js', 'index.cjs']) {
    const p = join(dir, f);
    if (await isFile(p)) return p;
  }
  const builtin = builtinFile(builtins, basename(dir));
  if (builtin !== undefined) return builtin;
  throw new PluginError(name, 'load', undefined, {
    path: dir,
    message: `plug-in "${name}": ${dir} has no index.mjs, index.js or package.json entry (exports/main)`,
  });
}

/**
 * The module file of the built-in plug-in `name`, if there is one. Only the map's own keys count: a name
 * from the config such as `constructor` or `__proto__` must not find `Object.prototype`'s members.
 */
function builtinFile(builtins: Record<string, string> | undefined, name: string): string | undefined {
  return builtins !== undefined ? ownEntry(builtins, name) : undefined;
}

/** `record[key]` when it is the record's own property (not one of `Object.prototype`'s). */
function ownEntry<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Find an npm package's folder by walking up `node_modules` folders from `base`. */
async function findPackageDir(spec: string, base: string): Promise<string | undefined> {
  let dir = resolve(base);
  for (;;) {
    const candidate = join(dir, 'node_modules', spec);
    if (await isFile(join(candidate, 'package.json'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The built-in module file that belongs to the npm package `spec` (found through its package.json), if any. */
async function builtinOfPackage(spec: string, builtins: Record<string, string>): Promise<string | undefined> {
  for (const file of Object.values(builtins)) {
    for (let dir = dirname(file); dirname(dir) !== dir; dir = dirname(dir)) {
      let text: string;
      try {
        text = await readFile(join(dir, 'package.json'), 'utf8');
      } catch {
        continue;
      }
      let pkgName: unknown;
      try {
        pkgName = (JSON.parse(text) as { name?: unknown }).name;
      } catch {
        pkgName = undefined;
      }
      if (pkgName === spec) return file;
      break; // the nearest package.json is the module's own package
    }
  }
  return undefined;
}

async function resolveCandidateFile(c: Candidate, name: string, base: string, builtins?: Record<string, string>): Promise<string> {
  if (c.source === 'package' && builtins !== undefined && Object.values(builtins).includes(c.location)) return c.location;
  if (c.source === 'package') {
    const isBare = /^(@[^/]+\/)?[^/@]+$/.test(c.location);
    if (isBare) {
      const dir = await findPackageDir(c.location, base);
      if (dir) return resolvePluginFolder(dir, name);
    }
    try {
      return createRequire(join(base, '__kiwi_resolve__.js')).resolve(c.location);
    } catch (err) {
      // Not installed there: an official plug-in named by its package uses the copy bundled with the caller.
      const bundled = isBare && builtins !== undefined ? await builtinOfPackage(c.location, builtins) : undefined;
      if (bundled !== undefined) return bundled;
      throw new PluginError(name, 'load', err, {
        path: c.location,
        message: `plug-in "${name}": cannot find package "${c.location}" from ${base} (install it there, e.g. npm install ${c.location})`,
      });
    }
  }
  let s;
  try {
    s = await stat(c.location);
  } catch (err) {
    throw new PluginError(name, 'load', err, { path: c.location, message: `plug-in "${name}": ${c.location} does not exist` });
  }
  return s.isDirectory() ? resolvePluginFolder(c.location, name, c.source === 'datadir' ? builtins : undefined) : c.location;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface LoadPluginsOptions extends DiscoverOptions {
  logger: Logger;
}

/** Discover, import, instantiate and validate the plug-ins. @throws PluginError */
export async function loadPlugins(
  opts: LoadPluginsOptions,
): Promise<{ plugins: LoadedPlugin[]; disabled: DisabledPluginInfo[]; warnings: string[] }> {
  const { candidates, disabled } = await discoverPlugins(opts);
  const base = opts.configPath ? dirname(resolve(opts.configPath)) : resolve(opts.cwd ?? process.cwd());
  const plugins: LoadedPlugin[] = [];
  for (const c of candidates) {
    const provisional = c.configName ?? c.derivedName;
    const file = await resolveCandidateFile(c, provisional, base, opts.builtins);
    let ns: unknown;
    try {
      ns = await import(pathToFileURL(file).href);
    } catch (err) {
      throw new PluginError(provisional, 'load', err, { path: file });
    }
    plugins.push(
      await instantiatePlugin(ns as Record<string, unknown>, {
        name: provisional,
        nameFixed: c.configName !== undefined,
        source: c.source,
        path: file,
        options: c.options,
        dataDir: opts.dataDir,
        logger: opts.logger,
        isNamespace: true,
      }),
    );
  }
  const seen = new Map<string, LoadedPlugin>();
  for (const p of plugins) {
    const other = seen.get(p.name);
    if (other) {
      throw new PluginError(p.name, 'load', undefined, {
        path: p.path,
        message: `two plug-ins are named "${p.name}" (${other.path} and ${p.path}); give one another "name" in the config`,
      });
    }
    seen.set(p.name, p);
  }
  const warnings: string[] = [];
  const known = new Set([...candidates.map((c) => c.configName ?? c.derivedName), ...plugins.map((p) => p.name), ...disabled.map((d) => d.name)]);
  for (const name of Object.keys(opts.config?.pluginOptions ?? {})) {
    if (known.has(name)) continue;
    const guess = closestMatch(name, [...known]);
    warnings.push(`config pluginOptions."${name}": no plug-in named "${name}" is loaded${guess ? ` (did you mean "${guess}"?)` : ''}`);
  }
  return { plugins, disabled, warnings };
}

export interface InstantiateOptions {
  name: string;
  /** True when `name` came from the config (a definition's own `name` does not override it). */
  nameFixed?: boolean;
  source: PluginSource;
  path: string;
  options: Record<string, unknown>;
  dataDir: string;
  logger: Logger;
  /** `mod` is a module namespace (use its `default` when present). */
  isNamespace?: boolean;
}

/**
 * Turn a module (namespace, definition object or factory) into a validated
 * {@link LoadedPlugin}: calls the factory with `(options, api)`, checks hook
 * types (error) and reports misnamed hooks (warning with the closest name).
 */
export async function instantiatePlugin(mod: unknown, o: InstantiateOptions): Promise<LoadedPlugin> {
  const warnings: string[] = [];
  let exported: unknown = mod;
  let name = o.name;
  if (o.isNamespace && mod && typeof mod === 'object' && 'default' in mod && (mod as { default: unknown }).default !== undefined) {
    exported = (mod as { default: unknown }).default;
    for (const k of Object.keys(mod)) {
      if (k !== 'default' && isHookName(k)) {
        warnings.push(`plug-in "${name}" has a default export, so its named export "${k}" is ignored; put the hook in the default export`);
      }
    }
  }
  let def: unknown = exported;
  if (typeof exported === 'function') {
    const api: PluginApi = {
      name,
      dataDir: o.dataDir,
      pluginDir: join(pluginsDirOf(o.dataDir), name),
      log: childLogger(o.logger, `plugin:${name}`),
    };
    try {
      def = await (exported as Extract<PluginModule, (...a: never[]) => unknown>)(o.options, api);
    } catch (err) {
      throw new PluginError(name, 'load', err, { path: o.path, message: `plug-in "${name}" (${o.path}) failed to load: its factory threw: ${errorText(err)}` });
    }
  }
  if (def === null || typeof def !== 'object') {
    throw new PluginError(name, 'load', undefined, {
      path: o.path,
      message: `plug-in "${name}" (${o.path}) must export an object of hooks or a factory returning one, got ${def === null ? 'null' : typeof def}`,
    });
  }
  const d = def as Record<string, unknown>;
  if (!o.nameFixed && d.name !== undefined) {
    if (typeof d.name === 'string' && d.name.trim() !== '' && !/[/\\]/.test(d.name)) name = d.name;
    else warnings.push(`plug-in "${name}": its "name" must be a non-empty string without "/", ignored`);
  }
  const impl: PluginHooks = {};
  const hooks: HookName[] = [];
  for (const h of HOOK_NAMES) {
    const fn = d[h];
    if (fn === undefined) continue;
    if (typeof fn !== 'function') {
      throw new PluginError(name, 'load', undefined, {
        path: o.path,
        message: `plug-in "${name}" (${o.path}): ${h} must be a function (ctx, next), got ${fn === null ? 'null' : typeof fn}`,
      });
    }
    (impl as Record<string, unknown>)[h] = (fn as (...a: unknown[]) => unknown).bind(def);
    hooks.push(h);
  }
  const undo: Record<string, UndoHandler> = {};
  if (d.undo !== undefined) {
    if (d.undo === null || typeof d.undo !== 'object' || Array.isArray(d.undo)) {
      throw new PluginError(name, 'load', undefined, {
        path: o.path,
        message: `plug-in "${name}" (${o.path}): undo must be an object of undo handlers by action name, got ${d.undo === null ? 'null' : Array.isArray(d.undo) ? 'an array' : typeof d.undo}`,
      });
    }
    for (const [action, fn] of Object.entries(d.undo as Record<string, unknown>)) {
      if (typeof fn !== 'function') {
        throw new PluginError(name, 'load', undefined, {
          path: o.path,
          message: `plug-in "${name}" (${o.path}): undo.${action} must be a function (data, ctx), got ${fn === null ? 'null' : typeof fn}`,
        });
      }
      undo[action] = (fn as UndoHandler).bind(def);
    }
  }
  for (const k of Object.keys(d)) {
    if (k === 'name' || k === 'undo' || isHookName(k) || !looksLikeHook(k)) continue;
    const guess = suggestHookName(k);
    warnings.push(
      guess
        ? `plug-in "${name}" exports "${k}", which is not a hook; did you mean "${guess}"? (ignored)`
        : `plug-in "${name}" exports "${k}", which is not a hook (valid hooks: ${HOOK_NAMES.join(', ')}); ignored`,
    );
  }
  if (!hooks.length) warnings.push(`plug-in "${name}" registers no hooks (valid hooks: ${HOOK_NAMES.join(', ')})`);
  return { name, source: o.source, path: o.path, hooks, options: o.options, warnings, impl, undo };
}
