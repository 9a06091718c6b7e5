import { createHash } from 'node:crypto';
import { Readable, finished } from 'node:stream';
import { createRequire } from 'node:module';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type * as HttpHandlerModule from '@smithy/node-http-handler';
import type {
  BucketLocationConstraint,
  CompletedPart,
  S3ClientConfig,
  ServerSideEncryption,
  StorageClass,
} from '@aws-sdk/client-s3';
import {
  FILE_TYPES,
  StorageError,
  assertValidHandle,
  checkLoadOptions,
  handlePath,
  loadTarget,
  readSource,
  sourceSizeError,
  typeDir,
  type FileInfo,
  type FileType,
  type Handle,
  type LoadOptions,
  type SaveSource,
  type Storage,
} from '@kiwi-backup/core';
import { DirectReadHandler, type BodySink, type InnerHandler } from './direct-read.js';
import { classifyS3Error, isS3NotFound, toStorageError } from './errors.js';
import { formatLocation, normalizePrefix, parseS3Url, type S3Target } from './url.js';

// The SDK's CommonJS build, loaded with require(): an ESM import of it makes Node first scan its 270 KB
// bundle for export names, ~30 ms added to the start of every command on an s3: repository.
const {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} = createRequire(import.meta.url)('@aws-sdk/client-s3') as typeof S3Sdk;
type S3Client = S3Sdk.S3Client;
const { NodeHttpHandler } = createRequire(import.meta.url)('@smithy/node-http-handler') as typeof HttpHandlerModule;

const MiB = 1024 * 1024;

/** Options of the S3 adapter (config file `storageOptions.s3`, or {@link createS3Storage}). */
export interface S3StorageOptions {
  /** Bucket name (taken from the URL when opened through the adapter). */
  bucket?: string;
  /** Key prefix inside the bucket (taken from the URL when opened through the adapter). */
  prefix?: string;
  /** Custom endpoint, e.g. `https://minio.example:9000`. Unset = AWS. */
  endpoint?: string;
  /** AWS region. Default: AWS_REGION / AWS_DEFAULT_REGION, else the SDK's chain (profile); `us-east-1` for custom endpoints. */
  region?: string;
  /** Path-style addressing (`https://host/bucket/key`). Default: true for custom endpoints, false for AWS. */
  forcePathStyle?: boolean;
  /** Static credentials. Default: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from `env`, else the SDK's default chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** A profile of `~/.aws/config` / `~/.aws/credentials` (default: AWS_PROFILE or `default`). */
  profile?: string;
  /** Storage class for new objects, e.g. `STANDARD_IA`. */
  storageClass?: string;
  /** Server-side encryption: `AES256`, `aws:kms`, `aws:kms:dsse`. */
  serverSideEncryption?: string;
  /** KMS key id for `aws:kms`. */
  sseKmsKeyId?: string;
  /**
   * Send a Content-MD5 header with every upload (default false). Without it, integrity rests on
   * the SHA-256 of the body that the SDK signs (x-amz-content-sha256), which AWS and most
   * S3-compatible servers verify; enable it for servers that only check Content-MD5. Costs an
   * MD5 pass over every byte uploaded.
   */
  contentMD5?: boolean;
  /** Files at least this large upload as multipart (default 32 MiB; packs are ~16 MiB and use one PUT). */
  multipartThreshold?: number;
  /** Multipart part size (default 16 MiB; AWS requires ≥ 5 MiB for all parts but the last). */
  partSize?: number;
  /** Parts uploaded in parallel per file (default 4). */
  partConcurrency?: number;
  /** Keys per ListObjectsV2 page (default 1000, the S3 maximum). */
  listPageSize?: number;
  /** `create()` creates the bucket if it does not exist (default false: a missing bucket is a config error). */
  createBucket?: boolean;
  /** TCP connect timeout in ms (default 10 000). */
  connectionTimeoutMs?: number;
  /** A socket idle for this long fails the request, in ms (default 120 000). */
  socketTimeoutMs?: number;
  /** Maximum parallel connections (default 32). */
  maxSockets?: number;
}

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

type Resolved = Required<
  Pick<S3StorageOptions, 'multipartThreshold' | 'partSize' | 'partConcurrency' | 'listPageSize' | 'createBucket' | 'contentMD5'>
