import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BackupInfo, BackupStats, FileEntry } from '../../src/index.js';
import { createLogger, memorySink } from '../../src/index.js';
import type { Stats } from 'node:fs';

export async function tempDir(prefix = 'kiwi-plugins-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Write files (relative path → content) under `root`. */
export async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

export function testLogger(level: 'debug' | 'info' | 'warn' = 'debug') {
  const mem = memorySink();
  return { logger: createLogger({ level, sink: mem.sink }), mem };
}

const zeroStats = (): BackupStats => ({
  filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirsNew: 0, dirsChanged: 0, dirsUnmodified: 0,
  errors: 0, bytesRead: 0, totalBytes: 0, totalFiles: 0, blobsNew: 0, dataAdded: 0, dataAddedPacked: 0,
});

export function backupInfo(over: Partial<BackupInfo> = {}): BackupInfo {
  return {
    id: 'run-1', sources: ['/src'], repository: '/repo', host: 'h', tags: [], dryRun: false,
    stats: zeroStats(), status: 'running', metadata: {}, ...over,
  };
}

export function entry(path: string, type: FileEntry['type'] = 'file'): FileEntry {
  return { path, type, stat: {} as Stats };
}

/** A global call log plug-in files write to (tests and plug-in files share the process). */
export function callLog(): string[] {
  const g = globalThis as { __kiwiCalls?: string[] };
  g.__kiwiCalls = [];
  return g.__kiwiCalls;
}

/** The rejection reason of `p`; fails the test if `p` resolves. */
export async function rejectionOf<E = Error>(p: Promise<unknown> | undefined): Promise<E> {
  try {
    await p;
  } catch (e) {
    return e as E;
  }
  throw new Error('expected a rejection, but the promise resolved');
}
