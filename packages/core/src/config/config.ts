import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { defaultConfigPath } from '../datadir.js';
import { readSmallFile, SmallFileError } from '../fsutil/small-file.js';
import { JsonSyntaxError, parseJsonc, type JsonPosition } from './jsonc.js';
import { closestMatch } from './suggest.js';
import { PolicyError } from '../retention/errors.js';
import { POLICY_INPUT_KEYS, parsePolicy, type RetentionPolicyInput } from '../retention/policy.js';
import { parseGroupBy } from '../retention/select.js';
import { validateJobs, type JobConfig } from './jobs.js';
import { parseByteSize } from '../plugins/builtin/excludes.js';

/**
 * Kiwi's config file: `<dataDir>/config.json`, or the file given with `--config`.
 * JSON; `//` and `/* *\/` comments and trailing commas are accepted. Every key is
 * optional; an unknown key or a wrong type is an error naming the key path, the
 * file and (for a misspelt key) the closest valid name.
 *
 * ```jsonc
 * {
 *   "repository": "s3:my-bucket/kiwi",        // a path, or <scheme>:<location>
 *   "passwordFile": "~/.config/kiwi/password",
 *   "plugins": [
 *     "mysql-dump",                            // a data-dir plug-in by name, else an npm package
 *     "./plugins/notify.mjs",                  // a path (starts with ./ ../ / or ~)
 *     { "package": "@acme/kiwi-plugin-pg", "name": "pg", "options": { "db": "app" } },
 *     { "name": "stop-nginx", "enabled": false }
 *   ],
 *   "pluginOptions": { "notify": { "url": "https://…" } }, // options without changing the order
 *   "storage": { "myscheme": "kiwi-storage-myscheme" },     // module (package or path) per URL scheme
 *   "storageOptions": { "sftp": { "port": 2222 }, "myscheme": { "region": "eu" } },
 *   "backup": {
 *     "paths": ["~/Documents"], "exclude": ["node_modules", "*.tmp"], "excludeFile": ["~/.kiwiignore-global"],
 *     "oneFileSystem": true, "tags": ["laptop"]
 *   },
 *   "forget": { "keepDaily": 7, "keepWeekly": 4, "keepMonthly": "unlimited", "keepWithin": "2d", "keepTag": ["keep"] }
 * }
 * ```
 *
 * Relative paths (`repository` without a scheme, `passwordFile`, `backup.paths`,
 * `backup.excludeFile`, plug-in `path`s, storage module paths) are resolved
 * against the config file's folder, and a leading `~/` against the home folder;
 * {@link loadConfig} returns them absolute.
 */
export interface KiwiConfig {
  /** Editor schema hint; ignored. */
  $schema?: string;
  /** Repository location: a path, `local:/path`, `s3:…`, `sftp:…` or `<scheme>:…` of a storage module. */
  repository?: string;
  /** File holding the repository password. */
  passwordFile?: string;
  /** Shell command that prints the repository password on stdout (a trailing newline is not part of it). */
  passwordCommand?: string;
  /** Plug-ins, in the order their hooks run (see `PluginRuntime`). */
  plugins?: PluginConfigEntry[];
  /**
   * Options per plug-in name, merged under a `plugins` entry's own `options`.
   * Unlike a `plugins` entry, this does not change where a data-dir plug-in runs.
   */
  pluginOptions?: Record<string, Record<string, unknown>>;
  /** Per URL scheme: the storage adapter module (npm package name, or a path). */
  storage?: Record<string, string>;
  /** Per URL scheme: options passed to the storage adapter (`local`, `s3`, `sftp` or a custom one). */
  storageOptions?: Record<string, Record<string, unknown>>;
  /** Defaults for `kiwi backup`. */
  backup?: BackupConfig;
  /** The retention policy `kiwi forget` applies when it is given no rule and no snapshot id. */
  forget?: ForgetConfig;
  /** Scheduled jobs `kiwi daemon` runs, by name (see `JobConfig`). */
  jobs?: Record<string, JobConfig>;
}

