import { compose, type ComposedMiddleware, type Next } from '../middleware/compose.js';
import type { KiwiConfig } from '../config/config.js';
import { pluginsDir } from '../datadir.js';
import { childLogger, createLogger } from '../log/logger.js';
import { BackupAbortedError, PluginError } from './errors.js';
import { backupProblem, backupView, fileMetadataProblem, validateContent, validateFileOptions, validateVirtualPath, type HandOverCheck } from './hand-over.js';
import { wrapHook, wrapStopHook } from './hook-wrappers.js';
import { describeEntry, entryOwnerRunning, RecoveryJournal, type RecoveryOutcome } from './recovery.js';
import { instantiatePlugin, loadPlugins, type DisabledPluginInfo, type LoadedPlugin, type PluginInfo, type PluginSource } from './loader.js';
import {
  type BackupInfo,
  type ContentSource,
  type FileEntry,
  type HookName,
  type Logger,
  type PluginModule,
  type VirtualFileOptions,
} from './types.js';

/** What the engine does with one entry after the onFile chain. */
export interface FileDecision {
  /** Leave the entry (and a directory's subtree) out of the snapshot. */
  skip: boolean;
  /** Store this instead of the file's content (regular files only). */
  content?: ContentSource;
  /** `entry.metadata` after the chain (plug-ins may set or extend it). */
  metadata?: Record<string, unknown>;
}

export interface BackupSessionInit {
  /** The backup; plug-ins read it and may change `tags`/`metadata`. The engine sets `status`/`error` before `stop()`. */
  backup: BackupInfo;
  /** The backup's signal (SIGINT/SIGTERM, user abort). `ctx.signal` follows it. */
  signal: AbortSignal;
  /** Aborted by `ctx.abort(reason)` (with the {@link BackupAbortedError} as reason), so the engine's pipeline stops too. */
  abortController?: AbortController;
  /** Called by `ctx.addFile` (after validating `path`); the engine adds the virtual file to the snapshot. */
  onAddFile(path: string, content: ContentSource, options: VirtualFileOptions): void;
  /** Initial `ctx.state` (default `{}`). */
  state?: Record<string, unknown>;
}

/**
 * The hook chains of one backup, composed once. The engine calls:
 * `await session.start(async () => { …walk, calling file() for each entry… })`,
 * and `await session.stop()` in a `finally` (after setting `backup.status`/`error`).
 */
export interface BackupSession {
  /**
   * Run the onBackupStart chain with `body` (the backup itself) as its innermost
   * `next`: plug-ins wrap the backup. Rejects with a {@link PluginError}, a
   * {@link BackupAbortedError}, or `body`'s own error (unchanged). A plug-in that
   * returns without calling `next()` is an error (it should `ctx.abort()`).
   */
  start(body: () => Promise<void>): Promise<void>;
  /**
   * Run the onFile chain for one entry. Returns `undefined` — synchronously, with
   * no allocation — when no plug-in has onFile: store the entry as is. Calls must
   * be sequential (await each before the next); a concurrent call rejects.
   */
  file(entry: FileEntry): Promise<FileDecision> | undefined;
  /**
   * Run the onBackupStop chain. Every plug-in's onBackupStop runs, even when one
   * throws (or does not call `next()`); errors are logged and returned, never thrown.
   * Idempotent: later calls return the first call's result.
   */
  stop(): Promise<Error[]>;
  /** `ctx.signal`: aborted by the init signal or by a plug-in's `ctx.abort()`. */
  readonly signal: AbortSignal;
  /** The first `ctx.abort()` of this backup, if any (even if a plug-in swallowed the throw). */
  readonly abortError: BackupAbortedError | undefined;
}

export interface PluginRuntimeLoadOptions {
  /** Kiwi's data directory (`<dataDir>/plugins/*` are loaded). */
  dataDir: string;
  /** The loaded config (its `plugins` list). */
  config?: KiwiConfig;
  /** The config file; npm package names resolve from its folder. */
  configPath?: string;
  /** Base for package names without a config file (default `process.cwd()`). */
  cwd?: string;
  /** Plug-in loggers are `logger.child('plugin:<name>')`. Default: warnings and errors to stderr. */
  logger?: Logger;
  /** Log load warnings via `logger.warn` (default true). */
  logWarnings?: boolean;
  /** Built-in plug-ins, name → module file (see `DiscoverOptions.builtins`). */
  builtins?: Record<string, string>;
}

