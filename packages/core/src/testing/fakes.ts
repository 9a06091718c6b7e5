import type { Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createLogger, type KiwiLogger, type LogEventLevel, type LogLevel } from '../log/logger.js';
import type { BackupInfo, BackupStats, ContentSource, EntryType, FileEntry } from '../plugins/types.js';

/** One captured log line. `plugin` is set for lines a plug-in wrote through `ctx.log` / `api.log`. */
export interface LogEntry {
  level: LogEventLevel;
  message: string;
  data?: Record<string, unknown>;
  /** The logger's scope: `plugin:<name>` for a plug-in, `''` for the runtime itself. */
  scope: string;
  /** The plug-in that logged it, if a plug-in did. */
  plugin?: string;
}

/** A real Kiwi logger (redaction included) that keeps every line in memory. */
export interface MemoryLogger extends KiwiLogger {
  /** Every line logged through this logger and its children, in order. */
  readonly entries: LogEntry[];
  /** The lines one plug-in logged. */
  forPlugin(name: string): LogEntry[];
  clear(): void;
}

const PLUGIN_SCOPE = /^plugin:([^/]+)/;

/** A logger for tests: pass it to `PluginRuntime.load/fromModules`, then read `entries`. Level `debug` by default. */
export function memoryLogger(options: { level?: LogLevel; secrets?: readonly string[] } = {}): MemoryLogger {
  const entries: LogEntry[] = [];
  const logger = createLogger({
    level: options.level ?? 'debug',
    ...(options.secrets ? { secrets: options.secrets } : {}),
    sink: (e) => {
      const entry: LogEntry = { level: e.level, message: e.message, scope: e.scope };
      if (e.data !== undefined) entry.data = e.data;
      const m = PLUGIN_SCOPE.exec(e.scope);
      if (m) entry.plugin = m[1]!;
      entries.push(entry);
    },
  });
  return Object.assign(logger, {
    entries,
    forPlugin: (name: string) => entries.filter((e) => e.plugin === name),
    clear: () => void entries.splice(0),
  });
}

/** Zeroed backup counters. */
export function emptyBackupStats(): BackupStats {
  return {
    filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirsNew: 0, dirsChanged: 0, dirsUnmodified: 0,
    errors: 0, bytesRead: 0, totalBytes: 0, totalFiles: 0, blobsNew: 0, dataAdded: 0, dataAddedPacked: 0,
  };
}

/** Fields of a fake backup a test may set. */
export type FakeBackupFields = { -readonly [K in 'id' | 'sources' | 'repository' | 'host' | 'tags' | 'dryRun' | 'metadata']?: BackupInfo[K] };

/** A {@link BackupInfo} as the engine builds it at the start of a run (status `running`). */
export function fakeBackupInfo(fields: FakeBackupFields = {}): BackupInfo {
  return {
    id: fields.id ?? randomBytes(8).toString('hex'),
    sources: [...(fields.sources ?? ['/srv/data'])],
    repository: fields.repository ?? '/tmp/kiwi-test-repo',
    host: fields.host ?? 'testhost',
    tags: [...(fields.tags ?? [])],
    dryRun: fields.dryRun ?? false,
    stats: emptyBackupStats(),
    status: 'running',
    metadata: fields.metadata ?? {},
  };
}

const TYPE_BITS: Record<EntryType, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, other: 0o010000 };

/**
 * A {@link FileEntry} like the ones the walk hands to `onFile`, with a fake
 * `stat` (mode 0644/0755, size 0, now as times) overridable field by field.
 */
export function fakeFileEntry(path: string, type: EntryType = 'file', stat: Partial<Stats> = {}): FileEntry {
  const now = Date.now();
  const perm = type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644;
  const base = {
    dev: 1, ino: 1 + Math.floor(Math.random() * 1e9), mode: TYPE_BITS[type] | perm, nlink: 1, uid: 0, gid: 0, rdev: 0,
    size: 0, blksize: 4096, blocks: 0,
    atimeMs: now, mtimeMs: now, ctimeMs: now, birthtimeMs: now,
    atime: new Date(now), mtime: new Date(now), ctime: new Date(now), birthtime: new Date(now),
    isFile: () => type === 'file',
    isDirectory: () => type === 'dir',
    isSymbolicLink: () => type === 'symlink',
    isFIFO: () => type === 'other',
    isSocket: () => false,
    isCharacterDevice: () => false,
    isBlockDevice: () => false,
  };
  return { path, type, stat: { ...base, ...stat } as unknown as Stats };
}

/** Read a {@link ContentSource} completely, the way the engine stores it (a factory is called once). */
export async function readContent(source: ContentSource): Promise<Buffer> {
  if (typeof source === 'string') return Buffer.from(source, 'utf8');
  if (source instanceof Uint8Array) return Buffer.from(source); // a copy: the plug-in may reuse its buffer
  const chunks: Buffer[] = [];
  for await (const chunk of await source()) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}
