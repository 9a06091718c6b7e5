/**
 * @kiwi-backup/plugin-script-launcher — run a script before and after every backup.
 *
 * `pre_backup` runs in `onBackupStart`, before the backup reads anything; if it fails, the backup is
 * aborted (unless `continueOnPreFailure`). `post_backup` runs in `onBackupStop`, after every backup:
 * also after a failed, aborted or interrupted one, with `KIWI_STATUS` telling which.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import {
  definePlugin,
  SECRET_ENV_VARS,
  withoutSecrets,
  type BackupInfo,
  type HookContext,
  type Logger,
  type PluginApi,
  type PluginDefinition,
} from '@kiwi-backup/core';
import { runScript, type Command, type RunResult } from './run-script.js';

export { runScript, type Command, type RunOptions, type RunResult } from './run-script.js';

/** A script to run: a path, a shell command line, an argv array (no shell), or `false` for none. */
export type ScriptOption = string | readonly string[] | false;

/** The plug-in's options (`{ "name": "script-launcher", "options": { … } }` in the config). */
export interface ScriptLauncherOptions {
  /**
   * What to run before the backup. Default: `pre_backup.sh` in `dir` (`pre_backup.bat`, then
   * `pre_backup.cmd` on Windows). A string naming an existing file (relative to `dir`) runs that file;
   * any other string is a command line for the shell.
   */
  pre?: ScriptOption;
  /** What to run after the backup; like `pre`, default `post_backup.sh`. */
  post?: ScriptOption;
  /** Folder of the default scripts, and the scripts' working directory. Default: the plug-in's folder. */
  dir?: string;
  /** Kill a script (and every process it started) after this long: ms, or `"90s"`, `"5m"`. Default 5 minutes. */
  timeout?: number | string;
  /** Wait this long between SIGTERM and SIGKILL. Default 5 seconds. */
  killGrace?: number | string;
  /** Run the backup even if the pre script fails (the failure is logged as an error). Default `false`. */
  continueOnPreFailure?: boolean;
  /** `true`: run `pre`/`post` strings through the shell even if they name a file; a path: use that shell. */
  shell?: boolean | string;
  /** Extra environment variables for the scripts. */
  env?: Record<string, string>;
  /**
   * Secrets of Kiwi's environment (`SECRET_ENV_VARS`: the repository and SFTP passwords, the AWS
   * credentials…) that the scripts get anyway, e.g. `["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
   * "AWS_SESSION_TOKEN"]` for a script that calls `aws`. By default they are withheld.
   */
  passEnv?: string[];
}

type Phase = 'pre_backup' | 'post_backup';

interface Settings {
  pre: ScriptOption | undefined;
  post: ScriptOption | undefined;
  dir: string;
  timeoutMs: number;
  killGraceMs: number;
  continueOnPreFailure: boolean;
  shell: boolean | string | undefined;
  env: Record<string, string>;
  passEnv: string[];
}

const NAME = 'script-launcher';
const isWindows = process.platform === 'win32';
const DEFAULT_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_KILL_GRACE_MS = 5_000;

/** The plug-in: a factory, so it gets its options and its folder once, when Kiwi loads it. */
export default definePlugin((options: Record<string, unknown>, api: PluginApi): PluginDefinition => {
  const settings = parseOptions(options, pluginFolder(api));

  return {
    name: NAME,

    /** Say once, at start-up, which scripts will run, so a misplaced or non-executable one is noticed early. */
    async onServerStart(ctx, next) {
      for (const phase of ['pre_backup', 'post_backup'] as const) {
        const found = resolveCommand(settings, phase);
        if (found.kind === 'disabled') continue;
        if (found.kind === 'missing') {
          ctx.log.info(`no ${phase} script (looked for ${found.looked.join(', ')})`);
        } else {
          ctx.log.info(`${phase}: ${found.command.label}`);
          if (found.file && !isExecutable(found.file)) {
            ctx.log.warn(`${phase} script ${found.file} is not executable: run \`chmod +x ${found.file}\``);
          }
        }
      }
      await next();
    },

    /** Run `pre_backup`; only if it succeeds (or `continueOnPreFailure`), run the backup. */
    async onBackupStart(ctx, next) {
      const failure = await runPhase(ctx, settings, 'pre_backup', ctx.signal);
      if (failure !== undefined) {
        if (ctx.signal.aborted) throw new Error(failure);
        if (!settings.continueOnPreFailure) ctx.abort(failure);
        ctx.log.error(`${failure}\ncontinuing the backup (continueOnPreFailure)`);
      }
      await next();
    },

    /**
     * Run `post_backup` after every backup. It runs after the rest of the chain (`await next()`), so stop
     * hooks tear down in the reverse order of the start hooks, and a failing later plug-in does not keep
     * the post script from running.
     */
    async onBackupStop(ctx, next) {
      let laterError: unknown;
      let laterFailed = false;
      try {
        await next();
      } catch (err) {
        laterFailed = true;
        laterError = err;
      }
      // No signal here: after SIGINT the post script must still run (it is often the cleanup); the timeout bounds it.
      const failure = await runPhase(ctx, settings, 'post_backup', undefined);
      if (laterFailed) {
        if (failure !== undefined) ctx.log.error(failure);
        throw laterError;
      }
      if (failure !== undefined) {
        const ended = describeBackupEnd(ctx.backup);
        throw new Error(`${failure}\n(the backup itself ${ended})`);
      }
    },
  };
});

