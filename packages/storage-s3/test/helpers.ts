import { randomBytes } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { s3ServerAvailable, S3_SERVER_INSTALL_HINT, type S3TestServer } from '@kiwi-backup/test-servers';
import { createS3Storage, type S3Storage, type S3StorageOptions } from '../src/index.js';

export const serverAvailable = s3ServerAvailable();
export const installHint = S3_SERVER_INSTALL_HINT;

/** A fresh, unique key prefix so tests sharing a bucket never see each other's files. */
export function freshPrefix(label = 'repo'): string {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

/** Open an S3 storage on the test server (a fresh prefix unless given). */
export function openOn(server: S3TestServer, options: Partial<S3StorageOptions> = {}): S3Storage {
  return createS3Storage({
    endpoint: server.endpoint,
    bucket: server.bucket,
    prefix: freshPrefix(),
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    ...options,
  });
}

/** A plain SDK client for the test server, to look at what was stored independently of the adapter. */
export function rawClient(server: S3TestServer): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Deterministic, non-repeating-looking bytes (every byte value occurs). */
export function patternBytes(size: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}
