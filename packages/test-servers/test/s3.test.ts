import {
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithServer } from '../src/require.js';
import { S3_SERVER_INSTALL_HINT, s3ServerAvailable, startS3Server, type S3TestServer } from '../src/s3.js';

function client(server: S3TestServer, secret = server.secretAccessKey): S3Client {
  const config: S3ClientConfig = {
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: secret },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  return new S3Client(config);
}

describeWithServer('S3 test server (s3rver)', s3ServerAvailable(), S3_SERVER_INSTALL_HINT, () => {
  let server: S3TestServer;
  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('serves the bucket with the generated credentials and rejects others', async () => {
    const s3 = client(server);
    await s3.send(new HeadBucketCommand({ Bucket: server.bucket }));
    const body = Buffer.from('hello s3rver');
    await s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'a/b', Body: body, ContentLength: body.length }));
    const got = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'a/b' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);

    const bad = client(server, 'not-the-secret');
    await expect(bad.send(new HeadBucketCommand({ Bucket: server.bucket }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 403 },
    });
    s3.destroy();
    bad.destroy();
  });

  it('halt() makes it unreachable; restart() brings it back on the same port with its data', async () => {
    const s3 = client(server);
    const port = server.port;
    await server.halt();
    await expect(s3.send(new HeadBucketCommand({ Bucket: server.bucket }))).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    await server.restart();
    expect(server.port).toBe(port);
    const got = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'a/b' }));
    expect(await got.Body!.transformToString()).toBe('hello s3rver');
    s3.destroy();
  });
});