/**
 * The plug-in's folder: `api.pluginDir` (`<dataDir>/plugins/<name>`), except when Kiwi loaded it by its npm
 * package name without a `name` in the config: then `<dataDir>/plugins/script-launcher`.
 */
function pluginFolder(api: PluginApi): string {
  return api.name.includes('/') ? join(api.dataDir, 'plugins', NAME) : api.pluginDir;
}

/** Run one phase's script; returns a failure message, or undefined if it succeeded or there is none. */
async function runPhase(ctx: HookContext, settings: Settings, phase: Phase, signal: AbortSignal | undefined): Promise<string | undefined> {
  const found = resolveCommand(settings, phase);
  if (found.kind === 'disabled') return undefined;
  if (found.kind === 'missing') {
    ctx.log.info(`no ${phase} script (looked for ${found.looked.join(', ')}); nothing to run`);
    return undefined;
  }
  const { command } = found;
  ctx.log.info(`running ${phase}: ${command.label}`);
  const result = await runScript(command, {
    cwd: settings.dir,
    env: scriptEnv(ctx, settings, phase),
    timeoutMs: settings.timeoutMs,
    killGraceMs: settings.killGraceMs,
    ...(signal ? { signal } : {}),
    onLine: (stream, line) => logLine(ctx.log, phase, stream, line),
  });
  if (result.outcome === 'exited' && result.exitCode === 0) {
    ctx.log.info(`${phase} finished in ${result.durationMs} ms`);
    return undefined;
  }
  return describeFailure(phase, command, result, settings);
}

function logLine(log: Logger, phase: Phase, stream: 'stdout' | 'stderr', line: string): void {
  if (stream === 'stderr') log.warn(`${phase}: ${line}`, { stream });
  else log.info(`${phase}: ${line}`, { stream });
}

function describeFailure(phase: Phase, command: Command, result: RunResult, settings: Settings): string {
  let what: string;
  switch (result.outcome) {
    case 'spawn-error': {
      const code = result.error?.code;
      what =
        code === 'EACCES'
          ? `could not be run: it is not executable (chmod +x ${command.file})`
          : code === 'ENOENT'
            ? `could not be run: ${command.file} not found`
            : `could not be run: ${result.error?.message ?? 'unknown error'}`;
      break;
    }
    case 'timeout':
      what = `timed out after ${formatMs(settings.timeoutMs)} and was killed with its process group`;
      break;
    case 'aborted':
      what = 'was killed because the backup was interrupted';
      break;
    default:
      what = result.exitSignal ? `was killed by ${result.exitSignal}` : `failed with exit code ${result.exitCode}`;
  }
  const output = result.tail.length > 0 ? `\nlast output:\n  ${result.tail.join('\n  ')}` : '';
  return `${phase} script ${command.label} ${what}${output}`;
}

function describeBackupEnd(backup: BackupInfo): string {
  const error = backup.error ? `: ${backup.error.message}` : '';
  const snapshot = backup.snapshotId ? `, snapshot ${backup.snapshotId}` : '';
  return `ended with status ${backup.status}${snapshot}${error}`;
}

/**
 * The environment a script gets: Kiwi's own without its secrets (`SECRET_ENV_VARS`, but those named in
 * `passEnv`: a script's output goes to Kiwi's log, where `env` or `set -x` would print them), the backup
 * as `KIWI_*`, then `options.env`.
 */
function scriptEnv(ctx: HookContext, settings: Pick<Settings, 'dir' | 'env' | 'passEnv'>, phase: Phase): NodeJS.ProcessEnv {
  const env = withoutSecrets(process.env, settings.passEnv);
  const b = ctx.backup;
  Object.assign(env, {
    KIWI_HOOK: phase,
    KIWI_BACKUP_ID: b.id,
    KIWI_STATUS: b.status,
    KIWI_SNAPSHOT_ID: b.snapshotId ?? '',
    KIWI_REPOSITORY: b.repository,
    KIWI_SOURCES: b.sources.join('\n'),
    KIWI_TAGS: b.tags.join(','),
    KIWI_HOST: b.host,
    KIWI_DRY_RUN: b.dryRun ? '1' : '0',
    KIWI_ERROR: b.error?.message ?? '',
    KIWI_DATA_DIR: ctx.dataDir,
    KIWI_PLUGIN_DIR: settings.dir,
    ...(phase === 'post_backup' ? { KIWI_STATS: JSON.stringify(b.stats) } : {}),
    ...settings.env,
  });
  return env;
}

