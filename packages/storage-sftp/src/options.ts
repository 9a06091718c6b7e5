/**
 * The storage options: {@link SftpStorageOptions}, and how they combine with `~/.ssh/config` and env
 * into what the connections need ({@link resolveSftpOptions}).
 */
import { homedir, userInfo } from 'node:os';
import { posix } from 'node:path';
import { normalizeFingerprint } from './known-hosts.js';
import { expandTilde, readSshConfig, type SshHostConfig } from './ssh-config.js';
import { normalizePath } from './url.js';

/** Options of {@link createSftpStorage}. Secrets (password, passphrase) belong in options or env, never in the URL. */
export interface SftpStorageOptions {
  /** Host name, IP address, or a `Host` alias from `~/.ssh/config`. */
  host: string;
  /** Repository directory on the server: absolute, or relative to the login directory. */
  path: string;
  /** TCP port (default: `Port` from ssh config, else 22). */
  port?: number;
  /** Login name (default: `User` from ssh config, else the local user name). */
  username?: string;
  /**
   * Private key file(s) to try (default: `IdentityFile` from ssh config, else
   * `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa`, `~/.ssh/id_rsa` that exist).
   */
  privateKey?: string | string[];
  /** Passphrase of an encrypted private key (default: env `KIWI_SFTP_KEY_PASSPHRASE`). */
  passphrase?: string;
  /**
   * ssh-agent: a socket path, `true` for `SSH_AUTH_SOCK` (the default when it is set), `false` to not use it.
   */
  agent?: string | boolean;
  /** Password authentication (default: env `KIWI_SFTP_PASSWORD`). Prefer keys. */
  password?: string;
  /**
   * known_hosts file(s) to verify the host key against (default: `UserKnownHostsFile` from ssh
   * config, else `~/.ssh/known_hosts` and `~/.ssh/known_hosts2`, plus `/etc/ssh/ssh_known_hosts`).
   */
  knownHostsFile?: string | string[];
  /**
   * Accept only a host key with this fingerprint (`SHA256:...` as `ssh-keygen -lf` prints it).
   * When set, known_hosts files are not consulted.
   */
  hostKeyFingerprint?: string | string[];
  /**
   * Accept a host key that is not in known_hosts yet and append it to the (first) known_hosts
   * file. A CHANGED key is still refused. Also enabled by `StrictHostKeyChecking accept-new` in
   * ssh config. Default false.
   */
  acceptNewHostKey?: boolean;
  /** Maximum number of SSH connections used in parallel (default 2). */
  connections?: number;
  /** Milliseconds to wait for TCP connect + SSH handshake + authentication + the SFTP channel (default 20000). */
  connectTimeoutMs?: number;
  /**
   * Milliseconds without any reply while requests are outstanding before the connection is
   * considered dead and dropped (default 60000). The failed call rejects as transient.
   */
  requestTimeoutMs?: number;
  /** Ask the server to fsync each file before it is renamed into place (default true; needs OpenSSH's fsync extension). */
  fsync?: boolean;
  /** ssh config file to read (default `~/.ssh/config`; `false` to read none). */
  sshConfigFile?: string | false;
  /** Environment for `SSH_AUTH_SOCK`, `KIWI_SFTP_PASSWORD`, `KIWI_SFTP_KEY_PASSPHRASE` (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /**
   * Told about things that work but should be fixed (a private key that other users can read).
   * Default: `process.emitWarning`.
   */
  onWarning?: (message: string) => void;
}

export function uniq<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/**
 * Resolve options + `~/.ssh/config` into what a connection needs. Exported for tests.
 * @internal
 */
export function resolveSftpOptions(options: SftpStorageOptions) {
  const env = options.env ?? process.env;
  const home = homedir();
  const cfg: SshHostConfig =
    options.sshConfigFile === false ? { identityFiles: [] } : readSshConfig(options.host, { ...(options.sshConfigFile && { file: options.sshConfigFile }), home });
  const host = cfg.hostName ?? options.host;
  const port = options.port ?? cfg.port ?? 22;
  const username = options.username ?? cfg.user ?? userInfo().username;
  const knownHostsFiles = options.knownHostsFile
    ? ([] as string[]).concat(options.knownHostsFile).map((f) => expandTilde(f, home))
    : uniq([
        ...(cfg.userKnownHostsFiles ?? [posix.join(home, '.ssh', 'known_hosts'), posix.join(home, '.ssh', 'known_hosts2')]),
        '/etc/ssh/ssh_known_hosts',
        '/etc/ssh/ssh_known_hosts2',
      ]);
  // Where an accepted new key is written: the first user file, never the system-wide ones.
  const acceptTarget = options.knownHostsFile
    ? expandTilde(([] as string[]).concat(options.knownHostsFile)[0]!, home)
    : (cfg.userKnownHostsFiles?.[0] ?? posix.join(home, '.ssh', 'known_hosts'));
  const explicitKeys = options.privateKey !== undefined ? ([] as string[]).concat(options.privateKey) : undefined;
  const keyFiles = (explicitKeys ?? (cfg.identityFiles.length > 0 ? cfg.identityFiles : ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'])).map(
    (f) => expandTilde(f, home),
  );
  let agent: string | undefined;
  if (options.agent === undefined || options.agent === true) agent = env.SSH_AUTH_SOCK || undefined;
  else if (typeof options.agent === 'string') agent = options.agent;
  if (cfg.identitiesOnly && options.agent === undefined) agent = undefined;
  return {
    host,
    alias: options.host,
    port,
    username,
    path: normalizePath(options.path),
    knownHostsFiles,
    acceptTarget,
    hostKeyAlias: cfg.hostKeyAlias,
    fingerprints: options.hostKeyFingerprint
      ? ([] as string[]).concat(options.hostKeyFingerprint).map(normalizeFingerprint)
      : undefined,
    acceptNew: options.acceptNewHostKey ?? cfg.strictHostKeyChecking === 'accept-new',
    keyFiles,
    keysExplicit: explicitKeys !== undefined,
    passphrase: options.passphrase ?? env.KIWI_SFTP_KEY_PASSPHRASE,
    agent,
    password: options.password ?? env.KIWI_SFTP_PASSWORD,
    connections: Math.max(1, Math.floor(options.connections ?? 2)),
    connectTimeoutMs: options.connectTimeoutMs ?? (cfg.connectTimeoutSeconds ? cfg.connectTimeoutSeconds * 1000 : 20_000),
    requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
    fsync: options.fsync ?? true,
    onWarning: options.onWarning ?? ((message: string) => process.emitWarning(message, 'KiwiWarning')),
  };
}

export type Resolved = ReturnType<typeof resolveSftpOptions>;

/** Format the printable location: `sftp://user@host:port/abs/path` or `.../~/rel/path`. */
export function formatLocation(r: Resolved): string {
  const host = r.alias.includes(':') ? `[${r.alias}]` : r.alias;
  const path = r.path.startsWith('/') ? r.path : `/~/${r.path}`;
  return `sftp://${r.username}@${host}:${r.port}${path}`;
}

/** `user@host:port`, as connection errors name the server. */
export function userAtHost(r: Resolved): string {
  return `${r.username}@${r.host}:${r.port}`;
}