/** An in-code plug-in for {@link PluginRuntime.fromModules} (tests, embedding). */
export interface InlinePlugin {
  name: string;
  module: PluginModule;
  options?: Record<string, unknown>;
}

/** The report behind `kiwi plugins`. */
export interface PluginReport {
  dataDir: string;
  /** `<dataDir>/plugins`. */
  pluginsDir: string;
  plugins: PluginInfo[];
  disabled: DisabledPluginInfo[];
  /** All load warnings. */
  warnings: string[];
}

/**
 * A frozen object with `proto` as prototype and `props` as read-only own
 * properties. Plug-ins keep their data in `ctx.state`; assigning to the context
 * throws a TypeError (in strict-mode code) instead of silently shadowing.
 */
function readonlyObject(proto: object, props: Record<string, unknown>): object {
  const o = Object.create(proto) as Record<string, unknown>;
  for (const [k, v] of Object.entries(props)) Object.defineProperty(o, k, { value: v, enumerable: true, writable: false });
  return Object.freeze(o);
}

function linkSignal(from: AbortSignal, to: AbortController): () => void {
  if (from.aborted) {
    to.abort(from.reason);
    return () => {};
  }
  const onAbort = (): void => to.abort(from.reason);
  from.addEventListener('abort', onAbort, { once: true });
  return () => from.removeEventListener('abort', onAbort);
}

/**
 * Kiwi's plug-in runtime: the loaded plug-ins, in run order, and their hook
 * chains. Load once per process; create one {@link BackupSession} per backup.
 */
export class PluginRuntime {
  /** Loaded plug-ins in run order (hook functions not included). */
  readonly plugins: readonly PluginInfo[];
  /** Load warnings: misnamed hooks, ignored exports, `pluginOptions` for plug-ins not loaded. */
  readonly warnings: readonly string[];
  readonly disabled: readonly DisabledPluginInfo[];
  readonly dataDir: string;
  readonly #loaded: readonly LoadedPlugin[];
  readonly #logger: Logger;
  readonly #loggers = new Map<string, Logger>();
  /** Load warnings that are not a plug-in's own (config `pluginOptions` for plug-ins not loaded). */
  readonly #baseWarnings: readonly string[];
  #serverStart: Promise<void> | undefined;
  readonly #serverState: Record<string, unknown> = {};
  /** The recovery journal of `dataDir` (in memory without one): `ctx.recovery`, and {@link recover}. */
  readonly recoveryJournal: RecoveryJournal;

  private constructor(dataDir: string, loaded: LoadedPlugin[], disabled: DisabledPluginInfo[], logger: Logger, warnings: string[] = []) {
    this.dataDir = dataDir;
    this.recoveryJournal = new RecoveryJournal(dataDir);
    this.#loaded = loaded;
    this.#logger = logger;
    this.disabled = disabled;
    this.plugins = loaded.map(({ name, source, path, hooks, options, warnings }) => ({ name, source, path, hooks, options, warnings }));
    this.#baseWarnings = warnings;
    this.warnings = [...warnings, ...loaded.flatMap((p) => p.warnings)];
    for (const p of loaded) this.#loggers.set(p.name, childLogger(logger, `plugin:${p.name}`));
  }

  /**
   * Discover and load the plug-ins: config `plugins` entries in order (a
   * data-dir plug-in named there takes that position and options), then the
   * other `<dataDir>/plugins/*` folders sorted by name; `enabled: false` skips one.
   * @throws PluginError naming the plug-in and its path when one fails to load.
   */
  static async load(options: PluginRuntimeLoadOptions): Promise<PluginRuntime> {
    const logger = options.logger ?? createLogger({ level: 'warn' });
    const { plugins, disabled, warnings } = await loadPlugins({ ...options, logger });
    const rt = new PluginRuntime(options.dataDir, plugins, disabled, logger, warnings);
    if (options.logWarnings !== false) for (const w of rt.warnings) logger.warn(w);
    return rt;
  }

  /** A runtime from in-code plug-in modules (same validation as loaded ones; source `config`, path `<inline>`). */
  static async fromModules(
    modules: readonly InlinePlugin[],
    options: { dataDir?: string; logger?: Logger } = {},
  ): Promise<PluginRuntime> {
    const logger = options.logger ?? createLogger({ level: 'warn' });
    const dataDir = options.dataDir ?? '';
    const loaded: LoadedPlugin[] = [];
    for (const m of modules) {
      loaded.push(
        await instantiatePlugin(m.module, {
          name: m.name,
          nameFixed: true,
          source: 'config' satisfies PluginSource,
          path: `<inline:${m.name}>`,
          options: m.options ?? {},
          dataDir,
          logger,
        }),
      );
    }
    return new PluginRuntime(dataDir, loaded, [], logger);
  }

