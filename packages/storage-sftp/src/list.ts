/**
 * Looking at and removing files: {@link stat}, {@link list} (reading `data/xx` directories ahead) and {@link remove}.
 *
 * `list` yields only what `load` reads under the same name: a pack only in its own
 * `data/<first 2 hex>/` directory, and only names valid for the type. Anything else (a pack copied
 * or moved into the wrong `data/xx`, a file named `a b`) is skipped and reported through the
 * `onWarning` option, never listed and never a reason for the listing to fail (core's
 * `listedNameProblem` says which).
 */
import { FILE_TYPES, StorageError, assertValidHandle, handlePath, listedNameProblem, typeDir, type FileInfo, type FileType, type Handle } from '@kiwi-backup/core';
import type { FileEntryWithStats, Stats } from 'ssh2';
import type { Conn } from './connection.js';
import { SFTP_EOF, errCode, isNotFound } from './errors.js';
import type { SftpPool } from './pool.js';
import { closeHandle, req, unlink } from './requests.js';
import { TMP_MARK } from './write.js';

/** The name of a `data/` subdirectory: two lowercase hex digits. */
const DATA_SUBDIR = /^[0-9a-f]{2}$/;

/**
 * The most entries one directory's listing may bring (a `data/xx`, `index`, ...): far more than a
 * repository directory holds (a petabyte of 16 MiB packs is about 260,000 per `data/xx`), and few
 * enough to hold (about 250 bytes each). A server that never ends a listing is stopped here instead
 * of growing the process until it dies.
 */
export const MAX_DIR_ENTRIES = 1_000_000;

/** The longest entry name kept: no file system has longer ones (NAME_MAX is 255 bytes or UTF-16 units). */
const MAX_NAME_LENGTH = 255;

/** What `list` and `removeTemporaries` need of a directory entry (ssh2's objects also hold `longname`). */
interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/** Entries each storage (pool) already warned about: each is reported once, however often it lists. */
const warnedOf = new WeakMap<SftpPool, Set<string>>();

/** Report an entry `list` skipped, once per storage. A failing callback changes nothing. */
function warnOnce(pool: SftpPool, message: string): void {
  let warned = warnedOf.get(pool);
  if (!warned) warnedOf.set(pool, (warned = new Set()));
  if (warned.has(message)) return;
  warned.add(message);
  try {
    pool.r.onWarning(message);
  } catch {
    // A warning is only a warning.
  }
}

/**
 * The files of `type` among the entries of `dir` (`sub`: which `data/` subdirectory): regular files
 * (the server's readdir gives lstat attributes: symlinks are not listed, so no loop is followed)
 * with a valid name for the type and place, temporary files of saves left out silently.
 */
function* filesOf(pool: SftpPool, type: FileType, dir: string, entries: DirEntry[], sub?: string): Iterable<FileInfo> {
  for (const e of entries) {
    if (!e.isFile || e.name.includes(TMP_MARK)) continue;
    const problem = listedNameProblem(type, e.name, sub);
    if (problem) warnOnce(pool, `list ${type}: skipped ${pool.location}/${dir}/${e.name}: ${problem}`);
    else yield { name: e.name, size: e.size };
  }
}

export async function stat(pool: SftpPool, handle: Handle): Promise<FileInfo> {
  assertValidHandle(handle);
  const rel = handlePath(handle);
  return await pool.run('stat', rel, async (c) => {
    const st = await req<Stats>(c, (cb) => c.sftp.stat(pool.full(rel), cb));
    return { name: handle.type === 'config' ? 'config' : handle.name, size: st.size };
  });
}

