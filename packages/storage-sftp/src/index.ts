/**
 * `@kiwi-backup/storage-sftp`: Kiwi repositories on an SSH server, over SFTP.
 *
 * Repository URLs:
 * - `sftp:[user@]host:/abs/path` or `sftp:[user@]host:rel/path` (relative to the login directory);
 * - `sftp://[user@]host[:port]/abs/path` (`//abs/path` as restic writes it is the same; `/~/rel` is relative).
 *
 * `host` may be a `Host` alias from `~/.ssh/config` (HostName, User, Port, IdentityFile,
 * UserKnownHostsFile, StrictHostKeyChecking accept-new are honoured). Host keys are always verified
 * against known_hosts or a configured fingerprint.
 */
import { StorageError, defineStorageAdapter, type Storage } from '@kiwi-backup/core';
import type { SftpStorageOptions } from './options.js';
import { createSftpStorage } from './storage.js';
import { parseSftpUrl } from './url.js';

export { createSftpStorage } from './storage.js';
export { HostKeyError } from './errors.js';
export type { SftpStorageOptions } from './options.js';
export { parseSftpUrl, type SftpUrl } from './url.js';
export { fingerprintOf } from './known-hosts.js';
export { readSshConfig, type SshHostConfig } from './ssh-config.js';

/** Options accepted from the config file (`storageOptions.sftp`): everything but host and path, which come from the URL. */
export type SftpAdapterOptions = Partial<Omit<SftpStorageOptions, 'host' | 'path'>>;

const KNOWN_OPTIONS = new Set([
  'port',
  'username',
  'privateKey',
  'passphrase',
  'agent',
  'password',
  'knownHostsFile',
  'hostKeyFingerprint',
  'acceptNewHostKey',
  'connections',
  'connectTimeoutMs',
  'requestTimeoutMs',
  'fsync',
  'sshConfigFile',
  'onWarning',
]);

/**
 * The `sftp:` storage adapter. The URL's user and port win over `options`; secrets come from
 * `options` or env (`KIWI_SFTP_PASSWORD`, `KIWI_SFTP_KEY_PASSPHRASE`, `SSH_AUTH_SOCK`).
 */
export const sftpAdapter = defineStorageAdapter<SftpAdapterOptions>({
  schemes: ['sftp'],
  open(url: string, options: SftpAdapterOptions = {}, env: NodeJS.ProcessEnv = process.env): Storage {
    for (const k of Object.keys(options ?? {})) {
      if (!KNOWN_OPTIONS.has(k)) {
        throw new StorageError(`unknown SFTP storage option ${JSON.stringify(k)} (known: ${[...KNOWN_OPTIONS].join(', ')})`, {
          kind: 'config',
        });
      }
    }
    const u = parseSftpUrl(url);
    return createSftpStorage({
      ...options,
      env,
      host: u.host,
      path: u.path,
      ...(u.username !== undefined && { username: u.username }),
      ...(u.port !== undefined && { port: u.port }),
    });
  },
});

export { sftpAdapter as adapter };
export default sftpAdapter;
