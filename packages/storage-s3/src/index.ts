/**
 * `@kiwi-backup/storage-s3`: Kiwi repositories on AWS S3 and S3-compatible servers.
 *
 * URLs: `s3:bucket/prefix` (AWS; region from options, AWS_REGION or AWS_DEFAULT_REGION)
 * and `s3:https://host:port/bucket/prefix` (custom endpoint, path-style by default).
 * Credentials come from the options or the AWS SDK's default chain (environment,
 * shared profile, instance role); they never appear in `location` or errors.
 *
 * The adapter does not retry: core's `withRetry` retries the errors it marks transient.
 */
import { defineStorageAdapter, type StorageAdapter } from '@kiwi-backup/core';
import type { S3StorageOptions } from './options.js';
import { openS3Storage } from './storage.js';

export { createS3Storage, openS3Storage, type S3Storage } from './storage.js';
export type { S3StorageOptions } from './options.js';
export { parseS3Url, formatLocation, type S3Target } from './url.js';
export { classifyS3Error, isS3NotFound } from './errors.js';

/** The `s3:` storage adapter. */
export const s3Adapter: StorageAdapter<S3StorageOptions> = defineStorageAdapter<S3StorageOptions>({
  schemes: ['s3'],
  open(url, options, env) {
    return openS3Storage(url, options ?? {}, env ?? process.env);
  },
});

export const adapter = s3Adapter;
export default s3Adapter;
