/**
 * Looking at and removing files: {@link stat}, {@link list} (reading `data/xx` directories ahead) and {@link remove}.
 */
import { FILE_TYPES, assertValidHandle, handlePath, typeDir, type FileInfo, type FileType, type Handle } from '@kiwi-backup/core';
import type { FileEntryWithStats, Stats } from 'ssh2';
import { isNotFound } from './errors.js';
import type { SftpPool } from './pool.js';
import { req, unlink } from './requests.js';
import { TMP_MARK } from './write.js';

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

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
    for (const e of top) if (e.attrs.isFile() && NAME_RE.test(e.filename)) yield { name: e.filename, size: e.attrs.size };
    return;
  }
  const subs = top.filter((e) => e.attrs.isDirectory() && /^[0-9a-f]{2}$/.test(e.filename)).map((e) => e.filename);
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
  while (pending.length > 0) {
    const entries = await pending.shift()!;
    fill();
    for (const e of entries) if (e.attrs.isFile() && NAME_RE.test(e.filename)) yield { name: e.filename, size: e.attrs.size };
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
