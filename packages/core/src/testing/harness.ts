import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BackupInterruptedError } from '../backup/backup.js';
import { pluginsDir } from '../datadir.js';
import { BackupAbortedError } from '../plugins/errors.js';
import { PluginRuntime, type InlinePlugin } from '../plugins/runtime.js';
import type {
  BackupInfo,
  BackupStatus,
  ContentSource,
  FileEntry,
  Logger,
  PluginApi,
  PluginDefinition,
  PluginModule,
  VirtualFileOptions,
} from '../plugins/types.js';
import { fakeBackupInfo, fakeFileEntry, memoryLogger, readContent, type FakeBackupFields, type LogEntry, type MemoryLogger } from './fakes.js';

/** A plug-in to test: a module (its hooks or a factory), or a name + module + options as in the config. */
export type PluginUnderTest = PluginModule | InlinePlugin;

/** Runtimes built here, and the logger capturing their lines. */
const captured = new WeakMap<PluginRuntime, MemoryLogger>();

function isInline(p: PluginUnderTest): p is InlinePlugin {
  return typeof p === 'object' && p !== null && 'module' in p && typeof (p as { name?: unknown }).name === 'string';
}

function normalize(plugins: readonly PluginUnderTest[]): InlinePlugin[] {
  return plugins.map((p, i) => {
    if (isInline(p)) return p;
    const own = typeof p === 'object' && p !== null && typeof p.name === 'string' && p.name ? p.name : undefined;
    return { name: own ?? `plugin-${i + 1}`, module: p };
  });
}

export interface LoadTestPluginsOptions {
  /** Kiwi's data directory the plug-ins see (`ctx.dataDir`, `api.pluginDir = <dataDir>/plugins/<name>`). Default `''`. */
  dataDir?: string;
  /** Where log lines go. Default: a fresh {@link memoryLogger} (its lines show up in each run's `logs`). */
  logger?: MemoryLogger;
}

/**
 * Load plug-ins into Kiwi's real runtime ({@link PluginRuntime.fromModules}): factories
 * get `(options, api)`, hooks are validated, load failures are `PluginError`s.
 * A bare module is named after its `name`, else `plugin-<n>` (pass `{ name, module }` when the name matters).
 */
export async function loadTestPlugins(plugins: readonly PluginUnderTest[], options: LoadTestPluginsOptions = {}): Promise<PluginRuntime> {
  const logger = options.logger ?? memoryLogger();
  const runtime = await PluginRuntime.fromModules(normalize(plugins), { dataDir: options.dataDir ?? '', logger });
  captured.set(runtime, logger);
  return runtime;
}

/**
 * Call a plug-in module the way the loader does (a factory gets `(options, api)`) and
 * return its definition, e.g. to check option validation or which hooks it returns.
 */
export async function instantiatePlugin(
  module: PluginModule,
  options: Record<string, unknown> = {},
  api: { name?: string; dataDir?: string; pluginDir?: string; log?: Logger } = {},
): Promise<PluginDefinition> {
  if (typeof module !== 'function') return module;
  const name = api.name ?? 'plugin';
  const dataDir = api.dataDir ?? '';
  const full: PluginApi = { name, dataDir, pluginDir: api.pluginDir ?? join(pluginsDir(dataDir), name), log: api.log ?? memoryLogger() };
  return module(options, full);
}

/** What the test's `body` (the backup itself, the innermost `next()` of onBackupStart) can use. */
export interface TestBackupBody {
  /** The backup the plug-ins see (status `running`). */
  readonly backup: BackupInfo;
  /** The backup's signal as plug-ins see it (`ctx.signal`): aborted by `ctx.abort()` or by the run's `signal`. */
  readonly signal: AbortSignal;
  /** `ctx.state`, shared by all hooks of this backup. */
  readonly state: Record<string, unknown>;
  /** Virtual files added so far (path → content as given to `ctx.addFile`); read them with `readContent`. */
  readonly addedFiles: ReadonlyMap<string, ContentSource>;
  /** Record an entry that could not be read, as the engine does: the backup ends `partial`. */
  reportError(path: string, message: string): void;
}