type Resolved =
  | { kind: 'disabled' }
  | { kind: 'missing'; looked: string[] }
  | { kind: 'found'; command: Command; file?: string };

/** Turn the `pre`/`post` option (or the default script names) into something to spawn. */
function resolveCommand(settings: Settings, phase: Phase): Resolved {
  const option = phase === 'pre_backup' ? settings.pre : settings.post;
  if (option === false) return { kind: 'disabled' };
  if (option === undefined) {
    const candidates = (isWindows ? ['.bat', '.cmd'] : ['.sh']).map((ext) => resolve(settings.dir, phase + ext));
    const file = candidates.find(isFile);
    return file ? { kind: 'found', command: fileCommand(file), file } : { kind: 'missing', looked: candidates };
  }
  if (typeof option !== 'string') {
    const [file, ...args] = option;
    return { kind: 'found', command: { label: option.join(' '), file: file!, args } };
  }
  if (settings.shell === undefined || settings.shell === false) {
    const file = isAbsolute(option) ? option : resolve(settings.dir, option);
    if (isFile(file)) return { kind: 'found', command: fileCommand(file), file };
  }
  return { kind: 'found', command: { label: option, file: option, args: [], shell: settings.shell || true } };
}

/** Run a script file directly: by its shebang on POSIX, through cmd.exe for `.bat`/`.cmd` on Windows. */
function fileCommand(file: string): Command {
  if (isWindows && /\.(bat|cmd)$/i.test(file)) {
    return { label: file, file: process.env.ComSpec ?? 'cmd.exe', args: ['/d', '/s', '/c', `"${file}"`], windowsVerbatimArguments: true };
  }
  return { label: file, file, args: [] };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isExecutable(path: string): boolean {
  if (isWindows) return true;
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Validate the options once, at load time, with messages that name the option. */
function parseOptions(options: Record<string, unknown>, pluginDir: string): Settings {
  const known = new Set(['pre', 'post', 'dir', 'timeout', 'killGrace', 'continueOnPreFailure', 'shell', 'env', 'passEnv']);
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new Error(`${NAME}: unknown option "${key}" (known: ${[...known].join(', ')})`);
  }
  const script = (key: 'pre' | 'post'): ScriptOption | undefined => {
    const v = options[key];
    if (v === undefined || v === false) return v;
    if (typeof v === 'string' && v.trim() !== '') return v;
    if (Array.isArray(v) && v.length > 0 && v.every((a) => typeof a === 'string')) return v as string[];
    throw new Error(`${NAME}: option "${key}" must be a path or command string, an argv array of strings, or false`);
  };
  const dir = options.dir;
  if (dir !== undefined && typeof dir !== 'string') throw new Error(`${NAME}: option "dir" must be a string`);
  const shell = options.shell;
  if (shell !== undefined && typeof shell !== 'boolean' && typeof shell !== 'string') {
    throw new Error(`${NAME}: option "shell" must be true, false or the path of a shell`);
  }
  const env = options.env ?? {};
  if (typeof env !== 'object' || env === null || Object.values(env).some((v) => typeof v !== 'string')) {
    throw new Error(`${NAME}: option "env" must be an object of strings`);
  }
  const passEnv = options.passEnv ?? [];
  if (!Array.isArray(passEnv) || passEnv.some((v) => typeof v !== 'string')) {
    throw new Error(`${NAME}: option "passEnv" must be an array of variable names`);
  }
  for (const name of passEnv as string[]) {
    if (!SECRET_ENV_VARS.includes(name)) {
      throw new Error(`${NAME}: option "passEnv": ${JSON.stringify(name)} is not withheld from the scripts (only ${SECRET_ENV_VARS.join(', ')} are); nothing to pass`);
    }
  }
  const cont = options.continueOnPreFailure ?? false;
  if (typeof cont !== 'boolean') throw new Error(`${NAME}: option "continueOnPreFailure" must be true or false`);
  return {
    pre: script('pre'),
    post: script('post'),
    dir: dir === undefined ? pluginDir : resolve(pluginDir, dir),
    timeoutMs: parseDuration(options.timeout, 'timeout', DEFAULT_TIMEOUT_MS),
    killGraceMs: parseDuration(options.killGrace, 'killGrace', DEFAULT_KILL_GRACE_MS),
    continueOnPreFailure: cont,
    shell,
    env: env as Record<string, string>,
    passEnv: passEnv as string[],
  };
}

/** Milliseconds from a number (ms) or a string such as `"500ms"`, `"30s"`, `"5m"`, `"1h"`. */
function parseDuration(value: unknown, key: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
    if (m) {
      const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
      if (n > 0) return n;
    }
  }
  throw new Error(`${NAME}: option "${key}" must be a positive number of milliseconds or a duration like "30s" or "5m"`);
}

function formatMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