export async function* list(pool: SftpPool, type: FileType): AsyncIterable<FileInfo> {
  if (type === 'config') {
    try {
      yield await stat(pool, { type: 'config', name: 'config' });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return;
  }
  const dirRel = typeDir(type);
  const top = await readdir(pool, dirRel);
  if (type !== 'data') {
    yield* filesOf(pool, type, dirRel, top);
    return;
  }
  const subs: string[] = [];
  for (const e of top) {
    if (e.name.startsWith('.')) continue;
    // Packs are loaded from data/<2 hex>/ only: whatever else is here holds no pack `load` would read.
    if (e.isDirectory && DATA_SUBDIR.test(e.name)) subs.push(e.name);
    else warnOnce(pool, `list data: skipped ${pool.location}/${dirRel}/${e.name}: not a pack directory (data/00 … data/ff)`);
  }
  // Read a few subdirectories ahead while the caller consumes the current one.
  const ahead = 4;
  const pending: Array<Promise<DirEntry[]>> = [];
  let i = 0;
  const fill = () => {
    while (pending.length < ahead && i < subs.length) {
      const p = readdir(pool, `${dirRel}/${subs[i++]}`);
      p.catch(() => undefined); // handled when awaited
      pending.push(p);
    }
  };
  fill();
  let next = 0;
  while (pending.length > 0) {
    const entries = await pending.shift()!;
    fill();
    yield* filesOf(pool, type, `${dirRel}/${subs[next]}`, entries, subs[next]);
    next++;
  }
}

/** All entries of a directory (relative to the repository); a missing directory is empty. */
async function readdir(pool: SftpPool, rel: string): Promise<DirEntry[]> {
  try {
    return await pool.run('list', rel, (c) => readdirOn(c, pool.full(rel), `${pool.location}/${rel}`, (m) => warnOnce(pool, m)));
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}

/**
 * The entries of the directory `path` (`where` names it in messages), each name once, read with one
 * READDIR request after the other until the server says end of file. Not ssh2's `readdir(path)`,
 * which does the same inside one call: the watchdog saw a single request, so a listing of many
 * replies that took longer than `requestTimeoutMs` was dropped although every reply came in time;
 * once dropped, that call never returned (it closes its handle on the dead channel and waits for an
 * answer that cannot come); and what a server that never ends the listing sends piled up in memory.
 * Here every reply counts for the watchdog, and the listing stops at {@link MAX_DIR_ENTRIES}.
 * A name listed twice (renamed over while listed, on some file systems) is kept once, with its last
 * attributes; names no directory can hold (with a `/`, or longer than any file system allows) are
 * skipped with a warning (`warn`).
 */
export async function readdirOn(c: Conn, path: string, where: string, warn: (message: string) => void): Promise<DirEntry[]> {
  const h = await req<Buffer>(c, (cb) => c.sftp.opendir(path, cb));
  try {
    const entries = new Map<string, DirEntry>();
    let received = 0;
    for (;;) {
      let batch: FileEntryWithStats[];
      try {
        batch = await req<FileEntryWithStats[]>(c, (cb) => c.sftp.readdir(h, cb as never));
      } catch (err) {
        if (errCode(err) === SFTP_EOF) return [...entries.values()];
        throw err;
      }
      // An empty reply counts too: a server answering "nothing more" without ever saying EOF must not loop for ever.
      received += Math.max(1, batch.length);
      if (received > MAX_DIR_ENTRIES) {
        throw new StorageError(
          `SFTP list ${where}: the server sent more than ${MAX_DIR_ENTRIES} entries for this one directory without ending the listing; no repository directory holds that many`,
          { kind: 'other', location: where },
        );
      }
      for (const e of batch) {
        const name = e.filename;
        if (typeof name !== 'string') continue;
        if (name.length > MAX_NAME_LENGTH || /[/\0]/.test(name)) {
          // No directory holds such a name; `removeTemporaries` would build a path from it.
          warn(`list: skipped an entry of ${where} named ${JSON.stringify(name.slice(0, 40))}${name.length > 40 ? '…' : ''}: not a name a directory can hold`);
          continue;
        }
        const a = e.attrs;
        entries.set(name, { name, isFile: a.isFile(), isDirectory: a.isDirectory(), size: a.size, mtime: a.mtime });
      }
    }
  } finally {
    // Not awaited: a connection that died in the middle of the listing never answers it.
    if (!c.dead) void closeHandle(c, h).catch(() => undefined);
  }
}

export async function remove(pool: SftpPool, handle: Handle): Promise<void> {
  assertValidHandle(handle);
  const rel = handlePath(handle);
  await pool.run('remove', rel, (c) => unlink(c, pool.full(rel)));
}

/**
 * The temporary files of saves a crash interrupted (`<name>~kiwi-tmp-<hex>` beside their targets),
 * older than `olderThanMs`, removed (see Storage.removeTemporaries).
 */
export async function removeTemporaries(pool: SftpPool, olderThanMs: number): Promise<{ files: number; bytes: number }> {
  const before = (Date.now() - olderThanMs) / 1000; // SFTP times are whole seconds
  const dirs = [''];
  for (const type of FILE_TYPES) {
    if (type === 'config') continue;
    const rel = typeDir(type);
    dirs.push(rel);
    if (type === 'data') {
      for (const e of await readdir(pool, rel)) if (e.isDirectory && DATA_SUBDIR.test(e.name)) dirs.push(`${rel}/${e.name}`);
    }
  }
  let files = 0;
  let bytes = 0;
  for (const dir of dirs) {
    for (const e of await readdir(pool, dir)) {
      if (!e.name.includes(TMP_MARK) || !e.isFile || e.mtime > before) continue;
      const rel = dir ? `${dir}/${e.name}` : e.name;
      try {
        await pool.run('remove', rel, (c) => unlink(c, pool.full(rel)));
        files++;
        bytes += e.size;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
  return { files, bytes };
}
