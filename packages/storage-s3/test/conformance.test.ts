import { afterAll, beforeAll } from 'vitest';
import { describeWithServer, startS3Server, type S3TestServer } from '@kiwi-backup/test-servers';
import { describeStorageConformance } from '@kiwi-backup/storage-testkit';
import { installHint, openOn, serverAvailable } from './helpers.js';

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
    open: async () => openOn(server, { multipartThreshold: 4 * 1024 * 1024, partSize: 1024 * 1024, listPageSize: 100 }),
    options: { manyFiles: 350 },
  });
});