/**
 * A retention policy (see docs/retention.md): `keepLast`, `keepHourly` … `keepYearly` (a count,
 * `-1` or `"unlimited"`), `keepWithin`, `keepWithinHourly` … `keepWithinYearly` (a duration such
 * as `"1y6m"`), `keepTag` (a tag list `"a,b"` or an array of them), and `groupBy`
 * (`"host,paths"` by default; `""` for one group).
 */
export type ForgetConfig = RetentionPolicyInput & { groupBy?: string | string[] };

/**
 * A plug-in reference: a string (data-dir plug-in name, npm package name, or a
 * path starting with `./`, `../`, `/` or `~`), or an object. In the object form
 * give at most one of `path` and `package`; with neither, `name` refers to a
 * plug-in in `<dataDir>/plugins/<name>/`.
 */
export type PluginConfigEntry = string | PluginConfigObject;

export interface PluginConfigObject {
  /** The plug-in's name (default: folder, file or package name). */
  name?: string;
  /** A file or folder (absolute after loading). */
  path?: string;
  /** An npm package name, resolved from the config file's folder (or the cwd without a file). */
  package?: string;
  /** Passed to the plug-in's factory and as `ctx.options`. */
  options?: Record<string, unknown>;
  /** `false` disables the plug-in (also a data-dir one). Default true. */
  enabled?: boolean;
}

export interface BackupConfig {
  /** Sources backed up when `kiwi backup` gets none. */
  paths?: string[];
  /** Exclude patterns (gitignore syntax). */
  exclude?: string[];
  /** Files of exclude patterns. */
  excludeFile?: string[];
  /** Stay on the file system of each source. */
  oneFileSystem?: boolean;
  /** Tags added to every snapshot. */
  tags?: string[];
  /** Leave out the contents of directories holding a valid CACHEDIR.TAG (`--exclude-caches`). */
  excludeCaches?: boolean;
  /** Leave out the contents of directories holding one of these files, `name` or `name:header` (`--exclude-if-present`). */
  excludeIfPresent?: string[];
  /** Leave out files larger than this: bytes, or a size like `"2G"` (`--exclude-larger-than`). */
  excludeLargerThan?: number | string;
  /** Exclude patterns matched case-insensitively (`--iexclude`). */
  iexclude?: string[];
}

/** One problem found in a config file. */
export interface ConfigIssue {
  /** Key path, e.g. `backup.exclude[2]`; `''` for the whole document. */
  key: string;
  message: string;
  /** Where in the file, when known. */
  line?: number;
  column?: number;
}

