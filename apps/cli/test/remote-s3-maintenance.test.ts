/**
 * forget, key, unlock, stats and lock waits on an s3: repository (s3rver, started by @kiwi-backup/test-servers).
 */
import { it, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import type { StorageAdapter } from '@kiwi-backup/core';
import { s3Adapter } from '@kiwi-backup/storage-s3';
import { describeWithServer, s3ServerAvailable, startS3Server, S3_SERVER_INSTALL_HINT, type S3TestServer } from '@kiwi-backup/test-servers';
import { runKiwi, tempDir, removeDir, bytes } from './helpers.js';
import { maintenanceScenario } from './maintenance-scenario.js';

describeWithServer('an S3-compatible server (s3rver): maintenance commands', s3ServerAvailable(), S3_SERVER_INSTALL_HINT, () => {
  let server: S3TestServer;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let config: string;

  beforeAll(async () => {
    server = await startS3Server();
    work = await tempDir('kiwi-cli-s3-maint-');
    await mkdir(join(work, 'src'));
    await writeFile(join(work, 'src', 'a.bin'), bytes(200_000, 7));
    config = join(work, 'config.json');
    await writeFile(config, '{}');
    env = {
      KIWI_DATA_DIR: join(work, 'data'),
      KIWI_PASSWORD: 'correct horse',
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_PROFILE: '',
      AWS_SESSION_TOKEN: '',
      AWS_CONFIG_FILE: join(work, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-aws-credentials'),
    };
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await removeDir(work);
  });

  it('forget (policy, id, dry run), prune, check subsets, repair, stats, key add/remove, a held lock (11) and unlock', async () => {
    const url = `s3:http://127.0.0.1:${server.port}/${server.bucket}/maintenance`;
    await maintenanceScenario({
      url,
      env,
      work,
      src: join(work, 'src'),
      adapters: { s3: s3Adapter as unknown as StorageAdapter },
      storageOptions: {},
      kiwi: (args, extra = {}) => runKiwi([...args, '--repo', url, '--config', config], { env: { ...env, ...extra } }),
    });
  }, 240_000);
});
