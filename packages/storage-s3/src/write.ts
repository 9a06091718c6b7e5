/**
 * Writing files: {@link save} (one PUT, or a multipart upload from `multipartThreshold`),
 * {@link saveFrom} (a source streamed in one PUT), each followed by a check of the stored size.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { StorageError, assertValidHandle, handlePath, readSource, sourceSizeError, type Handle, type SaveSource } from '@kiwi-backup/core';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from './client.js';
import type { S3Context } from './context.js';

export async function save(ctx: S3Context, handle: Handle, data: Uint8Array): Promise<void> {
  ctx.check();
  assertValidHandle(handle);
  if (!(data instanceof Uint8Array)) throw new TypeError(`save ${handlePath(handle)}: data must be a Uint8Array`);
  const key = ctx.key(handle);
  // A Buffer view over the caller's bytes (no copy); the SDK sends it with a fixed Content-Length.
  const body = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let etag: string | undefined;
  if (body.byteLength >= ctx.opts.multipartThreshold) {
    etag = await saveMultipart(ctx, handle, key, body);
  } else {
    try {
      const res = await ctx.client.send(
        new PutObjectCommand({
          Bucket: ctx.bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          ...(ctx.opts.contentMD5 ? { ContentMD5: md5(body) } : {}),
          ...ctx.putExtras(),
        }),
      );
      etag = res.ETag;
    } catch (err) {
      throw ctx.error(err, `save ${handlePath(handle)}`, handle);
    }
  }
  await verifySize(ctx, handle, key, body.byteLength, etag);
}

/**
 * Stream `source` to the object in one PUT with a fixed Content-Length (never aws-chunked). A
 * multipart upload (from `multipartThreshold`) or a Content-MD5 needs the bytes at hand first:
 * those read the source into memory and save it.
 */
export async function saveFrom(ctx: S3Context, handle: Handle, source: SaveSource): Promise<void> {
  ctx.check();
  assertValidHandle(handle);
  const where = handlePath(handle);
  const size = source.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`save ${where}: the source's size must be a non-negative integer, got ${String(size)}`);
  if (size >= ctx.opts.multipartThreshold || ctx.opts.contentMD5 || size === 0) {
    await save(ctx, handle, await readSource(source, where));
    return;
  }
  const key = ctx.key(handle);
  // The body fails when the source yields more or fewer bytes than its size, and the request is
  // then aborted: the server never receives Content-Length bytes, so it stores nothing. The chunk
  // that completes the size is sent only once the source is known to end there.
  const counted = async function* (): AsyncGenerator<Uint8Array> {
    const it = source.open()[Symbol.asyncIterator]();
    let sent = 0;
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      const chunk = r.value;
      if (sent + chunk.byteLength > size) throw sourceSizeError(where, size, `more than ${size}`);
      if (sent + chunk.byteLength === size && chunk.byteLength > 0) {
        for (;;) {
          const more = await it.next();
          if (more.done) break;
          if (more.value.byteLength > 0) throw sourceSizeError(where, size, `more than ${size}`);
        }
        sent += chunk.byteLength;
        yield chunk;
        return;
      }
      sent += chunk.byteLength;
      if (chunk.byteLength > 0) yield chunk;
    }
    if (sent !== size) throw sourceSizeError(where, size, String(sent));
  };
  const body = Readable.from(counted(), { objectMode: false });
  const abort = new AbortController();
  let sourceFailure: unknown;
  body.on('error', (err) => {
    sourceFailure ??= err;
    abort.abort();
  });
  let etag: string | undefined;
  try {
    const res = await ctx.client.send(
      new PutObjectCommand({ Bucket: ctx.bucket, Key: key, Body: body, ContentLength: size, ...ctx.putExtras() }),
      { abortSignal: abort.signal },
    );
    etag = res.ETag;
  } catch (err) {
    body.destroy();
    if (sourceFailure !== undefined) throw sourceFailure;
    throw ctx.error(err, `save ${where}`, handle);
  }
  if (sourceFailure !== undefined) throw sourceFailure;
  await verifySize(ctx, handle, key, size, etag);
}

/** Upload `body` in parts; returns the ETag of the completed object. */
async function saveMultipart(ctx: S3Context, handle: Handle, key: string, body: Buffer): Promise<string | undefined> {
  const op = `save ${handlePath(handle)} (multipart)`;
  // S3 allows at most 10 000 parts: grow the part size for huge files.
  const partSize = Math.max(ctx.opts.partSize, Math.ceil(body.byteLength / 10_000));
  let uploadId: string | undefined;
  try {
    const created = await ctx.client.send(
      new CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, ...ctx.putExtras() }),
    );
    uploadId = created.UploadId;
    if (!uploadId) throw new StorageError(`S3 ${op}: the server returned no upload id`, { kind: 'other', location: ctx.where(handle) });
    const count = Math.ceil(body.byteLength / partSize);
    const parts: CompletedPart[] = new Array(count);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < count) {
        const index = next++;
        const chunk = body.subarray(index * partSize, Math.min(body.byteLength, (index + 1) * partSize));
        try {
          const res = await ctx.client.send(
            new UploadPartCommand({
              Bucket: ctx.bucket,
              Key: key,
              UploadId: uploadId,
              PartNumber: index + 1,
              Body: chunk,
              ContentLength: chunk.byteLength,
              ...(ctx.opts.contentMD5 ? { ContentMD5: md5(chunk) } : {}),
            }),
          );
          if (!res.ETag) throw new StorageError(`S3 ${op}: part ${index + 1} returned no ETag`, { kind: 'other', location: ctx.where(handle) });
          parts[index] = { PartNumber: index + 1, ETag: res.ETag };
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    const workers = Array.from({ length: Math.min(ctx.opts.partConcurrency, count) }, () => worker());
    const results = await Promise.allSettled(workers);
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    const done = await ctx.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: ctx.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    return done.ETag;
  } catch (err) {
    if (uploadId) {
      // Best effort: a failed abort leaves an incomplete upload that a lifecycle rule or the next prune can clear.
      await ctx.client
        .send(new AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId }))
        .catch(() => undefined);
    }
    throw ctx.error(err, op, handle);
  }
}

/**
 * Check the stored object has the size we sent. If its ETag differs from the one our
 * upload returned, a concurrent writer replaced it in the meantime (S3 keeps the last
 * whole PUT): that version is not ours to check.
 */
async function verifySize(ctx: S3Context, handle: Handle, key: string, expected: number, etag: string | undefined): Promise<void> {
  let size: number | undefined;
  try {
    const head = await ctx.client.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: key }));
    if (etag && head.ETag && head.ETag !== etag) return;
    size = head.ContentLength;
  } catch (err) {
    throw ctx.error(err, `verify ${handlePath(handle)}`, handle);
  }
  if (size !== expected) {
    throw new StorageError(
      `S3 save ${handlePath(handle)} at ${ctx.where(handle)}: the server stored ${String(size)} bytes, expected ${expected} ` +
        '(an S3-compatible server that stores aws-chunked framing would do this)',
      { kind: 'integrity', location: ctx.where(handle) },
    );
  }
}

function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64');
}
