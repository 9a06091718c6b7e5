/**
 * Looking at files: {@link stat} (HeadObject) and {@link list} (ListObjectsV2, page by page).
 */
import { FILE_TYPES, StorageError, assertValidHandle, handlePath, typeDir, type FileInfo, type FileType, type Handle } from '@kiwi-backup/core';
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
      const info = matchKey(type, obj.Key.slice(listPrefix.length), obj.Size ?? 0);
      if (info) yield info;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated && !token) {
      throw new StorageError(`S3 list ${type} at ${ctx.location}: truncated page without a continuation token`, {
        kind: 'other',
        location: ctx.location,
      });
    }
  } while (token);
}

/** Map a listed key (relative to the type's prefix) to a file, or undefined if it is not one of that type. */
function matchKey(type: FileType, rest: string, size: number): FileInfo | undefined {
  if (type === 'config') return rest === '' ? { name: 'config', size } : undefined;
  if (type === 'data') {
    const m = /^([^/]{2})\/([^/]+)$/.exec(rest);
    if (!m?.[1] || !m[2] || !m[2].startsWith(m[1])) return undefined;
    return { name: m[2], size };
  }
  if (rest === '' || rest.includes('/')) return undefined;
  return { name: rest, size };
}
