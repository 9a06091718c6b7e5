import { EXIT_CODE_MEANINGS } from '../exit-codes.js';

/** The environment variables Kiwi reads, for the top-level help, man page and docs/cli.md. */
export const ENVIRONMENT: ReadonlyArray<readonly [name: string, meaning: string]> = [
  ['KIWI_REPOSITORY', 'Repository location, when --repo is not given'],
  ['KIWI_PASSWORD', 'The repository password'],
  ['KIWI_PASSWORD_FILE', 'A file whose first line is the repository password'],
  ['KIWI_PASSWORD_COMMAND', 'A command that prints the repository password'],
  ['KIWI_DATA_DIR', 'The data directory (default repository, its password file, config.json, plugins/)'],
  ['XDG_DATA_HOME', 'Linux: the data directory is $XDG_DATA_HOME/kiwi when KIWI_DATA_DIR is not set'],
  ['KIWI_CACHE_DIR', 'Where the metadata cache of remote repositories lives (else $XDG_CACHE_HOME/kiwi, ~/.cache/kiwi)'],
  ['KIWI_SAVER_THREADS', 'backup: threads that read, chunk, compress and encrypt files (default: one per core, at most 4; 0: the main thread does it)'],
  ['TMPDIR', 'prune: where new packs are built before upload, in a kiwi-packs-<pid>-* directory (default /tmp; up to ~4 packs of disk)'],
  ['KIWI_SFTP_PASSWORD', 'SFTP: the login password (a key is better)'],
  ['KIWI_SFTP_KEY_PASSPHRASE', 'SFTP: the passphrase of the private key'],
  ['SSH_AUTH_SOCK', 'SFTP: the SSH agent to authenticate with'],
  ['AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN', 'S3: credentials (else the AWS profile chain)'],
  ['AWS_PROFILE, AWS_REGION', 'S3: the AWS profile and region'],
];

/** The exit codes with their meaning, in ascending order. */
export function exitCodes(): Array<[code: number, meaning: string]> {
  return Object.entries(EXIT_CODE_MEANINGS)
    .map(([code, meaning]) => [Number(code), meaning] as [number, string])
    .sort((a, b) => a[0] - b[0]);
}

export const SUMMARY = 'Deduplicated, compressed, encrypted backups with plug-in hooks';