/** The config file is unreadable, not JSON, or does not match the schema. Exit code 2. */
export class ConfigError extends Error {
  readonly file: string | undefined;
  readonly issues: ConfigIssue[];
  constructor(message: string, file?: string, issues: ConfigIssue[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}

export interface LoadConfigOptions {
  /** The data directory, for the default file `<dataDir>/config.json`. */
  dataDir: string;
  /** Home folder for `~` (default `os.homedir()`). */
  home?: string;
}

export interface LoadedConfig {
  /** Validated config with paths made absolute (`{}` when the file does not exist). */
  config: KiwiConfig;
  /** The file read (or looked for). */
  path: string;
  /** False when the default file does not exist. */
  exists: boolean;
}

/**
 * Read and validate the config file. With `path` (from `--config`), a missing
 * file is an error; without it, `<dataDir>/config.json` is optional.
 * @throws ConfigError
 */
export async function loadConfig(path: string | undefined, options: LoadConfigOptions): Promise<LoadedConfig> {
  const explicit = path !== undefined;
  const file = resolve(path ?? defaultConfigPath(options.dataDir));
  let text: string;
  try {
    text = await readConfigText(file);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return { config: {}, path: file, exists: false };
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${(err as Error).message})`;
    throw new ConfigError(`config file ${file} ${why}`, file, [], { cause: err });
  }
  const config = parseConfig(text, file, options.home);
  return { config, path: file, exists: true };
}

/** A config file larger than this is refused: Kiwi's own are a few KiB. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * The text of a config file: a regular file, or a pipe (`--config <(generate-config)`), of at most
 * {@link MAX_CONFIG_BYTES} (see {@link readSmallFile}).
 * @throws ConfigError for a file of the wrong kind or size; the open's or read's own error otherwise.
 */
async function readConfigText(file: string): Promise<string> {
  try {
    return (await readSmallFile(file, { max: MAX_CONFIG_BYTES, pipe: true })).toString('utf8');
  } catch (err) {
    if (!(err instanceof SmallFileError)) throw err;
    const limit = `${MAX_CONFIG_BYTES / 1024 / 1024} MiB`;
    const { size, kind } = err.detail;
    throw new ConfigError(
      err.problem === 'directory'
        ? `config file ${file} is a directory`
        : err.problem === 'kind'
          ? `config file ${file} is not a regular file (${kind}); give the path of a JSON file`
          : `config file ${file} is too large (${size !== undefined ? `${size} bytes; at most ${limit}` : `more than ${limit}`})`,
      file,
    );
  }
}

/**
 * Parse and validate config text. `file` names the source in errors and is the
 * base for relative paths.
 * @throws ConfigError
 */
export function parseConfig(text: string, file: string, home: string = homedir()): KiwiConfig {
  let parsed;
  try {
    parsed = parseJsonc(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${err.message}`, file, [
        { key: '', message: err.message, line: err.line, column: err.column },
      ], { cause: err });
    }
    throw err;
  }
  const issues = validateConfig(parsed.value, parsed.positions);
  if (issues.length) {
    const where = (i: ConfigIssue): string => (i.line ? ` (line ${i.line})` : '');
    const message =
      issues.length === 1
        ? `config file ${file}: ${issues[0]!.message}${where(issues[0]!)}`
        : `config file ${file} has ${issues.length} errors:\n${issues.map((i) => `  - ${i.message}${where(i)}`).join('\n')}`;
    throw new ConfigError(message, file, issues);
  }
  return resolveConfigPaths(parsed.value as KiwiConfig, dirname(file), home);
}

