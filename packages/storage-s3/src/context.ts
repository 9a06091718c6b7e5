/**
 * {@link S3Context}: what the operations of one S3 storage share (`read.ts`, `write.ts`, `list.ts`,
 * `remove.ts`): the SDK client and transport, the bucket and prefix, the resolved options, and
 * the helpers that name a file (its key, its printable location) and wrap SDK errors.
 */
import type { ServerSideEncryption, StorageClass } from '@aws-sdk/client-s3';
import { StorageError, handlePath, type Handle } from '@kiwi-backup/core';
import { S3Client, buildClientConfig } from './client.js';
import type { DirectReadHandler } from './direct-read.js';
import { toStorageError } from './errors.js';
import { resolveOptions, type Resolved, type S3StorageOptions } from './options.js';
import { formatLocation, type S3Target } from './url.js';

export class S3Context {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  readonly transport: DirectReadHandler;
  /** The server as errors name it: the custom endpoint, or `AWS S3 (region)`. */
  readonly endpoint: string;
  readonly opts: Resolved;
  readonly region: string | undefined;
  readonly #storageClass: StorageClass | undefined;
  readonly #sse: ServerSideEncryption | undefined;
  readonly #sseKmsKeyId: string | undefined;
  #closed = false;
  /** Objects `list` already warned about (each once, however often it lists). */
  readonly #warned = new Set<string>();

  constructor(target: S3Target, options: S3StorageOptions, env: NodeJS.ProcessEnv) {
    this.bucket = target.bucket;
    this.prefix = target.prefix;
    this.location = formatLocation(target);
    // Options first: a bad one throws before the client and its HTTP agents exist.
    this.opts = resolveOptions(options);
    const { config, transport } = buildClientConfig(target, options, env);
    this.transport = transport;
    this.region = typeof config.region === 'string' ? config.region : undefined;
    this.endpoint = target.endpoint ?? `AWS S3${this.region ? ` (${this.region})` : ''}`;
    this.client = new S3Client(config);
    this.#storageClass = options.storageClass as StorageClass | undefined;
    this.#sse = options.serverSideEncryption as ServerSideEncryption | undefined;
    this.#sseKmsKeyId = options.sseKmsKeyId;
  }

  /** Storage class and server-side encryption for a new object. */
  putExtras(): { StorageClass?: StorageClass; ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string } {
    return {
      ...(this.#storageClass ? { StorageClass: this.#storageClass } : {}),
      ...(this.#sse ? { ServerSideEncryption: this.#sse } : {}),
      ...(this.#sseKmsKeyId ? { SSEKMSKeyId: this.#sseKmsKeyId } : {}),
    };
  }

  key(handle: Handle): string {
    const path = handlePath(handle);
    return this.prefix ? `${this.prefix}/${path}` : path;
  }

  where(handle: Handle): string {
    return `${this.location}/${handlePath(handle)}`;
  }

  error(err: unknown, op: string, handle?: Handle): StorageError {
    return toStorageError(err, {
      op,
      location: this.location,
      endpoint: this.endpoint,
      bucket: this.bucket,
      ...(handle ? { where: this.where(handle) } : {}),
    });
  }

  /** Report something that works but should be fixed (an object `list` skipped), once per storage. */
  warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    try {
      this.opts.onWarning(message);
    } catch {
      // A warning is only a warning.
    }
  }

  /** Fail once the storage is closed. */
  check(): void {
    if (this.#closed) throw new StorageError(`${this.location} is closed`, { kind: 'other', location: this.location });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.client.destroy();
  }
}
