/**
 * The S3 {@link Storage} ({@link createS3Storage}, {@link openS3Storage}), delegating to the modules
 * beside it: `options.ts` (options), `client.ts` (the SDK and the client's configuration),
 * `context.ts` (what the operations share), `read.ts`, `write.ts`, `list.ts` and `remove.ts` (the
 * Storage operations), `errors.ts` (error classification), `url.ts` (repository URLs).
 */
import type { BucketLocationConstraint } from '@aws-sdk/client-s3';
import { StorageError, type FileInfo, type FileType, type Handle, type LoadOptions, type SaveSource, type Storage } from '@kiwi-backup/core';
import { CreateBucketCommand, HeadBucketCommand } from './client.js';
import { S3Context } from './context.js';
import { isNoSuchBucket, isS3NotFound } from './errors.js';
import { list, stat } from './list.js';
import { MiB, type S3StorageOptions } from './options.js';
import { load } from './read.js';
import { remove, removeMany } from './remove.js';
import { normalizePrefix, parseS3Url, type S3Target } from './url.js';
import { save, saveFrom } from './write.js';

/** An S3 {@link Storage} with batch deletion. */
export interface S3Storage extends Storage {
  readonly bucket: string;
  readonly prefix: string;
  /**
   * Delete many files with DeleteObjects, at most 1000 keys per request.
   * Files that do not exist are not an error. Rejects with a {@link StorageError}
   * naming the keys that could not be deleted.
   */
  removeMany(handles: Iterable<Handle>): Promise<void>;
}

/**
 * Create an S3 storage from options (`bucket` required). Repository URLs go
 * through {@link openS3Storage} / the `s3Adapter` instead.
 */
export function createS3Storage(options: S3StorageOptions & { bucket: string }, env: NodeJS.ProcessEnv = process.env): S3Storage {
  const target: S3Target = {
    endpoint: options.endpoint ? options.endpoint.replace(/\/+$/, '') : undefined,
    bucket: options.bucket,
    prefix: normalizePrefix(options.prefix ?? ''),
  };
  if (target.endpoint && /\/\/[^/]*@/.test(target.endpoint)) {
    throw new TypeError('S3 endpoint must not contain credentials: pass accessKeyId/secretAccessKey as options');
  }
  return new S3StorageImpl(target, options, env);
}

/** Open an S3 storage for a repository URL (`s3:bucket/prefix` or `s3:https://host:port/bucket/prefix`). */
export function openS3Storage(url: string, options: S3StorageOptions = {}, env: NodeJS.ProcessEnv = process.env): S3Storage {
  const target = parseS3Url(url);
  return createS3Storage({ ...options, ...target, endpoint: target.endpoint ?? options.endpoint }, env);
}

class S3StorageImpl implements S3Storage {
  readonly location: string;
  /**
   * Ranged reads of 8 MiB: every GET costs a request (latency to the first byte, request
   * processing, a per-request charge on AWS), so an object store wants fewer, larger reads than
   * a disk, which does best with Kiwi's default of 4 MiB.
   */
  readonly preferredReadSize = 8 * MiB;
  readonly bucket: string;
  readonly prefix: string;
  readonly #ctx: S3Context;

  constructor(target: S3Target, options: S3StorageOptions, env: NodeJS.ProcessEnv) {
    this.#ctx = new S3Context(target, options, env);
    this.bucket = this.#ctx.bucket;
    this.prefix = this.#ctx.prefix;
    this.location = this.#ctx.location;
  }

  async create(): Promise<void> {
    const ctx = this.#ctx;
    ctx.check();
    try {
      await ctx.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      // (Not every 'config' error: a missing region is one too, and is reported as what it is.)
      const missing = isS3NotFound(err) || isNoSuchBucket(err);
      if (!missing) throw ctx.error(err, 'check bucket');
      if (!ctx.opts.createBucket) {
        throw new StorageError(
          `S3 bucket "${this.bucket}" does not exist at ${ctx.endpoint}: create it first, or set the storage option createBucket: true`,
          { kind: 'config', location: this.location, cause: err },
        );
      }
    }
    try {
      const constraint =
        ctx.region && ctx.region !== 'us-east-1' && !this.location.startsWith('s3:http')
          ? { CreateBucketConfiguration: { LocationConstraint: ctx.region as BucketLocationConstraint } }
          : {};
      await ctx.client.send(new CreateBucketCommand({ Bucket: this.bucket, ...constraint }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'BucketAlreadyOwnedByYou') return;
      throw ctx.error(err, 'create bucket');
    }
  }

  save(handle: Handle, data: Uint8Array): Promise<void> {
    return save(this.#ctx, handle, data);
  }

  saveFrom(handle: Handle, source: SaveSource): Promise<void> {
    return saveFrom(this.#ctx, handle, source);
  }

  load(handle: Handle, options?: LoadOptions): Promise<Buffer> {
    return load(this.#ctx, handle, options);
  }

  stat(handle: Handle): Promise<FileInfo> {
    return stat(this.#ctx, handle);
  }

  list(type: FileType): AsyncIterable<FileInfo> {
    return list(this.#ctx, type);
  }

  remove(handle: Handle): Promise<void> {
    return remove(this.#ctx, handle);
  }

  removeMany(handles: Iterable<Handle>): Promise<void> {
    return removeMany(this.#ctx, handles);
  }

  isNotFound(err: unknown): boolean {
    return isS3NotFound(err);
  }

  async close(): Promise<void> {
    this.#ctx.close();
  }
}
