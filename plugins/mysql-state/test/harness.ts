/**
 * A stand-in for Kiwi's plug-in runtime, enough to drive one plug-in's hooks in a unit test:
 * `onBackupStart` wraps the backup body (the innermost `next()`), and `onBackupStop` always runs after it
 * with the backup's final status, as the real runtime does.
 */
import { compose } from '@kiwi-backup/core';
import type {
  BackupInfo,
  BackupStats,
  ContentSource,
  HookContext,
  HookName,
  Logger,
  PluginApi,
  PluginDefinition,
  PluginModule,
} from '@kiwi-backup/core';

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  data?: Record<string, unknown>;
}

export class TestAbortError extends Error {
  override name = 'BackupAbortedError';
}

export function testLogger(entries: LogEntry[]): Logger {
  const at = (level: LogEntry['level']) => (message: string, data?: Record<string, unknown>) => {
    entries.push({ level, message, ...(data ? { data } : {}) });
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function emptyStats(): BackupStats {
  return {
    filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirsNew: 0, dirsChanged: 0, dirsUnmodified: 0,
    errors: 0, bytesRead: 0, totalBytes: 0, totalFiles: 0, blobsNew: 0, dataAdded: 0, dataAddedPacked: 0,
  };
}

export interface Harness {
  backup: BackupInfo;
  state: Record<string, unknown>;
  logs: LogEntry[];
  files: Map<string, ContentSource>;
  controller: AbortController;
  context(hook: HookName): HookContext;
}

export function makeHarness(opts: {
  options?: Record<string, unknown>;
  dataDir?: string;
  backup?: Partial<Pick<BackupInfo, 'sources' | 'repository' | 'host' | 'tags' | 'dryRun'>>;
} = {}): Harness {
  const logs: LogEntry[] = [];
  const files = new Map<string, ContentSource>();
  const controller = new AbortController();
  const state: Record<string, unknown> = {};
  const backup: BackupInfo = {
    id: `test-${Math.random().toString(36).slice(2, 10)}`,
    sources: ['/srv/a'],
    repository: '/tmp/repo',
    host: 'testhost',
    tags: [],
    dryRun: false,
    stats: emptyStats(),
    status: 'running',
    metadata: {},
    ...opts.backup,
  };
  const log = testLogger(logs);
  const context = (hook: HookName): HookContext => ({
    hook,
    backup,
    state,
    log,
    options: opts.options ?? {},
    signal: controller.signal,
    dataDir: opts.dataDir ?? '/tmp/kiwi-data',
    abort(reason: string): never {
      throw new TestAbortError(reason);
    },
    addFile(path: string, content: ContentSource) {
      if (files.has(path)) throw new Error(`addFile: ${path} already added`);
      files.set(path, content);
    },
  });
  return { backup, state, logs, files, controller, context };
}

/** Load a plug-in module the way the runtime does: call a factory with its options and api. */
export async function loadPlugin(
  mod: PluginModule,
  options: Record<string, unknown>,
  api: Partial<PluginApi> & { pluginDir: string },
): Promise<PluginDefinition> {
  if (typeof mod !== 'function') return mod;
  const logs: LogEntry[] = [];
  return mod(options, { name: 'test', dataDir: '/tmp/kiwi-data', log: testLogger(logs), ...api });
}

export interface BackupRun {
  startError?: unknown;
  stopError?: unknown;
  bodyRan: boolean;
}

/**
 * Run one backup through the plug-in: `onBackupStart` around `body`, then `onBackupStop`.
 * The status follows the runtime's rules: aborted (ctx.abort), interrupted (signal), failure, success.
 */
export async function runBackup(
  plugin: PluginDefinition,
  h: Harness,
  body: (ctx: HookContext) => Promise<void> = async () => undefined,
  opts: { snapshotId?: string } = {},
): Promise<BackupRun> {
  const run: BackupRun = { bodyRan: false };
  const startCtx = h.context('onBackupStart');
  try {
    await compose<HookContext>(plugin.onBackupStart ? [plugin.onBackupStart] : [])(startCtx, async () => {
      run.bodyRan = true;
      await body(startCtx);
    });
    h.backup.status = 'success';
    if (opts.snapshotId) h.backup.snapshotId = opts.snapshotId;
  } catch (err) {
    run.startError = err;
    h.backup.error = err as Error;
    h.backup.status = h.controller.signal.aborted
      ? 'interrupted'
      : err instanceof TestAbortError
        ? 'aborted'
        : 'failure';
  }
  try {
    await compose<HookContext>(plugin.onBackupStop ? [plugin.onBackupStop] : [])(h.context('onBackupStop'));
  } catch (err) {
    run.stopError = err;
  }
  return run;
}
