import { afterAll, beforeAll } from 'vitest';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describeWithServer, startS3Server, type S3TestServer } from '@kiwi-backup/test-servers';
import { describeStorageConformance } from '@kiwi-backup/storage-testkit';
import type { S3Storage } from '../src/index.js';
import { installHint, openOn, rawClient, serverAvailable } from './helpers.js';

describeWithServer('S3 test server (s3rver)', serverAvailable, installHint, () => {
  let server: S3TestServer;
  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    await server?.stop();
  });

  // Small multipart threshold/parts so the big-file checks go through multipart,
  // and a small page so listing many files pages through continuation tokens.
  describeStorageConformance('s3 (s3rver)', {
    open: async () =>
      openOn(server, { multipartThreshold: 4 * 1024 * 1024, partSize: 1024 * 1024, listPageSize: 100, onWarning: () => undefined }),
    options: { manyFiles: 350, honorsMaxLength: true },
    // An object put there by another tool, past the adapter.
    writeRaw: async (storage, path, data) => {
      const client = rawClient(server);
      try {
        await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${(storage as S3Storage).prefix}/${path}`, Body: data }));
      } finally {
        client.destroy();
      }
    },
  });
});
