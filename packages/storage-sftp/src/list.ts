/**
 * Looking at and removing files: {@link stat}, {@link list} (reading `data/xx` directories ahead) and {@link remove}.
 *
 * `list` yields only what `load` reads under the same name: a pack only in its own
 * `data/<first 2 hex>/` directory, and only names valid for the type. Anything else (a pack copied
 * or moved into the wrong `data/xx`, a file named `a b`) is skipped and reported through the
 * `onWarning` option, never listed and never a reason for the listing to fail (core's
 * `listedNameProblem` says which).
 */
import { FILE_TYPES, assertValidHandle, handlePath, listedNameProblem, typeDir, type FileInfo, type FileType, type Handle } from '@kiwi-backup/core';
import type { FileEntryWithStats, Stats } from 'ssh2';
import { isNotFound } from './errors.js';
import type { SftpPool } from './pool.js';
import { req, unlink } from './requests.js';
import { TMP_MARK } from './write.js';

/** The name of a `data/` subdirectory: two lowercase hex digits. */
const DATA_SUBDIR = /^[0-9a-f]{2}$/;

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
function* filesOf(pool: SftpPool, type: FileType, dir: string, entries: FileEntryWithStats[], sub?: string): Iterable<FileInfo> {
  for (const e of entries) {
    if (!e.attrs.isFile() || e.filename.includes(TMP_MARK)) continue;
    const problem = listedNameProblem(type, e.filename, sub);
    if (problem) warnOnce(pool, `list ${type}: skipped ${pool.location}/${dir}/${e.filename}: ${problem}`);
    else yield { name: e.filename, size: e.attrs.size };
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
    if (e.filename.startsWith('.')) continue;
    // Packs are loaded from data/<2 hex>/ only: whatever else is here holds no pack `load` would read.
    if (e.attrs.isDirectory() && DATA_SUBDIR.test(e.filename)) subs.push(e.filename);
    else warnOnce(pool, `list data: skipped ${pool.location}/${dirRel}/${e.filename}: not a pack directory (data/00 … data/ff)`);
  }
  // Read a few subdirectories ahead while the caller consumes the current one.
  const ahead = 4;
  const pending: Array<Promise<FileEntryWithStats[]>> = [];
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
async function readdir(pool: SftpPool, rel: string): Promise<FileEntryWithStats[]> {
  try {
    return await pool.run('list', rel, (c) =>
      req<FileEntryWithStats[]>(c, (cb) => c.sftp.readdir(pool.full(rel), cb as never)),
    );
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
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
      for (const e of await readdir(pool, rel)) if (e.attrs.isDirectory() && /^[0-9a-f]{2}$/.test(e.filename)) dirs.push(`${rel}/${e.filename}`);
    }
  }
  let files = 0;
  let bytes = 0;
  for (const dir of dirs) {
    for (const e of await readdir(pool, dir)) {
      if (!e.filename.includes(TMP_MARK) || !e.attrs.isFile() || e.attrs.mtime > before) continue;
      const rel = dir ? `${dir}/${e.filename}` : e.filename;
      try {
        await pool.run('remove', rel, (c) => unlink(c, pool.full(rel)));
        files++;
        bytes += e.attrs.size;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
  return { files, bytes };
}
