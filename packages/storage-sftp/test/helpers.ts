import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { StorageError } from '@kiwi-backup/core';
import { SSHD_INSTALL_HINT, sshdAvailable, startSshd, type SshdServer } from '@kiwi-backup/test-servers';
import { createSftpStorage, type SftpStorageOptions } from '../src/index.js';

export const haveSshd = sshdAvailable();
export { SSHD_INSTALL_HINT };

/** Start one sshd for the test file (in beforeAll) and stop it afterwards. */
export function useSshd(): () => SshdServer {
  let server: SshdServer | undefined;
  beforeAll(async () => {
    if (haveSshd) server = await startSshd();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return () => {
    if (!server) throw new Error('sshd not started');
    return server;
  };
}

let counter = 0;

/** Options for a storage on `server` in a fresh directory, isolated from the user's ~/.ssh. */
export function sftpOptions(server: SshdServer, extra: Partial<SftpStorageOptions> = {}): SftpStorageOptions {
  return {
    host: server.host,
    port: server.port,
    username: server.username,
    privateKey: server.privateKeyPath,
    knownHostsFile: server.knownHostsPath,
    agent: false,
    sshConfigFile: false,
    path: join(server.root, `repo-${process.pid}-${++counter}`),
    env: {},
    ...extra,
  };
}

export function openSftp(server: SshdServer, extra: Partial<SftpStorageOptions> = {}) {
  const options = sftpOptions(server, extra);
  return { storage: createSftpStorage(options), options };
}

/** Remove a repository directory (the server runs on this machine). */
export async function removeRepo(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** The StorageError `p` rejects with (fails the test when it resolves or rejects with something else). */
export async function rejection(p: Promise<unknown>): Promise<StorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    return err as StorageError;
  }
  throw new Error('expected a rejection');
}

