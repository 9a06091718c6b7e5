/**
 * Reading files: {@link load}, whole or a range, into a new buffer or the caller's
 * (LoadOptions.into, straight from the socket when it can: see direct-read.ts), and
 * {@link readBody}, which reads a response body that went through the SDK's stream.
 */
import { Readable, finished } from 'node:stream';
import { StorageError, allocLoadBuffer, assertValidHandle, checkLoadOptions, handlePath, loadTarget, type Handle, type LoadOptions } from '@kiwi-backup/core';
import { GetObjectCommand } from './client.js';
import type { S3Context } from './context.js';
import type { BodySink } from './direct-read.js';
import { stat } from './list.js';

export async function load(ctx: S3Context, handle: Handle, options?: LoadOptions): Promise<Buffer> {
  ctx.check();
  assertValidHandle(handle);
  const where = ctx.where(handle);
  const { offset, length } = checkLoadOptions(options, where);
  const key = ctx.key(handle);
  const op = `load ${handlePath(handle)}`;
  if (length === 0) {
    // An empty range cannot be expressed as an HTTP Range: check the file and the offset instead.
    const { size } = await stat(ctx, handle);
    if (offset > size) throw pastEnd(ctx, handle, offset, length, size);
    return Buffer.alloc(0);
  }
  const range =
    offset === 0 && length === undefined ? undefined : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
  // A big enough caller buffer (LoadOptions.into) gets the body straight from the socket.
  const target = loadTarget(options);
  const sink: BodySink | undefined = target ? { buffer: target } : undefined;
  let res;
  try {
    res = await ctx.client.send(
      new GetObjectCommand({ Bucket: ctx.bucket, Key: key, Range: range }),
      sink ? ctx.transport.optionsFor(sink) : undefined,
    );
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 416 || (err as { name?: string }).name === 'InvalidRange') {
      // Offset at or past the end. Reading from exactly the end is an empty read.
      const { size } = await stat(ctx, handle);
      if (length === undefined && offset === size) return Buffer.alloc(0);
      throw pastEnd(ctx, handle, offset, length, size);
    }
    throw ctx.error(err, op, handle);
  }
  const total = totalSize(res.ContentRange, res.ContentLength, range === undefined);
  const expected = length ?? (total !== undefined ? total - offset : res.ContentLength);
  if (expected === undefined) {
    throw new StorageError(`S3 ${op} at ${where}: the server sent no length`, { kind: 'other', location: where });
  }
  if (total !== undefined && offset + expected > total) {
    (res.Body as Readable | undefined)?.destroy?.();
    throw pastEnd(ctx, handle, offset, length, total);
  }
  let buf: Buffer;
  try {
    // Already in the caller's buffer, or read from the SDK's stream (into that buffer if it fits).
    buf = sink?.received !== undefined ? sink.buffer.subarray(0, sink.received) : await readBody(res.Body as Readable | undefined, expected, target, where, options);
  } catch (err) {
    throw ctx.error(err, op, handle);
  }
  if (buf.byteLength !== expected) {
    throw new StorageError(`S3 ${op} at ${where}: received ${buf.byteLength} bytes, expected ${expected}`, {
      kind: 'transient',
      location: where,
    });
  }
  return buf;
}

function pastEnd(ctx: S3Context, handle: Handle, offset: number, length: number | undefined, size: number): StorageError {
  const where = ctx.where(handle);
  return new StorageError(
    `load ${where}: range ${offset}+${length ?? size - offset} is past the end of the file (${size} bytes)`,
    { kind: 'other', location: where },
  );
}

/** The full object size from a Content-Range header (`bytes a-b/total`), or the length of a full response. */
function totalSize(contentRange: string | undefined, contentLength: number | undefined, full: boolean): number | undefined {
  const m = contentRange ? /\/(\d+)\s*$/.exec(contentRange) : null;
  if (m?.[1]) return Number(m[1]);
  return full ? contentLength : undefined;
}

/**
 * Read a response body into one buffer of the expected size (no concatenation of chunk lists):
 * into `target` (its first `expected` bytes) when it is given and big enough, else into a new
 * buffer. Never writes past `expected` bytes; more data than that is an error. A body that ends
 * early gives a shorter result (the caller checks the count).
 * @internal exported for tests
 */
export async function readBody(body: Readable | undefined, expected: number, target?: Buffer, where = 'S3', options?: LoadOptions): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  let out: Buffer;
  try {
    out = target !== undefined && target.byteLength >= expected ? target.subarray(0, expected) : allocLoadBuffer(expected, where, options);
  } catch (err) {
    body.destroy();
    throw err;
  }
  // 'data' events rather than an async iterator: one promise per body instead of one per 64 KiB chunk.
  return await new Promise<Buffer>((resolve, reject) => {
    let pos = 0;
    let failed = false;
    const onData = (chunk: Uint8Array) => {
      if (failed) return;
      if (pos + chunk.byteLength > expected) {
        failed = true;
        body.destroy();
        reject(new StorageError(`received more than the expected ${expected} bytes`, { kind: 'other' }));
        return;
      }
      out.set(chunk, pos);
      pos += chunk.byteLength;
    };
    body.on('data', onData);
    finished(body, (err) => {
      body.off('data', onData);
      if (failed) return;
      if (err) reject(err);
      else resolve(pos === expected ? out : out.subarray(0, pos));
    });
  });
}
