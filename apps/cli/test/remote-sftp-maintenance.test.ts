/**
 * forget, key, unlock, stats and lock waits on an sftp: repository (OpenSSH's sshd, started by @kiwi-backup/test-servers).
 */
import { it, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import type { StorageAdapter } from '@kiwi-backup/core';
import { sftpAdapter } from '@kiwi-backup/storage-sftp';
import { describeWithServer, sshdAvailable, startSshd, SSHD_INSTALL_HINT, type SshdServer } from '@kiwi-backup/test-servers';
import { runKiwi, tempDir, removeDir, bytes } from './helpers.js';
import { maintenanceScenario } from './maintenance-scenario.js';

describeWithServer('OpenSSH sshd: maintenance commands', sshdAvailable(), SSHD_INSTALL_HINT, () => {
  let server: SshdServer;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let config: string;
  let sftp: Record<string, unknown>;

  beforeAll(async () => {
    server = await startSshd();
    work = await tempDir('kiwi-cli-sftp-maint-');
    await mkdir(join(work, 'src'));
    await writeFile(join(work, 'src', 'a.bin'), bytes(200_000, 7));
    sftp = { privateKey: server.privateKeyPath, knownHostsFile: server.knownHostsPath, agent: false, sshConfigFile: false };
    config = join(work, 'config.json');
    await writeFile(config, JSON.stringify({ storageOptions: { sftp } }));
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_PASSWORD: 'correct horse', SSH_AUTH_SOCK: '', KIWI_SFTP_PASSWORD: '' };
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await removeDir(work);
  });

  it('forget (policy, id, dry run), prune, check subsets, repair, stats, key add/remove, a held lock (11) and unlock', async () => {
    const url = `sftp://${server.username}@127.0.0.1:${server.port}${server.root}/maintenance`;
    await maintenanceScenario({
      url,
      env,
      work,
      src: join(work, 'src'),
      adapters: { sftp: sftpAdapter as unknown as StorageAdapter },
      storageOptions: { sftp },
      kiwi: (args, extra = {}) => runKiwi([...args, '--repo', url, '--config', config], { env: { ...env, ...extra } }),
    });
  }, 240_000);
});
