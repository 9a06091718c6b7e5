/**
 * Deleting files: {@link remove} (one file, which must exist) and {@link removeMany}
 * (DeleteObjects in batches of 1000 keys, missing files ignored).
 */
import { StorageError, assertValidHandle, handlePath, type Handle } from '@kiwi-backup/core';
import { DeleteObjectCommand, DeleteObjectsCommand } from './client.js';
import type { S3Context } from './context.js';
import { stat } from './list.js';

export async function remove(ctx: S3Context, handle: Handle): Promise<void> {
  ctx.check();
  assertValidHandle(handle);
  // S3 deletes a missing key without complaint; the contract wants not-found.
  await stat(ctx, handle);
  try {
    await ctx.client.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: ctx.key(handle) }));
  } catch (err) {
    throw ctx.error(err, `remove ${handlePath(handle)}`, handle);
  }
}

export async function removeMany(ctx: S3Context, handles: Iterable<Handle>): Promise<void> {
  ctx.check();
  const keys: string[] = [];
  for (const h of handles) {
    assertValidHandle(h);
    keys.push(ctx.key(h));
  }
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    let res;
    try {
      res = await ctx.client.send(
        new DeleteObjectsCommand({
          Bucket: ctx.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
    } catch (err) {
      throw ctx.error(err, `remove ${batch.length} files`);
    }
    const errors = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
    if (errors.length > 0) {
      const shown = errors
        .slice(0, 5)
        .map((e) => `${e.Key ?? '?'} (${e.Code ?? 'error'}${e.Message ? `: ${e.Message}` : ''})`)
        .join(', ');
      const transient = errors.every((e) => /InternalError|SlowDown|ServiceUnavailable/.test(e.Code ?? ''));
      throw new StorageError(
        `S3 remove at ${ctx.location}: ${errors.length} of ${batch.length} files could not be deleted: ${shown}${errors.length > 5 ? ', ...' : ''}`,
        { kind: transient ? 'transient' : 'other', location: ctx.location },
      );
    }
  }
}