export interface RunBackupWithPluginsOptions {
  /** The backup itself; it runs inside every onBackupStart. Throw to make the backup fail. */
  body?: (ctx: TestBackupBody) => unknown;
  /** Entries for the onFile chain, after `body`, one at a time (a string is a regular file). */
  files?: ReadonlyArray<FileEntry | string>;
  /** Absolute source paths (default `['/srv/data']`). */
  sources?: string[];
  tags?: string[];
  /** Run id (`backup.id`, default random). */
  id?: string;
  host?: string;
  repository?: string;
  dryRun?: boolean;
  /** The snapshot id set after success (default random; never for dry runs). */
  snapshotId?: string;
  /** Aborting it interrupts the backup, like SIGINT/SIGTERM (status `interrupted`). */
  signal?: AbortSignal;
  /** Initial `ctx.state`. */
  state?: Record<string, unknown>;
  /** Data directory (only when `plugins` is a list of modules; see {@link loadTestPlugins}). */
  dataDir?: string;
  /** Logger (only when `plugins` is a list of modules). */
  logger?: MemoryLogger;
  /** Run onServerStart first, as `kiwi backup` does (default true; runs once per runtime). */
  serverStart?: boolean;
}

/** A virtual file a plug-in added with `ctx.addFile`, read the way the engine reads it. */
export interface AddedFile {
  path: string;
  content: Buffer;
  options: VirtualFileOptions;
}

/** What the onFile chain decided for one entry. */
export interface TestFileDecision {
  path: string;
  type: FileEntry['type'];
  /** False for entries under a skipped directory: the walk never visits them. */
  visited: boolean;
  skip: boolean;
  /** Replacement content (regular files), read completely. */
  content?: Buffer;
  /** `entry.metadata` after the chain. */
  metadata?: Record<string, unknown>;
}