const TOP_KEYS = ['$schema', 'repository', 'passwordFile', 'plugins', 'pluginOptions', 'storage', 'storageOptions', 'backup', 'passwordCommand', 'forget', 'jobs'] as const;
const PLUGIN_KEYS = ['name', 'path', 'package', 'options', 'enabled'] as const;
const BACKUP_KEYS = ['paths', 'exclude', 'excludeFile', 'oneFileSystem', 'tags', 'excludeCaches', 'excludeIfPresent', 'excludeLargerThan', 'iexclude'] as const;
const FORGET_KEYS = [...POLICY_INPUT_KEYS, 'groupBy'] as const;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate a parsed config value; returns the issues (empty when valid). */
export function validateConfig(value: unknown, positions?: Map<string, JsonPosition>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (key: string, message: string): void => {
    const pos = positions?.get(key);
    issues.push(pos ? { key, message, line: pos.line, column: pos.column } : { key, message });
  };
  const keyName = (parent: string, k: string): string => (parent ? `${parent}.${k}` : k);
  const checkKeys = (obj: Record<string, unknown>, parent: string, allowed: readonly string[]): void => {
    for (const k of Object.keys(obj)) {
      if (allowed.includes(k)) continue;
      const guess = closestMatch(k, allowed);
      add(keyName(parent, k), `unknown key "${keyName(parent, k)}"${guess ? ` (did you mean "${keyName(parent, guess)}"?)` : ` (valid keys${parent ? ` in "${parent}"` : ''}: ${allowed.join(', ')})`}`);
    }
  };
  const str = (v: unknown, key: string, nonEmpty = true): boolean => {
    if (typeof v !== 'string') {
      add(key, `${key} must be a string, not ${typeName(v)}`);
      return false;
    }
    if (nonEmpty && v.trim() === '') {
      add(key, `${key} must not be empty`);
      return false;
    }
    return true;
  };
  const strArray = (v: unknown, key: string): void => {
    if (!Array.isArray(v)) {
      add(key, `${key} must be an array of strings, not ${typeName(v)}`);
      return;
    }
    v.forEach((x, i) => str(x, `${key}[${i}]`));
  };
  const obj = (v: unknown, key: string): v is Record<string, unknown> => {
    if (!isPlainObject(v)) {
      add(key, `${key} must be an object, not ${typeName(v)}`);
      return false;
    }
    return true;
  };

  if (!isPlainObject(value)) {
    add('', `the config must be a JSON object, not ${typeName(value)}`);
    return issues;
  }
  checkKeys(value, '', TOP_KEYS);
  if (value.$schema !== undefined) str(value.$schema, '$schema');
  if (value.repository !== undefined) str(value.repository, 'repository');
  if (value.passwordFile !== undefined) str(value.passwordFile, 'passwordFile');
  if (value.passwordCommand !== undefined) str(value.passwordCommand, 'passwordCommand');
  if (value.passwordFile !== undefined && value.passwordCommand !== undefined) {
    add('passwordCommand', 'give either passwordFile or passwordCommand, not both');
  }

  if (value.plugins !== undefined) {
    if (!Array.isArray(value.plugins)) add('plugins', `plugins must be an array, not ${typeName(value.plugins)}`);
    else {
      value.plugins.forEach((entry, i) => {
        const key = `plugins[${i}]`;
        if (typeof entry === 'string') {
          str(entry, key);
          return;
        }
        if (!isPlainObject(entry)) {
          add(key, `${key} must be a string or an object, not ${typeName(entry)}`);
          return;
        }
        checkKeys(entry, key, PLUGIN_KEYS);
        if (entry.name !== undefined && str(entry.name, `${key}.name`) && /[/\\]/.test(entry.name as string)) {
          add(`${key}.name`, `${key}.name must not contain "/" or "\\" (use "path" or "package" for locations)`);
        } else if (typeof entry.name === 'string' && (entry.name === '' || entry.name === '.' || entry.name === '..' || entry.name.includes('\0'))) {
          // The name is a folder's name too (the plug-in's own folder, api.pluginDir): "." or ".." would be the plug-ins folder or the data directory.
          add(`${key}.name`, `${key}.name must be a name, not ${JSON.stringify(entry.name)}`);
        }
        if (entry.path !== undefined) str(entry.path, `${key}.path`);
        if (entry.package !== undefined) str(entry.package, `${key}.package`);
        if (entry.options !== undefined) obj(entry.options, `${key}.options`);
        if (entry.enabled !== undefined && typeof entry.enabled !== 'boolean') {
          add(`${key}.enabled`, `${key}.enabled must be a boolean, not ${typeName(entry.enabled)}`);
        }
        if (entry.path !== undefined && entry.package !== undefined) {
          add(key, `${key}: give either "path" or "package", not both`);
        }
        if (entry.path === undefined && entry.package === undefined && entry.name === undefined) {
          add(key, `${key} needs "name" (a plug-in in the data directory), "path" or "package"`);
        }
      });
    }
  }

  const schemeKey = (top: string, scheme: string): void => {
    if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) {
      add(`${top}.${scheme}`, `${top}.${scheme}: "${scheme}" is not a valid URL scheme (lower-case letters, digits, "+", "-", ".", starting with a letter)`);
    }
  };
  if (value.storage !== undefined && obj(value.storage, 'storage')) {
    for (const [scheme, spec] of Object.entries(value.storage)) {
      schemeKey('storage', scheme);
      if (typeof spec !== 'string') {
        add(`storage.${scheme}`, `storage.${scheme} must be a module name or path (a string), not ${typeName(spec)}${isPlainObject(spec) ? '; put adapter options under "storageOptions"' : ''}`);
      } else str(spec, `storage.${scheme}`);
    }
  }
  if (value.storageOptions !== undefined && obj(value.storageOptions, 'storageOptions')) {
    for (const [scheme, opts] of Object.entries(value.storageOptions)) {
      schemeKey('storageOptions', scheme);
      obj(opts, `storageOptions.${scheme}`);
    }
  }
  if (value.pluginOptions !== undefined && obj(value.pluginOptions, 'pluginOptions')) {
    for (const [name, opts] of Object.entries(value.pluginOptions)) obj(opts, `pluginOptions.${name}`);
  }

  if (value.backup !== undefined && obj(value.backup, 'backup')) {
    const b = value.backup;
    checkKeys(b, 'backup', BACKUP_KEYS);
    for (const k of ['paths', 'exclude', 'excludeFile', 'tags', 'excludeIfPresent', 'iexclude'] as const) if (b[k] !== undefined) strArray(b[k], `backup.${k}`);
    for (const k of ['oneFileSystem', 'excludeCaches'] as const) {
      if (b[k] !== undefined && typeof b[k] !== 'boolean') add(`backup.${k}`, `backup.${k} must be a boolean, not ${typeName(b[k])}`);
    }
    const larger = b.excludeLargerThan;
    if (larger !== undefined && !(typeof larger === 'number' && Number.isSafeInteger(larger) && larger >= 0) && !(typeof larger === 'string' && isByteSize(larger))) {
      add('backup.excludeLargerThan', `backup.excludeLargerThan must be a number of bytes or a size like "500M" (at most 8 PiB), not ${typeof larger === 'string' ? JSON.stringify(larger) : typeName(larger)}`);
    }
  }

  if (value.forget !== undefined && obj(value.forget, 'forget')) {
    const f = value.forget;
    checkKeys(f, 'forget', FORGET_KEYS);
    // One rule at a time, so every bad rule is reported, each with its own key and line.
    for (const k of Object.keys(f)) {
      if (!POLICY_INPUT_KEYS.includes(k) || f[k] === undefined) continue;
      try {
        parsePolicy({ [k]: f[k] } as RetentionPolicyInput, (r) => `forget.${r.key}`);
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        add(`forget.${k}`, err.message);
      }
    }
    if (f.groupBy !== undefined) {
      if (typeof f.groupBy === 'string') groupBy(f.groupBy);
      else if (Array.isArray(f.groupBy)) f.groupBy.forEach((g, i) => (typeof g === 'string' ? groupBy(g, `forget.groupBy[${i}]`) : add(`forget.groupBy[${i}]`, `forget.groupBy[${i}] must be a string (host, paths or tags), not ${typeName(g)}`)));
      else add('forget.groupBy', `forget.groupBy must be a string such as "host,paths" or an array of host, paths, tags; not ${typeName(f.groupBy)}`);
    }
  }
  if (value.jobs !== undefined) validateJobs(value.jobs, { add, str, strArray, obj, checkKeys, typeName });
  return issues;

  function groupBy(text: string, key = 'forget.groupBy'): void {
    try {
      parseGroupBy(text, key);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      add(key, err.message);
    }
  }
}