>;

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
/** A logger that drops what the SDK would log. */
const SILENT_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export function openS3Storage(url: string, options: S3StorageOptions = {}, env: NodeJS.ProcessEnv = process.env): S3Storage {
  const target = parseS3Url(url);
  return createS3Storage({ ...options, ...target, endpoint: target.endpoint ?? options.endpoint }, env);
}

function positiveInt(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`S3 option ${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function buildClientConfig(
  target: S3Target,
  options: S3StorageOptions,
  env: NodeJS.ProcessEnv,
): { config: S3ClientConfig; transport: DirectReadHandler } {
  const maxSockets = positiveInt(options.maxSockets, 'maxSockets', 32);
  const connectionTimeout = positiveInt(options.connectionTimeoutMs, 'connectionTimeoutMs', 10_000);
  const socketTimeout = positiveInt(options.socketTimeoutMs, 'socketTimeoutMs', 120_000);
  const agent = { keepAlive: true, maxSockets };
  const inner = new NodeHttpHandler({ connectionTimeout, socketTimeout, httpAgent: agent, httpsAgent: agent });
  // Ranged reads into a caller's buffer skip Node's HTTP client (see direct-read.ts).
  const transport = new DirectReadHandler(inner as unknown as InnerHandler, { connectionTimeout, socketTimeout, maxSockets });
  const config: S3ClientConfig = {
    // The shared retry layer in core (withRetry) is the only one: no SDK retries.
    maxAttempts: 1,
    // Never aws-chunked uploads with trailing checksums (some S3-compatible servers store
    // the framing as object bytes); checksums only where an API requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: transport as unknown as S3ClientConfig['requestHandler'],
    // The SDK prints some failures to the console when it has no logger of its own (a failed
    // streamed upload); Kiwi reports every failure itself, once, through its error.
    logger: SILENT_LOGGER,
  };
  const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (target.endpoint ? 'us-east-1' : undefined);
  if (region) config.region = region;
  if (target.endpoint) {
    config.endpoint = target.endpoint;
    config.forcePathStyle = options.forcePathStyle ?? true;
  } else {
    config.forcePathStyle = options.forcePathStyle ?? false;
    config.followRegionRedirects = true;
  }
  if (options.accessKeyId !== undefined || options.secretAccessKey !== undefined) {
    if (!options.accessKeyId || !options.secretAccessKey) {
      throw new TypeError('S3 options accessKeyId and secretAccessKey must be given together');
    }
    config.credentials = {
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
    };
  } else if (options.profile) {
    config.profile = options.profile;
  } else if (env !== process.env && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    // An explicit environment (not process.env, which the SDK's chain reads itself).
    config.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  return { config, transport };
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
  readonly #client: S3Client;
  readonly #transport: DirectReadHandler;
  readonly #endpoint: string;
  readonly #opts: Resolved;
  readonly #storageClass: StorageClass | undefined;
  readonly #sse: ServerSideEncryption | undefined;
  readonly #sseKmsKeyId: string | undefined;
  readonly #region: string | undefined;
  #closed = false;

  constructor(target: S3Target, options: S3StorageOptions, env: NodeJS.ProcessEnv) {
    this.bucket = target.bucket;
    this.prefix = target.prefix;
    this.location = formatLocation(target);
    const { config, transport } = buildClientConfig(target, options, env);
    this.#transport = transport;
    this.#region = typeof config.region === 'string' ? config.region : undefined;
    this.#endpoint = target.endpoint ?? `AWS S3${this.#region ? ` (${this.#region})` : ''}`;
    this.#client = new S3Client(config);
    this.#opts = {
      multipartThreshold: positiveInt(options.multipartThreshold, 'multipartThreshold', 32 * MiB),
      partSize: positiveInt(options.partSize, 'partSize', 16 * MiB),
      partConcurrency: positiveInt(options.partConcurrency, 'partConcurrency', 4),
      listPageSize: Math.min(1000, positiveInt(options.listPageSize, 'listPageSize', 1000)),
      createBucket: options.createBucket === true,
      contentMD5: options.contentMD5 === true,
    };
    this.#storageClass = options.storageClass as StorageClass | undefined;
    this.#sse = options.serverSideEncryption as ServerSideEncryption | undefined;
    this.#sseKmsKeyId = options.sseKmsKeyId;
  }

  async create(): Promise<void> {
    this.#check();
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      const missing = isS3NotFound(err) || classifyS3Error(err) === 'config';
      if (!missing) throw this.#error(err, 'check bucket');
      if (!this.#opts.createBucket) {
        throw new StorageError(
          `S3 bucket "${this.bucket}" does not exist at ${this.#endpoint}: create it first, or set the storage option createBucket: true`,
          { kind: 'config', location: this.location, cause: err },
        );
      }
    }
    try {
      const constraint =
        this.#region && this.#region !== 'us-east-1' && !this.location.startsWith('s3:http')
          ? { CreateBucketConfiguration: { LocationConstraint: this.#region as BucketLocationConstraint } }
          : {};
      await this.#client.send(new CreateBucketCommand({ Bucket: this.bucket, ...constraint }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'BucketAlreadyOwnedByYou') return;
      throw this.#error(err, 'create bucket');
    }
  }

  async save(handle: Handle, data: Uint8Array): Promise<void> {
    this.#check();
    assertValidHandle(handle);
    if (!(data instanceof Uint8Array)) throw new TypeError(`save ${handlePath(handle)}: data must be a Uint8Array`);
    const key = this.#key(handle);
    // A Buffer view over the caller's bytes (no copy); the SDK sends it with a fixed Content-Length.
    const body = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let etag: string | undefined;
    if (body.byteLength >= this.#opts.multipartThreshold) {
      etag = await this.#saveMultipart(handle, key, body);
    } else {
      try {
        const res = await this.#client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: body,
            ContentLength: body.byteLength,
            ...(this.#opts.contentMD5 ? { ContentMD5: md5(body) } : {}),
            ...this.#putExtras(),
          }),
        );
        etag = res.ETag;
      } catch (err) {
        throw this.#error(err, `save ${handlePath(handle)}`, handle);
      }
    }
    await this.#verifySize(handle, key, body.byteLength, etag);
  }

  /**
   * Stream `source` to the object in one PUT with a fixed Content-Length (never aws-chunked). A
   * multipart upload (from `multipartThreshold`) or a Content-MD5 needs the bytes at hand first:
   * those read the source into memory and save it.
   */
  async saveFrom(handle: Handle, source: SaveSource): Promise<void> {
    this.#check();
    assertValidHandle(handle);
    const where = handlePath(handle);
    const size = source.size;
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`save ${where}: the source's size must be a non-negative integer, got ${String(size)}`);
    if (size >= this.#opts.multipartThreshold || this.#opts.contentMD5 || size === 0) {
      await this.save(handle, await readSource(source, where));
      return;
    }
    const key = this.#key(handle);
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
      const res = await this.#client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: size, ...this.#putExtras() }),
        { abortSignal: abort.signal },
      );
      etag = res.ETag;
    } catch (err) {
      body.destroy();
      if (sourceFailure !== undefined) throw sourceFailure;
      throw this.#error(err, `save ${where}`, handle);
    }
    if (sourceFailure !== undefined) throw sourceFailure;
    await this.#verifySize(handle, key, size, etag);
  }

  /** Upload `body` in parts; returns the ETag of the completed object. */
  async #saveMultipart(handle: Handle, key: string, body: Buffer): Promise<string | undefined> {
    const op = `save ${handlePath(handle)} (multipart)`;
    // S3 allows at most 10 000 parts: grow the part size for huge files.
    const partSize = Math.max(this.#opts.partSize, Math.ceil(body.byteLength / 10_000));
    let uploadId: string | undefined;
    try {
      const created = await this.#client.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ...this.#putExtras() }),
      );
      uploadId = created.UploadId;
      if (!uploadId) throw new StorageError(`S3 ${op}: the server returned no upload id`, { kind: 'other', location: this.#where(handle) });
      const count = Math.ceil(body.byteLength / partSize);
      const parts: CompletedPart[] = new Array(count);
      let next = 0;
      let failed = false;
      const worker = async (): Promise<void> => {
        while (!failed && next < count) {
          const index = next++;
          const chunk = body.subarray(index * partSize, Math.min(body.byteLength, (index + 1) * partSize));
          try {
            const res = await this.#client.send(
              new UploadPartCommand({
                Bucket: this.bucket,
                Key: key,
                UploadId: uploadId,
                PartNumber: index + 1,
                Body: chunk,
                ContentLength: chunk.byteLength,
                ...(this.#opts.contentMD5 ? { ContentMD5: md5(chunk) } : {}),
              }),
            );
            if (!res.ETag) throw new StorageError(`S3 ${op}: part ${index + 1} returned no ETag`, { kind: 'other', location: this.#where(handle) });
            parts[index] = { PartNumber: index + 1, ETag: res.ETag };
          } catch (err) {
            failed = true;
            throw err;
          }
        }
      };
      const workers = Array.from({ length: Math.min(this.#opts.partConcurrency, count) }, () => worker());
      const results = await Promise.allSettled(workers);
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected) throw rejected.reason;
      const done = await this.#client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
      return done.ETag;
    } catch (err) {
      if (uploadId) {
        // Best effort: a failed abort leaves an incomplete upload that a lifecycle rule or the next prune can clear.
        await this.#client
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))
          .catch(() => undefined);
      }
      throw this.#error(err, op, handle);
    }
  }

  /**
   * Check the stored object has the size we sent. If its ETag differs from the one our
   * upload returned, a concurrent writer replaced it in the meantime (S3 keeps the last
   * whole PUT): that version is not ours to check.
   */
  async #verifySize(handle: Handle, key: string, expected: number, etag: string | undefined): Promise<void> {
    let size: number | undefined;
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      if (etag && head.ETag && head.ETag !== etag) return;
      size = head.ContentLength;
    } catch (err) {
      throw this.#error(err, `verify ${handlePath(handle)}`, handle);
    }
    if (size !== expected) {
      throw new StorageError(
        `S3 save ${handlePath(handle)} at ${this.#where(handle)}: the server stored ${String(size)} bytes, expected ${expected} ` +
          '(an S3-compatible server that stores aws-chunked framing would do this)',
        { kind: 'integrity', location: this.#where(handle) },
      );
    }
  }

  async load(handle: Handle, options?: LoadOptions): Promise<Buffer> {
    this.#check();
    assertValidHandle(handle);
    const where = this.#where(handle);
    const { offset, length } = checkLoadOptions(options, where);
    const key = this.#key(handle);
    const op = `load ${handlePath(handle)}`;
    if (length === 0) {
      // An empty range cannot be expressed as an HTTP Range: check the file and the offset instead.
      const { size } = await this.stat(handle);
      if (offset > size) throw this.#pastEnd(handle, offset, length, size);
      return Buffer.alloc(0);
    }
    const range =
      offset === 0 && length === undefined ? undefined : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    // A big enough caller buffer (LoadOptions.into) gets the body straight from the socket.
    const target = loadTarget(options);
    const sink: BodySink | undefined = target ? { buffer: target } : undefined;
    let res;
    try {
      res = await this.#client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }),
        sink ? this.#transport.optionsFor(sink) : undefined,
      );
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 416 || (err as { name?: string }).name === 'InvalidRange') {
        // Offset at or past the end. Reading from exactly the end is an empty read.
        const { size } = await this.stat(handle);
        if (length === undefined && offset === size) return Buffer.alloc(0);
        throw this.#pastEnd(handle, offset, length, size);
      }
      throw this.#error(err, op, handle);
    }
    const total = totalSize(res.ContentRange, res.ContentLength, range === undefined);
    const expected = length ?? (total !== undefined ? total - offset : res.ContentLength);
    if (expected === undefined) {
      throw new StorageError(`S3 ${op} at ${where}: the server sent no length`, { kind: 'other', location: where });
    }
    if (total !== undefined && offset + expected > total) {
      (res.Body as Readable | undefined)?.destroy?.();
      throw this.#pastEnd(handle, offset, length, total);
    }
    let buf: Buffer;
    try {
      // Already in the caller's buffer, or read from the SDK's stream (into that buffer if it fits).
      buf = sink?.received !== undefined ? sink.buffer.subarray(0, sink.received) : await readBody(res.Body as Readable | undefined, expected, target);
    } catch (err) {
      throw this.#error(err, op, handle);
    }
    if (buf.byteLength !== expected) {
      throw new StorageError(`S3 ${op} at ${where}: received ${buf.byteLength} bytes, expected ${expected}`, {
        kind: 'transient',
        location: where,
      });
    }
    return buf;
  }

  async stat(handle: Handle): Promise<FileInfo> {
    this.#check();
    assertValidHandle(handle);
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#key(handle) }));
      return { name: handle.type === 'config' ? 'config' : handle.name, size: head.ContentLength ?? 0 };
    } catch (err) {
      throw this.#error(err, `stat ${handlePath(handle)}`, handle);
    }
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    this.#check();
    if (!FILE_TYPES.includes(type)) throw new TypeError(`invalid file type ${JSON.stringify(type)}`);
    const base = this.prefix ? `${this.prefix}/` : '';
    const listPrefix = type === 'config' ? `${base}config` : `${base}${typeDir(type)}/`;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: listPrefix,
            MaxKeys: this.#opts.listPageSize,
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw this.#error(err, `list ${type}`);
      }
      for (const obj of page.Contents ?? []) {
        if (!obj.Key) continue;
        const info = matchKey(type, obj.Key.slice(listPrefix.length), obj.Size ?? 0);
        if (info) yield info;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token) {
        throw new StorageError(`S3 list ${type} at ${this.location}: truncated page without a continuation token`, {
          kind: 'other',
          location: this.location,
        });
      }
    } while (token);
  }

  async remove(handle: Handle): Promise<void> {
    this.#check();
    assertValidHandle(handle);
    // S3 deletes a missing key without complaint; the contract wants not-found.
    await this.stat(handle);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#key(handle) }));
    } catch (err) {
      throw this.#error(err, `remove ${handlePath(handle)}`, handle);
    }
  }

  async removeMany(handles: Iterable<Handle>): Promise<void> {
    this.#check();
    const keys: string[] = [];
    for (const h of handles) {
      assertValidHandle(h);
      keys.push(this.#key(h));
    }
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      let res;
      try {
        res = await this.#client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
      } catch (err) {
        throw this.#error(err, `remove ${batch.length} files`);
      }
      const errors = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const shown = errors
          .slice(0, 5)
          .map((e) => `${e.Key ?? '?'} (${e.Code ?? 'error'}${e.Message ? `: ${e.Message}` : ''})`)
          .join(', ');
        const transient = errors.every((e) => /InternalError|SlowDown|ServiceUnavailable/.test(e.Code ?? ''));
        throw new StorageError(
          `S3 remove at ${this.location}: ${errors.length} of ${batch.length} files could not be deleted: ${shown}${errors.length > 5 ? ', ...' : ''}`,
          { kind: transient ? 'transient' : 'other', location: this.location },
        );
      }
    }
  }

  isNotFound(err: unknown): boolean {
    return isS3NotFound(err);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
  }

  #putExtras(): { StorageClass?: StorageClass; ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string } {
    return {
      ...(this.#storageClass ? { StorageClass: this.#storageClass } : {}),
      ...(this.#sse ? { ServerSideEncryption: this.#sse } : {}),
      ...(this.#sseKmsKeyId ? { SSEKMSKeyId: this.#sseKmsKeyId } : {}),
    };
  }

  #key(handle: Handle): string {
    const path = handlePath(handle);
    return this.prefix ? `${this.prefix}/${path}` : path;
  }

  #where(handle: Handle): string {
    return `${this.location}/${handlePath(handle)}`;
  }

  #error(err: unknown, op: string, handle?: Handle): StorageError {
    return toStorageError(err, {
      op,
      location: this.location,
      endpoint: this.#endpoint,
      bucket: this.bucket,
      ...(handle ? { where: this.#where(handle) } : {}),
    });
  }

  #pastEnd(handle: Handle, offset: number, length: number | undefined, size: number): StorageError {
    const where = this.#where(handle);
    return new StorageError(
      `load ${where}: range ${offset}+${length ?? size - offset} is past the end of the file (${size} bytes)`,
      { kind: 'other', location: where },
    );
  }

  #check(): void {
    if (this.#closed) throw new StorageError(`${this.location} is closed`, { kind: 'other', location: this.location });
  }
}

function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('base64');
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
export async function readBody(body: Readable | undefined, expected: number, target?: Buffer): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const out = target !== undefined && target.byteLength >= expected ? target.subarray(0, expected) : Buffer.allocUnsafe(expected);
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
