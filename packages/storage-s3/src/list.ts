/**
 * Looking at files: {@link stat} (HeadObject) and {@link list} (ListObjectsV2, page by page).
 *
 * `list` yields only what `load` reads under the same name: a pack only under its own
 * `data/<first 2 hex>/` key, and only names valid for the type. Other objects under the type's
 * prefix (a pack copied under the wrong `data/xx/`, a key `index/a b`) are skipped and reported
 * through the `onWarning` option, never listed and never a reason for the listing to fail.
 */
import { FILE_TYPES, StorageError, assertValidHandle, handlePath, listedNameProblem, typeDir, type FileInfo, type FileType, type Handle } from '@kiwi-backup/core';
import { HeadObjectCommand, ListObjectsV2Command } from './client.js';
import type { S3Context } from './context.js';

export async function stat(ctx: S3Context, handle: Handle): Promise<FileInfo> {
  ctx.check();
  assertValidHandle(handle);
  try {
    const head = await ctx.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: ctx.key(handle) }));
    return { name: handle.type === 'config' ? 'config' : handle.name, size: head.ContentLength ?? 0 };
  } catch (err) {
    throw ctx.error(err, `stat ${handlePath(handle)}`, handle);
  }
}

export async function* list(ctx: S3Context, type: FileType): AsyncIterable<FileInfo> {
  ctx.check();
  if (!FILE_TYPES.includes(type)) throw new TypeError(`invalid file type ${JSON.stringify(type)}`);
  const base = ctx.prefix ? `${ctx.prefix}/` : '';
  const listPrefix = type === 'config' ? `${base}config` : `${base}${typeDir(type)}/`;
  let token: string | undefined;
  // Tokens already followed: a server that hands one back again (a bug, or a hostile endpoint)
  // would make the listing go round forever. A few dozen bytes per page of up to 1,000 keys.
  const followed = new Set<string>();
  do {
    let page;
    try {
      page = await ctx.client.send(
        new ListObjectsV2Command({
          Bucket: ctx.bucket,
          Prefix: listPrefix,
          MaxKeys: ctx.opts.listPageSize,
          ContinuationToken: token,
        }),
      );
    } catch (err) {
      throw ctx.error(err, `list ${type}`);
    }
    for (const obj of page.Contents ?? []) {
      if (!obj.Key) continue;
      const rest = obj.Key.slice(listPrefix.length);
      const info = matchKey(type, rest, obj.Size ?? 0);
      if (typeof info === 'string') ctx.warn(`list ${type}: skipped ${ctx.location}/${listPrefix.slice(base.length)}${rest}: ${info}`);
      else if (info) yield info;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated && !token) {
      throw new StorageError(`S3 list ${type} at ${ctx.location}: truncated page without a continuation token`, {
        kind: 'other',
        location: ctx.location,
      });
    }
    if (token !== undefined) {
      if (followed.has(token)) {
        throw new StorageError(`S3 list ${type} at ${ctx.location}: the server sent a continuation token it had sent before, so the listing would never end`, {
          kind: 'other',
          location: ctx.location,
        });
      }
      followed.add(token);
    }
  } while (token);
}

/**
 * Map a listed key (relative to the type's prefix) to a file; or, for a key that is not a file of
 * that type, why not (a string, to warn about), or undefined when it needs no word: the keys the
 * `config` prefix also matches (`config.bak`, beside the repository's directories) and "folder"
 * markers that consoles and some tools create (keys ending in `/`).
 *
 * - A pack must be named by 64 lowercase hex digits and sit under `data/<its first two>/`. A copy
 *   elsewhere is never the pack: `load` reads only that key, so listing the copy would report the
 *   wrong size (`check`, `repair index` drop the real pack; `prune` deletes it) or a pack that
 *   cannot be loaded (a backup would dedup against it).
 * - Other files need a name `assertValidHandle` accepts: core refuses any other name it is handed
 *   back, so one key `index/a b` would make every command fail.
 */
export function matchKey(type: FileType, rest: string, size: number): FileInfo | string | undefined {
  if (type === 'config') return rest === '' ? { name: 'config', size } : undefined;
  if (rest === '' || rest.endsWith('/')) return undefined;
  if (type === 'data') {
    const slash = rest.lastIndexOf('/');
    const name = rest.slice(slash + 1);
    return listedNameProblem('data', name, slash < 0 ? undefined : rest.slice(0, slash)) ?? { name, size };
  }
  if (rest.includes('/')) return `not a ${type} file (a key below ${typeDir(type)}/'s own files)`;
  return listedNameProblem(type, rest) ?? { name: rest, size };
}