/**
 * The environment variables that hold Kiwi's secrets, or what gives them (docs/cli.md, "Environment"):
 * the repository passwords and the password command (its text may hold one), the SFTP password and key
 * passphrase, and the static AWS credentials Kiwi's S3 storage reads (all three together: an access key
 * id without its secret makes the AWS CLI and SDKs fail instead of using their profile). Plug-ins
 * withhold them from the programs they start ({@link withoutSecrets}): a script's or a tool's output
 * goes to Kiwi's log, where `env` or `set -x` would print them, and none of those programs need them.
 * Paths (`KIWI_PASSWORD_FILE`, `KIWI_FROM_PASSWORD_FILE`) are not secrets and are handed on.
 */
export const SECRET_ENV_VARS: readonly string[] = Object.freeze([
  'KIWI_PASSWORD',
  'KIWI_PASSWORD_COMMAND',
  'KIWI_FROM_PASSWORD',
  'KIWI_SFTP_PASSWORD',
  'KIWI_SFTP_KEY_PASSPHRASE',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
]);

/**
 * A copy of `env` (default: this process's) without {@link SECRET_ENV_VARS}, for a child process;
 * `keep` names secrets to hand on anyway (a script that really needs the AWS credentials).
 */
export function withoutSecrets(env: NodeJS.ProcessEnv = process.env, keep: readonly string[] = []): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  // (Windows: names are case-insensitive, `Kiwi_Password` is the same variable.)
  const fold = process.platform === 'win32' ? (name: string) => name.toUpperCase() : (name: string) => name;
  for (const key of Object.keys(out)) {
    const name = fold(key);
    if (SECRET_ENV_VARS.includes(name) && !keep.some((k) => fold(k) === name)) delete out[key];
  }
  return out;
}