  /**
   * This runtime with Kiwi's built-in middleware in front (e.g. backup's `--exclude-caches`, see
   * plugins/builtin): their hooks run before every plug-in's, so an entry they skip is never seen by
   * a plug-in. Source `builtin`. Without modules, this runtime itself: nothing is added, and a hook
   * nobody registered still costs nothing per file.
   */
  async withBuiltins(modules: readonly InlinePlugin[]): Promise<PluginRuntime> {
    if (modules.length === 0) return this;
    const builtins: LoadedPlugin[] = [];
    for (const m of modules) {
      builtins.push(
        await instantiatePlugin(m.module, {
          name: m.name,
          nameFixed: true,
          source: 'builtin' satisfies PluginSource,
          path: `<builtin:${m.name}>`,
          options: m.options ?? {},
          dataDir: this.dataDir,
          logger: this.#logger,
        }),
      );
    }
    return new PluginRuntime(this.dataDir, [...builtins, ...this.#loaded], [...this.disabled], this.#logger, [...this.#baseWarnings]);
  }

  /** A runtime without plug-ins. */
  static empty(dataDir = '', logger?: Logger): PluginRuntime {
    return new PluginRuntime(dataDir, [], [], logger ?? createLogger({ level: 'warn' }));
  }

  /** True if at least one plug-in registered `hook`. */
  has(hook: HookName): boolean {
    return this.#loaded.some((p) => p.impl[hook] !== undefined);
  }

  /** What `kiwi plugins` prints. */
  describe(): PluginReport {
    return {
      dataDir: this.dataDir,
      pluginsDir: pluginsDir(this.dataDir),
      plugins: this.plugins.map((p) => ({ ...p, hooks: [...p.hooks], warnings: [...p.warnings] })),
      disabled: [...this.disabled],
      warnings: [...this.warnings],
    };
  }

  #withHook(hook: HookName): LoadedPlugin[] {
    return this.#loaded.filter((p) => p.impl[hook] !== undefined);
  }

  /**
   * Run the onServerStart chain once (later calls return the same promise).
   * Rejects with a {@link PluginError} naming the plug-in.
   */
  serverStart(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#serverStart) return this.#serverStart;
    const plugins = this.#withHook('onServerStart');
    if (!plugins.length) return (this.#serverStart = Promise.resolve());
    const signal = options.signal ?? new AbortController().signal;
    const shared = readonlyObject(Object.prototype, { state: this.#serverState, signal, dataDir: this.dataDir });
    const chain = compose(
      plugins.map((p) => {
        const view = readonlyObject(shared, {
          hook: 'onServerStart' as const,
          log: this.#loggers.get(p.name)!,
          options: p.options,
          recovery: this.recoveryJournal.api(p.name),
        });
        return wrapHook(p, 'onServerStart', p.impl.onServerStart as (c: unknown, n: Next) => unknown, view, false);
      }),
    );
    return (this.#serverStart = chain(shared));
  }

  /** Compose the hook chains for one backup. Cheap; call once per backup. */
  createBackupSession(init: BackupSessionInit): BackupSession {
    return new Session(this.#loaded, this.#loggers, this.#logger, this.dataDir, init, this.recoveryJournal);
  }

  /**
   * Run the undo actions a crash left in the recovery journal, oldest first, before anything else
   * (a daemon start, a backup). An entry is removed once its handler succeeded; one whose handler fails,
   * or whose plug-in is not loaded, is kept (and logged as an error) for the next start; one whose process
   * still runs on this host is left alone. Never throws for a single entry: read the outcomes.
   */
  async recover(options: { signal?: AbortSignal } = {}): Promise<RecoveryOutcome[]> {
    const journal = this.recoveryJournal;
    const entries = await journal.list((file, reason) =>
      this.#logger.error(`recovery: ${file} is not a valid journal entry (${reason}); renamed to ${file}.invalid, nothing was undone for it`),
    );
    const outcomes: RecoveryOutcome[] = [];
    const signal = options.signal ?? new AbortController().signal;
    for (const entry of entries) {
      const base = { plugin: entry.plugin, action: entry.action, registeredAt: entry.registeredAt, pid: entry.pid };
      const what = describeEntry(entry);
      if (entryOwnerRunning(entry)) {
        outcomes.push({ ...base, status: 'skipped', message: `process ${entry.pid} is still running` });
        this.#logger.debug(`recovery: ${what} belongs to a running process; left alone`);
        continue;
      }
      const plugin = this.#loaded.find((p) => p.name === entry.plugin);
      const handler = plugin?.undo[entry.action];
      if (!plugin || !handler) {
        const why = !plugin
          ? `plug-in "${entry.plugin}" is not loaded`
          : `plug-in "${entry.plugin}" has no undo handler "${entry.action}"`;
        const message = `${why}: cannot undo ${what}; the entry stays in ${journal.dir ?? 'the journal'} until it can be undone or is removed by hand`;
        this.#logger.error(`recovery: ${message}`);
        outcomes.push({ ...base, status: 'failed', message });
        continue;
      }
      const log = this.#loggers.get(plugin.name)!;
      this.#logger.warn(`recovery: ${what} was not cleared (Kiwi was stopped before it could undo it); undoing it now`);
      try {
        const result = await handler(entry.data, Object.freeze({
          log,
          options: plugin.options,
          dataDir: this.dataDir,
          signal,
          entry: Object.freeze({ registeredAt: entry.registeredAt, pid: entry.pid, host: entry.host, action: entry.action, ...(entry.backupId ? { backupId: entry.backupId } : {}) }),
        }));
        await journal.remove(entry.id);
        const message = typeof result === 'string' && result ? result : 'undone';
        this.#logger.warn(`recovery: ${entry.plugin} "${entry.action}": ${message}`);
        outcomes.push({ ...base, status: 'done', message });
      } catch (err) {
        const message = `undoing ${what} failed: ${err instanceof Error ? err.message : String(err)}; it is tried again at the next start`;
        this.#logger.error(`recovery: ${message}`);
        outcomes.push({ ...base, status: 'failed', message });
      }
    }
    return outcomes;
  }
}

class Session implements BackupSession {
  readonly signal: AbortSignal;
  abortError: BackupAbortedError | undefined;
  readonly #controller = new AbortController();
  readonly #unlink: () => void;
  readonly #init: BackupSessionInit;
  readonly #logger: Logger;
  readonly #startChain: ComposedMiddleware<unknown> | undefined;
  readonly #fileChain: ComposedMiddleware<unknown> | undefined;
  readonly #stopChain: ComposedMiddleware<unknown> | undefined;
  readonly #stopErrors: Error[] = [];
  readonly #shared: object;
  readonly #fileShared: object;
  #started = false;
  #stopped: Promise<Error[]> | undefined;
  // Per-file state (the onFile chain runs one entry at a time).
  #busy = false;
  #current: FileEntry | undefined;
  #skip = false;
  #content: ContentSource | undefined;

  constructor(
    plugins: readonly LoadedPlugin[],
    loggers: Map<string, Logger>,
    logger: Logger,
    dataDir: string,
    init: BackupSessionInit,
    journal: RecoveryJournal,
  ) {
    this.#init = init;
    this.#logger = logger;
    this.signal = this.#controller.signal;
    this.#unlink = linkSignal(init.signal, this.#controller);
    // Contexts: `shared` (one per session) ← `fileShared` (adds the current file and its
    // actions) ← one frozen view per plug-in and hook (its hook name, log, options, abort,
    // addFile). Views are built here, once; the onFile chain reuses them for every entry.
    const shared = readonlyObject(Object.prototype, { backup: backupView(init.backup), state: init.state ?? {}, signal: this.signal, dataDir });
    this.#shared = shared;

    const session = this;
    const fileShared: Record<string, unknown> = Object.create(shared) as Record<string, unknown>;
    Object.defineProperty(fileShared, 'file', { get: () => session.#current, enumerable: true });
    fileShared.skip = function skip(): void {
      if (!session.#busy) throw new Error('ctx.skip() called outside of a running onFile hook');
      session.#skip = true;
    };
    fileShared.replaceContent = function replaceContent(content: ContentSource): void {
      if (!session.#busy || !session.#current) throw new Error('ctx.replaceContent() called outside of a running onFile hook');
      if (session.#current.type !== 'file') {
        throw new TypeError(`replaceContent: ${session.#current.path} is a ${session.#current.type}; only regular files can have their content replaced`);
      }
      session.#content = validateContent(content, 'replaceContent');
    };
    Object.freeze(fileShared);
    this.#fileShared = fileShared;

    const view = (base: object, p: LoadedPlugin, hook: HookName): object =>
      readonlyObject(base, {
        hook,
        log: loggers.get(p.name)!,
        options: p.options,
        recovery: journal.api(p.name, init.backup.id),
        abort: (reason: string): never => this.#abort(reason, p.name, hook),
        addFile: (path: string, content: ContentSource, options: VirtualFileOptions = {}): void => {
          if (hook === 'onBackupStop') throw new Error('ctx.addFile() is not available in onBackupStop (the snapshot is already written)');
          init.onAddFile(validateVirtualPath(path), validateContent(content, 'addFile'), validateFileOptions(options));
        },
      });

    // What plug-ins hand back is checked as they hand it over (see wrapHook). onBackupStart: the
    // tags and metadata the snapshot will hold, when a plug-in calls next() (what it sets after that,
    // once the snapshot is written, is not stored). onFile: the entry's metadata, at next() and on
    // return; the tags too (cheap), not the backup's metadata (once per plug-in and entry would cost).
    const startCheck: HandOverCheck = { check: () => backupProblem(init.backup, true), onReturn: false };
    const fileCheck: HandOverCheck = {
      check: () => {
        const current = session.#current;
        const problem = current ? fileMetadataProblem(current.metadata) : undefined;
        return problem !== undefined ? `ctx.file.metadata of ${current!.path} ${problem}` : backupProblem(init.backup, false);
      },
      onReturn: true,
    };
    const chainFor = (hook: 'onBackupStart' | 'onFile'): ComposedMiddleware<unknown> | undefined => {
      const list = plugins.filter((p) => p.impl[hook] !== undefined);
      if (!list.length) return undefined;
      const base = hook === 'onFile' ? fileShared : shared;
      const check = hook === 'onFile' ? fileCheck : startCheck;
      return compose(list.map((p) => wrapHook(p, hook, p.impl[hook] as (c: unknown, n: Next) => unknown, view(base, p, hook), hook === 'onBackupStart', () => this.abortError, check)));
    };
    this.#startChain = chainFor('onBackupStart');
    this.#fileChain = chainFor('onFile');
    const stopList = plugins.filter((p) => p.impl.onBackupStop !== undefined);
    this.#stopChain = stopList.length
      ? compose(stopList.map((p) => wrapStopHook(p, p.impl.onBackupStop as (c: unknown, n: Next) => unknown, view(shared, p, 'onBackupStop'), this.#stopErrors)))
      : undefined;
  }

  #abort(reason: string, plugin: string, hook: HookName): never {
    const err = new BackupAbortedError(typeof reason === 'string' && reason ? reason : String(reason ?? 'no reason given'), plugin, hook);
    if (!this.abortError) {
      this.abortError = err;
      this.#logger.warn(err.message);
      this.#controller.abort(err);
      if (this.#init.abortController && !this.#init.abortController.signal.aborted) this.#init.abortController.abort(err);
    }
    throw err;
  }

  start(body: () => Promise<void>): Promise<void> {
    if (this.#started) return Promise.reject(new Error('BackupSession.start() called twice'));
    this.#started = true;
    if (!this.#startChain) {
      try {
        return Promise.resolve(body());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#startChain(this.#shared, body);
  }

  file(entry: FileEntry): Promise<FileDecision> | undefined {
    const chain = this.#fileChain;
    if (!chain) return undefined;
    if (this.#busy) return Promise.reject(new Error('BackupSession.file() called before the previous call finished; call it sequentially'));
    this.#busy = true;
    this.#current = entry;
    this.#skip = false;
    this.#content = undefined;
    return chain(this.#fileShared).then(
      () => {
        const decision: FileDecision = { skip: this.#skip };
        if (this.#content !== undefined && !this.#skip) decision.content = this.#content;
        if (entry.metadata !== undefined) decision.metadata = entry.metadata;
        this.#reset();
        return decision;
      },
      (e: unknown) => {
        this.#reset();
        throw e;
      },
    );
  }

  #reset(): void {
    this.#busy = false;
    this.#current = undefined;
    this.#content = undefined;
  }

  stop(): Promise<Error[]> {
    if (this.#stopped) return this.#stopped;
    const run = async (): Promise<Error[]> => {
      try {
        if (this.#stopChain) await this.#stopChain(this.#shared);
      } catch (e) {
        // Not expected (wrappers catch), but never let stop() throw.
        this.#stopErrors.push(e instanceof Error ? e : new Error(String(e)));
      } finally {
        this.#unlink();
      }
      for (const e of this.#stopErrors) this.#logger.error(e.message);
      return [...this.#stopErrors];
    };
    return (this.#stopped = run());
  }
}