export interface PluginTestRun {
  /** How the backup ended, classified like the engine does. */
  status: BackupStatus;
  /** The error the backup ended with (`backup.error` in onBackupStop; an interruption is a `BackupInterruptedError`). */
  error?: Error;
  /** What onBackupStart's chain rejected with, unchanged (a plug-in's `PluginError`, a `BackupAbortedError`, or the body's own error). */
  startError?: unknown;
  /** True once the body (the innermost `next()`) was entered. */
  bodyRan: boolean;
  /** The backup after the run (status, error, snapshotId, tags, metadata). */
  backup: BackupInfo;
  /** `backup.metadata`: what plug-ins stored in the snapshot. */
  metadata: Record<string, unknown>;
  /** `ctx.state` after the run. */
  state: Record<string, unknown>;
  /** Virtual files, in the order added (only those read before the run ended). */
  addedFiles: AddedFile[];
  /** onFile decisions, in the order of `files`. */
  fileDecisions: TestFileDecision[];
  /** Entries (virtual files, replaced content, `reportError`) that could not be read. */
  errors: Array<{ path: string; message: string }>;
  /** Errors of onBackupStop hooks (every hook ran; the backup's status stands). */
  stopErrors: Error[];
  /** Lines logged during this run (all plug-ins and the runtime; see `LogEntry.plugin`). Empty for a runtime not built by this module. */
  logs: LogEntry[];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Run one backup through Kiwi's real plug-in runtime, the way the engine drives it:
 * onServerStart (once per runtime) → `session.start(body)`, where the body runs
 * your `body`, then each of `files` through onFile, then reads the virtual files
 * (`ctx.addFile`) → status set (success / partial / failure / aborted / interrupted)
 * → onBackupStop, which always runs. Never rejects for a failed backup: read `status`
 * and `error`. Rejects only when onServerStart fails or the plug-ins fail to load.
 *
 * Pass a {@link PluginRuntime} (e.g. from {@link loadTestPlugins}) to run several
 * backups on the same loaded plug-ins, as a long-running server does.
 */
export async function runBackupWithPlugins(
  plugins: PluginRuntime | readonly PluginUnderTest[],
  options: RunBackupWithPluginsOptions = {},
): Promise<PluginTestRun> {
  const runtime =
    plugins instanceof PluginRuntime
      ? plugins
      : await loadTestPlugins(plugins, { ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}), ...(options.logger ? { logger: options.logger } : {}) });
  const mem = captured.get(runtime);
  const logStart = mem?.entries.length ?? 0;
  if (options.serverStart !== false) await runtime.serverStart();

  const fields: FakeBackupFields = {};
  if (options.id !== undefined) fields.id = options.id;
  if (options.sources) fields.sources = options.sources;
  if (options.tags) fields.tags = options.tags;
  if (options.host !== undefined) fields.host = options.host;
  if (options.repository !== undefined) fields.repository = options.repository;
  if (options.dryRun !== undefined) fields.dryRun = options.dryRun;
  const backup = fakeBackupInfo(fields);
  const state = options.state ?? {};

  // The engine's own controller: the external signal interrupts it, ctx.abort() aborts it.
  const internal = new AbortController();
  const external = options.signal;
  const onExternalAbort = (): void => internal.abort(new BackupInterruptedError(external?.reason));
  if (external?.aborted) onExternalAbort();
  else external?.addEventListener('abort', onExternalAbort, { once: true });

  const added = new Map<string, { content: ContentSource; options: VirtualFileOptions }>();
  const addedView = new Map<string, ContentSource>();
  const topNames = new Set(backup.sources.map((s) => s.split('/').filter(Boolean)[0] ?? ''));
  let walkDone = false;
  const onAddFile = (path: string, content: ContentSource, opts: VirtualFileOptions): void => {
    if (walkDone) throw new Error(`addFile('${path}'): too late, the snapshot's tree is already built`);
    const top = path.split('/')[0]!;
    if (topNames.has(top)) throw new Error(`addFile('${path}'): clashes with the backed-up path '/${top}'`);
    for (const other of added.keys()) {
      if (other === path || other.startsWith(path + '/') || path.startsWith(other + '/')) {
        throw new Error(`addFile('${path}'): clashes with the virtual file '${other}'`);
      }
    }
    added.set(path, { content, options: opts });
    addedView.set(path, content);
  };

  const session = runtime.createBackupSession({ backup, signal: internal.signal, abortController: internal, onAddFile, state });
  const run: PluginTestRun = {
    status: 'running', bodyRan: false, backup, metadata: backup.metadata, state,
    addedFiles: [], fileDecisions: [], errors: [], stopErrors: [], logs: [],
  };

  /** Read content like the engine: after an abort the abort's reason ends the backup, otherwise the entry is recorded as unreadable. */
  const read = async (path: string, what: string, content: ContentSource): Promise<Buffer | undefined> => {
    try {
      return await readContent(content);
    } catch (err) {
      if (internal.signal.aborted) throw internal.signal.reason;
      run.errors.push({ path, message: `${what}: ${errorText(err)}` });
      return undefined;
    }
  };

  const bodyCtx: TestBackupBody = {
    backup,
    signal: session.signal,
    state,
    addedFiles: addedView,
    reportError: (path, message) => void run.errors.push({ path, message }),
  };
  let snapshotId: string | undefined;
  const body = async (): Promise<void> => {
    run.bodyRan = true;
    internal.signal.throwIfAborted();
    if (options.body) await options.body(bodyCtx);
    const skippedDirs: string[] = [];
    for (const f of options.files ?? []) {
      const entry = typeof f === 'string' ? fakeFileEntry(f) : f;
      internal.signal.throwIfAborted();
      if (skippedDirs.some((d) => entry.path.startsWith(d.endsWith('/') ? d : d + '/'))) {
        run.fileDecisions.push({ path: entry.path, type: entry.type, visited: false, skip: true });
        continue;
      }
      const pending = session.file(entry);
      const d = pending === undefined ? { skip: false } : await pending;
      const rec: TestFileDecision = { path: entry.path, type: entry.type, visited: true, skip: d.skip };
      const metadata = ('metadata' in d ? d.metadata : undefined) ?? entry.metadata;
      if (metadata !== undefined) rec.metadata = metadata;
      if (d.skip && entry.type === 'dir') skippedDirs.push(entry.path);
      if (!d.skip && 'content' in d && d.content !== undefined && entry.type === 'file') {
        const buf = await read(entry.path, 'replaced content', d.content);
        if (buf) rec.content = buf;
      }
      run.fileDecisions.push(rec);
    }
    walkDone = true;
    for (const [path, vf] of added) {
      internal.signal.throwIfAborted();
      const buf = await read(path, 'virtual file', vf.content);
      if (buf) run.addedFiles.push({ path, content: buf, options: vf.options });
    }
    if (!backup.dryRun) snapshotId = options.snapshotId ?? randomBytes(32).toString('hex');
  };

  let failure: unknown;
  try {
    await session.start(body);
    run.status = run.errors.length > 0 ? 'partial' : 'success';
  } catch (err) {
    run.startError = err;
    failure = err;
    run.status =
      err instanceof BackupAbortedError || (err as Error | undefined)?.name === 'BackupAbortedError'
        ? 'aborted'
        : err instanceof BackupInterruptedError || external?.aborted
          ? 'interrupted'
          : 'failure';
    if (run.status === 'interrupted' && !(err instanceof BackupInterruptedError)) failure = new BackupInterruptedError(external?.reason);
  } finally {
    external?.removeEventListener('abort', onExternalAbort);
    walkDone = true;
    if (!internal.signal.aborted && failure !== undefined) internal.abort(failure);
    backup.status = run.status;
    if (failure !== undefined) backup.error = run.error = failure instanceof Error ? failure : new Error(String(failure));
    if (snapshotId !== undefined) backup.snapshotId = snapshotId;
  }
  run.stopErrors = await session.stop();
  if (mem) run.logs = mem.entries.slice(logStart);
  return run;
}
