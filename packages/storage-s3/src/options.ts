/**
 * The adapter's options: {@link S3StorageOptions} as given, and the part the operations use once
 * checked ({@link Resolved}, from {@link resolveOptions}).
 */

export const MiB = 1024 * 1024;

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
  /**
   * Told about objects under the repository's prefixes that `list` skips because they are not
   * repository files (a pack under the wrong `data/xx/`, a key named `index/a b`), once per object
   * and storage. Default: `process.emitWarning`, as the SFTP adapter's option of the same name.
   */
  onWarning?: (message: string) => void;
}

export type Resolved = Required<
  Pick<S3StorageOptions, 'multipartThreshold' | 'partSize' | 'partConcurrency' | 'listPageSize' | 'createBucket' | 'contentMD5' | 'onWarning'>
>;

/** The upload, listing and bucket options, checked, with their defaults. */
export function resolveOptions(options: S3StorageOptions): Resolved {
  return {
    multipartThreshold: positiveInt(options.multipartThreshold, 'multipartThreshold', 32 * MiB),
    partSize: positiveInt(options.partSize, 'partSize', 16 * MiB),
    partConcurrency: positiveInt(options.partConcurrency, 'partConcurrency', 4),
    listPageSize: Math.min(1000, positiveInt(options.listPageSize, 'listPageSize', 1000)),
    createBucket: options.createBucket === true,
    contentMD5: options.contentMD5 === true,
    onWarning: warningCallback(options.onWarning),
  };
}

function warningCallback(value: unknown): (message: string) => void {
  if (value === undefined) return (message: string) => process.emitWarning(message, 'KiwiWarning');
  if (typeof value !== 'function') throw new TypeError(`S3 option onWarning must be a function, got ${JSON.stringify(value)}`);
  return value as (message: string) => void;
}

export function positiveInt(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`S3 option ${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}