/** True for a plug-in/module string meant as a path: starts with `./`, `../`, `/`, `~`, or is absolute. */
export function isPathSpec(spec: string): boolean {
  return spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..' || spec.startsWith('~') ||
    spec.startsWith('.\\') || spec.startsWith('..\\') || isAbsolute(spec);
}

/** True if `location` starts with a URL scheme (`s3:`, `local:`), not a Windows drive (`C:\`). */
export function hasScheme(location: string): boolean {
  return /^[a-z][a-z0-9+.-]+:/i.test(location);
}

/** Expand `~`/`~/…` and resolve against `base`. */
export function resolveUserPath(p: string, base: string, home: string = homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/') || p.startsWith('~\\')) return resolve(home, p.slice(2));
  return resolve(base, p);
}

function resolveConfigPaths(cfg: KiwiConfig, base: string, home: string): KiwiConfig {
  const rp = (p: string): string => resolveUserPath(p, base, home);
  const out: KiwiConfig = { ...cfg };
  if (out.repository !== undefined && !hasScheme(out.repository)) out.repository = rp(out.repository);
  if (out.passwordFile !== undefined) out.passwordFile = rp(out.passwordFile);
  if (out.plugins) {
    out.plugins = out.plugins.map((e) => {
      if (typeof e === 'string') return isPathSpec(e) ? rp(e) : e;
      return e.path !== undefined ? { ...e, path: rp(e.path) } : { ...e };
    });
  }
  if (out.storage) {
    const s: Record<string, string> = {};
    for (const [scheme, spec] of Object.entries(out.storage)) s[scheme] = isPathSpec(spec) ? rp(spec) : spec;
    out.storage = s;
  }
  if (out.backup) {
    const b = { ...out.backup };
    if (b.paths) b.paths = b.paths.map(rp);
    if (b.excludeFile) b.excludeFile = b.excludeFile.map(rp);
    out.backup = b;
  }
  if (out.jobs) {
    const jobs: Record<string, JobConfig> = {};
    for (const [name, job] of Object.entries(out.jobs)) {
      const j = { ...job, paths: job.paths.map(rp) };
      if (j.repository !== undefined && !hasScheme(j.repository)) j.repository = rp(j.repository);
      if (j.passwordFile !== undefined) j.passwordFile = rp(j.passwordFile);
      if (j.excludeFile) j.excludeFile = j.excludeFile.map(rp);
      jobs[name] = j;
    }
    out.jobs = jobs;
  }
  return out;
}

/** A size the backup's `--exclude-larger-than` takes (so a config that passes here does not fail there, naming the flag). */
function isByteSize(text: string): boolean {
  try {
    parseByteSize(text);
    return true;
  } catch {
    return false;
  }
}
