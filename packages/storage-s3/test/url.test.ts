import { StorageError } from '@kiwi-backup/core';
import { describe, expect, it } from 'vitest';
import { classifyS3Error, createS3Storage, formatLocation, isS3NotFound, parseS3Url, s3Adapter } from '../src/index.js';

describe('parseS3Url', () => {
  it('parses AWS URLs', () => {
    expect(parseS3Url('s3:my-bucket/some/prefix/')).toEqual({ endpoint: undefined, bucket: 'my-bucket', prefix: 'some/prefix' });
    expect(parseS3Url('s3://my-bucket')).toEqual({ endpoint: undefined, bucket: 'my-bucket', prefix: '' });
  });

  it('parses custom endpoints', () => {
    expect(parseS3Url('s3:https://minio.local:9000/bkt/repo')).toEqual({
      endpoint: 'https://minio.local:9000',
      bucket: 'bkt',
      prefix: 'repo',
    });
    expect(parseS3Url('s3:http://127.0.0.1:1234/bkt')).toEqual({ endpoint: 'http://127.0.0.1:1234', bucket: 'bkt', prefix: '' });
  });

  it('rejects credentials in the URL without echoing them', () => {
    let err: unknown;
    try {
      parseS3Url('s3:https://AKIA:supersecret@host/bkt');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TypeError);
    expect(String((err as Error).message)).toMatch(/credentials/);
    expect(String((err as Error).message)).not.toContain('supersecret');
  });

  it('a secret holding "@", "/", "?" or ":" is neither echoed nor taken apart: the user info ends at the last "@"', () => {
    const message = (url: string): string => {
      try {
        parseS3Url(url);
      } catch (err) {
        expect(err).toBeInstanceOf(TypeError);
        return (err as Error).message;
      }
      throw new Error(`${url} parsed`);
    };
    const credentials = (shown: string) => `S3 repository URL ${JSON.stringify(shown)} contains credentials: pass them as options or environment variables instead`;
    // Once `s3:https://***@CRET@host/b`.
    expect(message('s3:https://AK:SE@CRET@host/b')).toBe(credentials('s3:https://***@host/b'));
    // Not a valid endpoint URL once the secret's "/" or "?" ends the host: once echoed whole, or up to the "?".
    expect(message('s3:https://AK:SE/CRET@host/b')).toBe(credentials('s3:https://***@host/b'));
    expect(message('s3:https://AK:SE?CRET@host/b')).toBe(credentials('s3:https://***@host/b'));
    // A valid URL (host "AK", port 12) whose bucket is cut out of the secret: never quoted.
    expect(message('s3:https://AK:12/SE@CRET@host/b')).toBe(credentials('s3:https://***@host/b'));
    expect(message('s3:AK:SE@CRET@bucket/x')).toBe(credentials('s3:***@bucket/x'));
    // A query is hidden, and a bucket cut out of it is not quoted.
    expect(message('s3:bucket?secret=TOPSECRET')).toBe('S3 repository URL "s3:bucket?***": invalid or missing bucket name');
    expect(message('s3:bad_bucket!/x')).toBe('S3 repository URL "s3:bad_bucket!/x": invalid or missing bucket name "bad_bucket!"');
  });

  it('rejects a missing or invalid bucket and other schemes', () => {
    expect(() => parseS3Url('s3:')).toThrow(/bucket/);
    expect(() => parseS3Url('s3:https://host:9000/')).toThrow(/bucket/);
    expect(() => parseS3Url('sftp:host:/x')).toThrow(/not an S3/);
  });

  it('formats a printable location', () => {
    expect(formatLocation(parseS3Url('s3:https://h:9/b/p/q'))).toBe('s3:https://h:9/b/p/q');
    expect(formatLocation(parseS3Url('s3:b'))).toBe('s3:b');
  });
});

describe('s3Adapter', () => {
  it('serves the s3 scheme and opens storages with a credential-free location', async () => {
    expect(s3Adapter.schemes).toEqual(['s3']);
    const storage = await s3Adapter.open(
      's3:http://127.0.0.1:9/bucket-x/repo',
      { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'very-secret-value' },
      {},
    );
    expect(storage.location).toBe('s3:http://127.0.0.1:9/bucket-x/repo');
    expect(JSON.stringify(storage)).not.toContain('very-secret-value');
    await storage.close();
  });

  it('validates options', () => {
    expect(() => createS3Storage({ bucket: 'b', accessKeyId: 'only-the-id' })).toThrow(/together/);
    expect(() => createS3Storage({ bucket: 'b', endpoint: 'http://h', multipartThreshold: 0 })).toThrow(/multipartThreshold/);
    expect(() => createS3Storage({ bucket: 'b', endpoint: 'http://u:p@h' })).toThrow(/credentials/);
  });
});

describe('error classification', () => {
  const sdk = (name: string, status?: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  it('classifies SDK errors', () => {
    expect(classifyS3Error(sdk('NoSuchKey', 404))).toBe('not-found');
    expect(classifyS3Error(sdk('NotFound', 404))).toBe('not-found');
    expect(classifyS3Error(sdk('NoSuchBucket', 404))).toBe('config');
    expect(classifyS3Error(sdk('InvalidAccessKeyId', 403))).toBe('auth');
    expect(classifyS3Error(sdk('SignatureDoesNotMatch', 403))).toBe('auth');
    expect(classifyS3Error(sdk('Unknown', 403))).toBe('auth');
    expect(classifyS3Error(sdk('InternalError', 500))).toBe('transient');
    expect(classifyS3Error(sdk('SlowDown', 503))).toBe('transient');
    expect(classifyS3Error(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe('transient');
    expect(classifyS3Error(Object.assign(new Error('socket hang up'), {}))).toBe('transient');
    expect(classifyS3Error(sdk('InvalidArgument', 400))).toBe('other');
  });
  it('isNotFound: missing keys, not missing buckets', () => {
    expect(isS3NotFound(sdk('NoSuchKey', 404))).toBe(true);
    expect(isS3NotFound(sdk('NoSuchBucket', 404))).toBe(false);
    expect(isS3NotFound(new StorageError('x', { kind: 'not-found' }))).toBe(true);
    expect(isS3NotFound(new StorageError('x', { kind: 'transient' }))).toBe(false);
  });
});

describe('create() without a region', () => {
  it('says that no region is configured, not that the bucket is missing (and sends nothing)', async () => {
    // An AWS target (no endpoint) with no region anywhere (the SDK also looks at this process's
    // environment and the AWS config files): it fails before any request.
    const saved = { ...process.env };
    for (const k of ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE']) delete process.env[k];
    process.env.AWS_CONFIG_FILE = '/nonexistent/kiwi-test/aws-config';
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/kiwi-test/aws-credentials';
    const storage = createS3Storage({ bucket: 'kiwi-no-region' }, { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'not-used' });
    try {
      const err = await storage.create().then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message, String(err?.message)).toMatch(/no AWS region configured/);
      expect(err?.message).not.toMatch(/does not exist/);
      expect(err?.message).not.toContain('not-used');
    } finally {
      await storage.close?.();
      process.env = saved;
    }
  });
});
