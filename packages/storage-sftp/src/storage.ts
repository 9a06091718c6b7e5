import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { posix } from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import ssh2 from 'ssh2';
import type { AnyAuthMethod, AuthenticationType, ConnectConfig, FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import {
  StorageError,
  assertValidHandle,
  handlePath,
  loadTarget,
  sourceSizeError,
  typeDir,
  type FileInfo,
  type FileType,
  type Handle,
  type LoadOptions,
  type SaveSource,
  type Storage,
  type StorageErrorKind,
} from '@kiwi-backup/core';
import {
  appendKnownHost,
  checkKnownHosts,
  findKnownHosts,
  fingerprintOf,
  hostKeyAlgorithmsFor,
  keyTypeOf,
  knownHostsName,
  normalizeFingerprint,
} from './known-hosts.js';
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
  /** Milliseconds to wait for TCP connect + SSH handshake + authentication (default 20000). */
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

/**
 * A host key was refused. `kind` is `config`: the user must act (verify and accept the key, or fix
 * the config). Its `name` stays `StorageError`, since tools (like Kiwi's CLI) map errors by name.
 */
export class HostKeyError extends StorageError {
  constructor(
    message: string,
    readonly reason: 'unknown' | 'changed' | 'revoked' | 'mismatch' | 'other-type',
    readonly fingerprint: string,
    location: string,
  ) {
    super(message, { kind: 'config', location });
  }
}

// SFTP status codes (draft-ietf-secsh-filexfer-02).
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;
const SFTP_FAILURE = 4;
const SFTP_NO_CONNECTION = 6;
const SFTP_CONNECTION_LOST = 7;

const NAME_RE = /^[A-Za-z0-9_.-]+$/;
const TMP_MARK = '~kiwi-tmp-';
/** Requests kept in flight per transfer (each up to the server's max read/write length, 255 KiB on OpenSSH). */
const PIPELINE = 16;

const TRANSIENT_MESSAGES =
  /No response from server|Not connected|No SFTP connection|Channel (?:not open|closed)|Unexpected (?:end|close)|connection (?:lost|reset|closed)|Timed out while waiting for handshake|socket hang up|write after end|Keepalive timeout/i;

interface Conn {
  id: number;
  client: SftpClient;
  sftp: SFTPWrapper;
  active: number;
  dead: boolean;
  /** Requests sent and not answered. */
  pending: number;
  lastReply: number;
  posixRename: boolean;
  fsync: boolean;
  maxRead: number;
  maxWrite: number;
  watchdog: NodeJS.Timeout | undefined;
}

interface AuthStep {
  label: string;
  method: AnyAuthMethod;
}

function errCode(err: unknown): unknown {
  return err !== null && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function uniq<T>(xs: T[]): T[] {
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

type Resolved = ReturnType<typeof resolveSftpOptions>;

/** Format the printable location: `sftp://user@host:port/abs/path` or `.../~/rel/path`. */
function formatLocation(r: Resolved): string {
  const host = r.alias.includes(':') ? `[${r.alias}]` : r.alias;
  const path = r.path.startsWith('/') ? r.path : `/~/${r.path}`;
  return `sftp://${r.username}@${host}:${r.port}${path}`;
}

/**
 * A Kiwi {@link Storage} on an SFTP server. Files live at `<path>/<handlePath(handle)>`.
 * Opening is lazy: the first call connects. See {@link SftpStorageOptions}.
 */
export function createSftpStorage(options: SftpStorageOptions): Storage {
  return new SftpStorage(resolveSftpOptions(options));
}

class SftpStorage implements Storage {
  readonly location: string;
  private readonly r: Resolved;
  private readonly authSteps: AuthStep[];
  private readonly authNotes: string[];
  private live: Conn[] = [];
  private opening = new Set<Promise<Conn>>();
  private nextId = 1;
  private closed = false;

  constructor(r: Resolved) {
    this.r = r;
    this.location = formatLocation(r);
    const { steps, notes } = this.buildAuth();
    this.authSteps = steps;
    this.authNotes = notes;
  }

  // ------------------------------------------------------------ auth & host key

  private buildAuth(): { steps: AuthStep[]; notes: string[] } {
    const r = this.r;
    const steps: AuthStep[] = [];
    const notes: string[] = [];
    if (r.agent) {
      let ok = false;
      try {
        ok = process.platform === 'win32' || statSync(r.agent).isSocket();
      } catch {
        ok = false;
      }
      if (ok) steps.push({ label: 'ssh-agent', method: { type: 'agent', username: r.username, agent: r.agent } });
      else notes.push(`ssh-agent socket ${r.agent} is not usable`);
    }
    for (const file of r.keyFiles) {
      if (!existsSync(file)) {
        if (r.keysExplicit) {
          throw new StorageError(`SFTP private key file ${file} does not exist (for ${this.location})`, {
            kind: 'config',
            location: this.location,
          });
        }
        continue;
      }
      let raw: Buffer;
      try {
        // Like restic (OpenSSH refuses outright): a key that group or others can access is used, with a warning.
        const mode = process.platform === 'win32' ? 0 : statSync(file).mode & 0o777;
        if (mode & 0o077) {
          this.r.onWarning(
            `SFTP private key ${file} can be read or changed by other users (mode 0${mode.toString(8).padStart(3, '0')}): run \`chmod 600 ${file}\``,
          );
        }
        raw = readFileSync(file);
      } catch (err) {
        throw new StorageError(`cannot read SFTP private key file ${file}: ${(err as NodeJS.ErrnoException).code ?? errMessage(err)}`, {
          kind: 'config',
          location: this.location,
        });
      }
      const parsed = ssh2.utils.parseKey(raw, r.passphrase);
      if (parsed instanceof Error) {
        // parseKey's messages describe the format problem, never the key material.
        const why = /passphrase|encrypted|decrypt/i.test(parsed.message)
          ? r.passphrase
            ? 'wrong passphrase (KIWI_SFTP_KEY_PASSPHRASE)'
            : 'it is encrypted: set KIWI_SFTP_KEY_PASSPHRASE or use ssh-agent'
          : parsed.message;
        if (r.keysExplicit) {
          throw new StorageError(`cannot use SFTP private key ${file}: ${why}`, { kind: 'auth', location: this.location });
        }
        notes.push(`key ${file} skipped: ${why}`);
        continue;
      }
      const key = Array.isArray(parsed) ? parsed[0] : parsed;
      if (!key) continue;
      steps.push({ label: `key ${file}`, method: { type: 'publickey', username: r.username, key } });
    }
    if (r.password !== undefined && r.password !== '') {
      steps.push({ label: 'password', method: { type: 'password', username: r.username, password: r.password } });
    }
    return { steps, notes };
  }

  private where(): string {
    return `${this.r.username}@${this.r.host}:${this.r.port}`;
  }

  /** Returns a verifier and a getter for why it refused. */
  private hostVerifier(): { verify: (key: Buffer) => boolean; refused: () => HostKeyError | undefined } {
    const r = this.r;
    let refusal: HostKeyError | undefined;
    const hostName = r.hostKeyAlias ?? knownHostsName(r.host, r.port);
    const verify = (key: Buffer): boolean => {
      const fp = fingerprintOf(key);
      const type = keyTypeOf(key);
      if (r.fingerprints) {
        if (r.fingerprints.includes(fp)) return true;
        refusal = new HostKeyError(
          `SFTP host key of ${r.host}:${r.port} does not match the configured fingerprint: the server offered ${type} ${fp}, expected ${r.fingerprints.join(' or ')}. ` +
            'Refusing to connect (possible man-in-the-middle attack, or the server was reinstalled).',
          'mismatch',
          fp,
          this.location,
        );
        return false;
      }
      const entries = findKnownHosts(r.knownHostsFiles, [hostName]);
      const verdict = checkKnownHosts(entries, key);
      if (verdict.ok) return true;
      const files = r.knownHostsFiles.filter((f) => existsSync(f)).join(', ') || r.knownHostsFiles[0];
      switch (verdict.reason) {
        case 'unknown':
          if (r.acceptNew) {
            try {
              appendKnownHost(r.acceptTarget, hostName, key);
            } catch (err) {
              refusal = new HostKeyError(
                `SFTP host key of ${r.host}:${r.port} (${type} ${fp}) could not be added to ${r.acceptTarget}: ${errMessage(err)}`,
                'unknown',
                fp,
                this.location,
              );
              return false;
            }
            return true;
          }
          refusal = new HostKeyError(
            `SFTP host ${hostName} is not in known_hosts (${files}); refusing to connect to an unverified server. ` +
              `It offered a key of type ${type} with fingerprint ${fp}. ` +
              `If that is the server's key (check it on the server: ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-|-sha2-nistp\d+$/g, '')}_key.pub), ` +
              `accept it once with \`ssh -p ${r.port} ${r.username}@${r.host}\`, or set the storage option hostKeyFingerprint: "${fp}", or acceptNewHostKey: true.`,
            'unknown',
            fp,
            this.location,
          );
          return false;
        case 'changed':
          refusal = new HostKeyError(
            `WARNING: THE SFTP HOST KEY OF ${hostName} HAS CHANGED (possible man-in-the-middle attack)! ` +
              `The server offered ${type} ${fp}, but ${verdict.detail} holds a different ${type} key. ` +
              'Refusing to connect. If the server really was reinstalled, verify the new fingerprint and remove the old line ' +
              `(ssh-keygen -R '${hostName}' -f ${verdict.detail?.slice(0, verdict.detail.lastIndexOf(':'))}).`,
            'changed',
            fp,
            this.location,
          );
          return false;
        case 'revoked':
          refusal = new HostKeyError(
            `SFTP host key ${type} ${fp} of ${hostName} is marked @revoked in known_hosts; refusing to connect.`,
            'revoked',
            fp,
            this.location,
          );
          return false;
        default:
          refusal = new HostKeyError(
            `SFTP host ${hostName} offered a key of type ${type} (${fp}), but known_hosts only has other key types for it (${verdict.detail}). ` +
              'Refusing to connect: verify the fingerprint and add it, or set hostKeyFingerprint.',
            'other-type',
            fp,
            this.location,
          );
          return false;
      }
    };
    return { verify, refused: () => refusal };
  }

  /** Host key algorithms to offer first: the key types known_hosts has for this host. */
  private preferredHostKeyAlgorithms(): string[] {
    if (this.r.fingerprints) return [];
    const name = this.r.hostKeyAlias ?? knownHostsName(this.r.host, this.r.port);
    const types = findKnownHosts(this.r.knownHostsFiles, [name])
      .filter((e) => e.marker === undefined)
      .map((e) => e.keyType);
    return uniq(types.flatMap(hostKeyAlgorithmsFor)).filter((a) =>
      /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|rsa-sha2-(256|512)|ssh-rsa)$/.test(a),
    );
  }

  // ------------------------------------------------------------ connections

  private async openConn(): Promise<Conn> {
    const r = this.r;
    if (this.authSteps.length === 0) {
      throw new StorageError(
        `no SFTP credentials for ${this.where()}: no private key found (${r.keyFiles.join(', ')}), no ssh-agent (SSH_AUTH_SOCK), no password (KIWI_SFTP_PASSWORD)` +
          (this.authNotes.length ? `; ${this.authNotes.join('; ')}` : ''),
        { kind: 'auth', location: this.location },
      );
    }
    const id = this.nextId++;
    const conn: Partial<Conn> & { dead: boolean } = { id, dead: false };
    const markDead = () => {
      conn.dead = true;
    };
    const client = new SftpClient(`kiwi-sftp-${id}`, { error: markDead, end: markDead, close: markDead });
    conn.client = client;
    let rawError: (Error & { level?: string; code?: unknown }) | undefined;
    const onRawError = (err: Error) => {
      rawError ??= err;
      markDead();
    };
    client.on('error', onRawError);
    // SFTP is request/response: without TCP_NODELAY, Nagle + delayed ACKs add ~40 ms per round trip.
    const ssh = (client as unknown as { client: { setNoDelay(on: boolean): void } }).client;
    client.on('connect', () => ssh.setNoDelay(true));
    const { verify, refused } = this.hostVerifier();
    let authExhausted = false;
    const tried: string[] = [];
    let stepIndex = 0;
    const authHandler = (
      methodsLeft: AuthenticationType[] | null,
      _partial: boolean | null,
      next: (m: AnyAuthMethod | false) => void,
    ): void => {
      while (stepIndex < this.authSteps.length) {
        const step = this.authSteps[stepIndex++]!;
        if (methodsLeft && !methodsLeft.includes(step.method.type === 'agent' ? 'publickey' : step.method.type)) continue;
        tried.push(step.label);
        next(step.method);
        return;
      }
      authExhausted = true;
      next(false);
    };
    const prefer = this.preferredHostKeyAlgorithms();
    const config: ConnectConfig = {
      host: r.host,
      port: r.port,
      username: r.username,
      readyTimeout: r.connectTimeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier: verify,
      authHandler: authHandler as unknown as ConnectConfig['authHandler'],
      ...(prefer.length > 0 && { algorithms: { serverHostKey: { prepend: prefer } as never } }),
    };
    let sftp: SFTPWrapper;
    try {
      sftp = await client.connect(config as SftpClient.ConnectOptions);
    } catch (err) {
      client.removeListener('error', onRawError);
      markDead();
      void client.end().catch(() => undefined);
      throw this.connectError(err, rawError, refused(), authExhausted, tried);
    }
    const ext = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
    const lim = sftp as unknown as { _maxReadLen?: number; _maxWriteLen?: number };
    Object.assign(conn, {
      sftp,
      active: 0,
      pending: 0,
      lastReply: Date.now(),
      posixRename: 'posix-rename@openssh.com' in ext,
      fsync: 'fsync@openssh.com' in ext,
      maxRead: Math.max(1024, Math.min(lim._maxReadLen ?? 32 * 1024, 256 * 1024)),
      maxWrite: Math.max(1024, Math.min(lim._maxWriteLen ?? 32 * 1024, 256 * 1024)),
    });
    const c = conn as Conn;
    sftp.on('close', markDead);
    sftp.on('error', markDead);
    // Watchdog: a connection with requests outstanding and no reply for requestTimeoutMs is dropped,
    // which fails its outstanding requests (ssh2 answers them with "No response from server").
    const period = Math.max(50, Math.min(5_000, Math.floor(r.requestTimeoutMs / 4)));
    c.watchdog = setInterval(() => {
      if (c.dead) {
        clearInterval(c.watchdog);
        return;
      }
      if (c.pending > 0 && Date.now() - c.lastReply > r.requestTimeoutMs) {
        c.dead = true;
        clearInterval(c.watchdog);
        (c.client as unknown as { client: { destroy(): void } }).client.destroy();
      }
    }, period);
    c.watchdog.unref();
    return c;
  }

  private connectError(
    err: unknown,
    raw: (Error & { level?: string; code?: unknown }) | undefined,
    hostKey: HostKeyError | undefined,
    authExhausted: boolean,
    tried: string[],
  ): StorageError {
    if (hostKey) return hostKey;
    const where = this.where();
    const e = raw ?? (err as Error & { level?: string; code?: unknown });
    if (authExhausted || e?.level === 'client-authentication') {
      return new StorageError(
        `SFTP authentication failed for ${where} (tried: ${tried.join(', ') || 'nothing'}` +
          (this.authNotes.length ? `; ${this.authNotes.join('; ')}` : '') +
          ')',
        { kind: 'auth', location: this.location },
      );
    }
    const code = errCode(e) ?? errCode(err);
    const msg = errMessage(e);
    let kind: StorageErrorKind = 'transient';
    let text = `cannot connect to SFTP server ${where}: ${msg}`;
    if (code === 'ENOTFOUND') {
      kind = 'config';
      text = `cannot connect to SFTP server ${where}: host name not found`;
    } else if (e?.level === 'client-timeout' || /timed out/i.test(msg)) {
      text = `cannot connect to SFTP server ${where}: timed out after ${this.r.connectTimeoutMs} ms`;
    } else if (e?.level === 'protocol' || e?.level === 'handshake') {
      kind = /algorithm|negotiat/i.test(msg) ? 'config' : 'transient';
    }
    return new StorageError(text, { kind, location: this.location, cause: err });
  }

  private async acquire(): Promise<Conn> {
    if (this.closed) throw new StorageError(`SFTP storage ${this.location} is closed`, { kind: 'other', location: this.location });
    if (this.live.some((c) => c.dead)) {
      for (const c of this.live) if (c.dead) this.disposeConn(c);
      this.live = this.live.filter((c) => !c.dead);
    }
    let best: Conn | undefined;
    for (const c of this.live) if (!best || c.active < best.active) best = c;
    const total = this.live.length + this.opening.size;
    if (best && (best.active === 0 || total >= this.r.connections)) return best;
    if (total < this.r.connections) {
      const p = this.openConn();
      this.opening.add(p);
      try {
        const c = await p;
        if (this.closed) {
          this.disposeConn(c);
          throw new StorageError(`SFTP storage ${this.location} is closed`, { kind: 'other', location: this.location });
        }
        this.live.push(c);
        return c;
      } finally {
        this.opening.delete(p);
      }
    }
    // No live connection yet, but one is being opened: share it.
    return await Promise.race(this.opening);
  }

  private disposeConn(c: Conn): void {
    c.dead = true;
    if (c.watchdog) clearInterval(c.watchdog);
    void c.client.end().catch(() => undefined);
  }

  private async run<T>(op: string, key: string, fn: (c: Conn) => Promise<T>): Promise<T> {
    const c = await this.acquire();
    c.active++;
    try {
      return await fn(c);
    } catch (err) {
      throw this.opError(err, op, key, c);
    } finally {
      c.active--;
    }
  }

  private opError(err: unknown, op: string, key: string, c: Conn): StorageError {
    if (err instanceof StorageError) return err;
    const code = errCode(err);
    const msg = errMessage(err);
    const at = `${this.location}/${key}`;
    let kind: StorageErrorKind = 'other';
    let what = msg;
    if (code === SFTP_NO_SUCH_FILE || code === 'ENOENT') {
      kind = 'not-found';
      what = 'no such file';
    } else if (code === SFTP_PERMISSION_DENIED || code === 'EACCES') {
      kind = 'permission';
      what = 'permission denied';
    } else if (code === SFTP_NO_CONNECTION || code === SFTP_CONNECTION_LOST || c.dead || TRANSIENT_MESSAGES.test(msg)) {
      kind = 'transient';
      what = `connection lost (${msg})`;
      c.dead = true;
    } else if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      kind = ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH'].includes(code)
        ? 'transient'
        : 'other';
    }
    return new StorageError(`SFTP ${op} ${at} failed: ${what}`, { kind, location: at, cause: err });
  }

  // ------------------------------------------------------------ request helpers

  /** Issue one SFTP request with watchdog bookkeeping. */
  private req<T>(c: Conn, send: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    // A plain error: run() wraps it into a transient StorageError naming the operation and file.
    if (c.dead) return Promise.reject(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' }));
    return new Promise<T>((resolve, reject) => {
      c.pending++;
      let settled = false;
      const cb = (err: Error | null | undefined, value?: T) => {
        if (settled) return;
        settled = true;
        c.pending--;
        c.lastReply = Date.now();
        if (err) reject(err);
        else resolve(value as T);
      };
      try {
        send(cb);
      } catch (err) {
        cb(err as Error);
      }
    });
  }

  private open(c: Conn, path: string, flags: 'r' | 'w'): Promise<Buffer> {
    return this.req<Buffer>(c, (cb) => c.sftp.open(path, flags, cb));
  }

  private closeHandle(c: Conn, h: Buffer): Promise<void> {
    return this.req<void>(c, (cb) => c.sftp.close(h, cb));
  }

  private fstat(c: Conn, h: Buffer): Promise<Stats> {
    return this.req<Stats>(c, (cb) => c.sftp.fstat(h, cb));
  }

  private unlink(c: Conn, path: string): Promise<void> {
    return this.req<void>(c, (cb) => c.sftp.unlink(path, cb));
  }

  /** Write all of `buf` at offset 0 with up to {@link PIPELINE} requests in flight. */
  /** Write `buf` at file offset `at` (default 0), several requests in flight. */
  private writeAll(c: Conn, h: Buffer, buf: Buffer, at = 0): Promise<void> {
    const n = buf.length;
    if (n === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let next = 0;
      let inflight = 0;
      let failed = false;
      const pump = () => {
        while (!failed && inflight < PIPELINE && next < n) {
          const off = next;
          const len = Math.min(c.maxWrite, n - off);
          next += len;
          inflight++;
          this.req<void>(c, (cb) => c.sftp.write(h, buf, off, len, at + off, cb)).then(
            () => {
              inflight--;
              if (failed) return;
              if (next >= n && inflight === 0) resolve();
              else pump();
            },
            (err: unknown) => {
              inflight--;
              if (!failed) {
                failed = true;
                reject(err);
              }
            },
          );
        }
      };
      pump();
    });
  }

  /**
   * Fill `out` from file offset `position`, pipelined. Rejects with `eof` set if the file ends
   * before `out` is full. Settles only once no read is in flight, so nothing writes into `out`
   * afterwards (it may be the caller's reused buffer, LoadOptions.into). The watchdog bounds the
   * wait: a dead connection fails its outstanding requests.
   */
  private readAll(c: Conn, h: Buffer, out: Buffer, position: number): Promise<void> {
    const n = out.length;
    if (n === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let next = 0;
      let inflight = 0;
      let failed = false;
      let firstError: unknown;
      const settleFailure = () => {
        if (failed && inflight === 0) reject(firstError);
      };
      const fail = (err: unknown) => {
        if (!failed) {
          failed = true;
          firstError = err;
        }
        settleFailure();
      };
      const readChunk = (off: number, len: number) => {
        inflight++;
        this.req<number>(c, (cb) =>
          c.sftp.read(h, out, off, len, position + off, (err, bytesRead) => cb(err, bytesRead)),
        ).then(
          (got) => {
            inflight--;
            if (failed) {
              settleFailure();
              return;
            }
            if (!got) {
              fail(Object.assign(new Error('end of file'), { eof: true }));
              return;
            }
            if (got < len) readChunk(off + got, len - got); // short read: ask for the rest
            else if (next >= n && inflight === 0) resolve();
            else pump();
          },
          (err: unknown) => {
            inflight--;
            fail(err);
          },
        );
      };
      const pump = () => {
        while (!failed && inflight < PIPELINE && next < n) {
          const off = next;
          const len = Math.min(c.maxRead, n - off);
          next += len;
          readChunk(off, len);
        }
      };
      pump();
    });
  }

  /** mkdir -p over SFTP. An existing directory is fine. */
  private async mkdirs(c: Conn, dir: string): Promise<void> {
    if (dir === '' || dir === '.' || dir === '/') return;
    try {
      await this.req<void>(c, (cb) => c.sftp.mkdir(dir, cb));
      return;
    } catch (err) {
      const code = errCode(err);
      if (code === SFTP_NO_SUCH_FILE) {
        await this.mkdirs(c, posix.dirname(dir));
        try {
          await this.req<void>(c, (cb) => c.sftp.mkdir(dir, cb));
          return;
        } catch (err2) {
          err = err2;
        }
      }
      // OpenSSH answers FAILURE for "already exists": check it is a directory.
      let st: Stats | undefined;
      try {
        st = await this.req<Stats>(c, (cb) => c.sftp.stat(dir, cb));
      } catch {
        st = undefined;
      }
      if (st?.isDirectory()) return;
      throw err;
    }
  }

  private full(rel: string): string {
    return this.r.path === '' ? rel : posix.join(this.r.path, rel);
  }

  // ------------------------------------------------------------ Storage

  async create(): Promise<void> {
    await this.run('create', '', async (c) => {
      await this.mkdirs(c, this.r.path);
      const dirs = ['keys', 'locks', 'snapshots', 'index', 'data'];
      await Promise.all(dirs.map((d) => this.mkdirs(c, this.full(d))));
      const subs: string[] = [];
      for (let i = 0; i < 256; i++) subs.push(this.full(`data/${i.toString(16).padStart(2, '0')}`));
      await Promise.all(subs.map((d) => this.mkdirs(c, d)));
    });
  }

  async save(handle: Handle, data: Uint8Array): Promise<void> {
    assertValidHandle(handle);
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await this.saveWith(handle, buf.length, async (c, h) => {
      await this.writeAll(c, h, buf);
    });
  }

  /** Writes the source's chunks as they come, each pipelined like `save`'s buffer; a new attempt opens the source again. */
  async saveFrom(handle: Handle, source: SaveSource): Promise<void> {
    assertValidHandle(handle);
    const where = handlePath(handle);
    const size = source.size;
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`save ${where}: the source's size must be a non-negative integer, got ${String(size)}`);
    await this.saveWith(handle, size, async (c, h) => {
      let written = 0;
      for await (const chunk of source.open()) {
        if (written + chunk.byteLength > size) throw sourceSizeError(where, size, `more than ${size}`);
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        await this.writeAll(c, h, buf, written);
        written += buf.length;
      }
      if (written !== size) throw sourceSizeError(where, size, String(written));
    });
  }

  /**
   * Write a temporary file beside the target with `write`, check the server holds `expected` bytes,
   * then rename it into place (atomically where the server has posix-rename).
   */
  private async saveWith(handle: Handle, expected: number, write: (c: Conn, h: Buffer) => Promise<void>): Promise<void> {
    const rel = handlePath(handle);
    const path = this.full(rel);
    const dir = posix.dirname(path);
    const tmp = `${path}${TMP_MARK}${randomBytes(6).toString('hex')}`;
    await this.run('save', rel, async (c) => {
      let h: Buffer;
      try {
        h = await this.open(c, tmp, 'w');
      } catch (err) {
        // Parent directory missing (repository not create()d, or a data/xx dir removed): create it, once.
        if (errCode(err) !== SFTP_NO_SUCH_FILE) throw err;
        await this.mkdirs(c, dir);
        h = await this.open(c, tmp, 'w');
      }
      try {
        await write(c, h);
        const st = await this.fstat(c, h);
        if (st.size !== expected) {
          throw new StorageError(
            `SFTP save ${this.location}/${rel}: the server stored ${st.size} bytes, expected ${expected}`,
            { kind: 'integrity', location: `${this.location}/${rel}` },
          );
        }
        if (this.r.fsync && c.fsync) await this.req<void>(c, (cb) => c.sftp.ext_openssh_fsync(h, cb));
        await this.closeHandle(c, h);
      } catch (err) {
        if (!c.dead) {
          await this.closeHandle(c, h).catch(() => undefined);
          await this.unlink(c, tmp).catch(() => undefined);
        }
        throw err;
      }
      try {
        if (c.posixRename) {
          await this.req<void>(c, (cb) => c.sftp.ext_openssh_rename(tmp, path, cb));
        } else {
          try {
            await this.req<void>(c, (cb) => c.sftp.rename(tmp, path, cb));
          } catch (err) {
            // SFTPv3 rename refuses to overwrite: remove the old file, then rename (not atomic on such servers).
            if (errCode(err) !== SFTP_FAILURE) throw err;
            await this.unlink(c, path).catch(() => undefined);
            await this.req<void>(c, (cb) => c.sftp.rename(tmp, path, cb));
          }
        }
      } catch (err) {
        if (!c.dead) await this.unlink(c, tmp).catch(() => undefined);
        throw err;
      }
    });
  }

  async load(handle: Handle, options: LoadOptions = {}): Promise<Buffer> {
    assertValidHandle(handle);
    const rel = handlePath(handle);
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset} for ${rel}`);
    if (options.length !== undefined && (!Number.isSafeInteger(options.length) || options.length < 0)) {
      throw new RangeError(`invalid length ${options.length} for ${rel}`);
    }
    return await this.run('load', rel, async (c) => {
      const h = await this.open(c, this.full(rel), 'r');
      try {
        let length = options.length;
        if (length === undefined) {
          const size = (await this.fstat(c, h)).size;
          if (offset > size) throw this.rangeError(rel, offset, undefined, size);
          length = size - offset;
        }
        // Read into the caller's buffer when it passed a big enough `into` (LoadOptions.into).
        const out = loadTarget(options) ?? Buffer.allocUnsafe(length);
        try {
          await this.readAll(c, h, out, offset);
        } catch (err) {
          if ((err as { eof?: boolean }).eof) {
            const size = (await this.fstat(c, h).catch(() => undefined))?.size;
            throw this.rangeError(rel, offset, length, size);
          }
          throw err;
        }
        return out;
      } finally {
        if (!c.dead) void this.closeHandle(c, h).catch(() => undefined);
      }
    });
  }

  private rangeError(rel: string, offset: number, length: number | undefined, size: number | undefined): StorageError {
    const range = length === undefined ? `offset ${offset}` : `bytes ${offset}..${offset + length}`;
    return new StorageError(
      `SFTP load ${this.location}/${rel}: ${range} is past the end of the file${size === undefined ? '' : ` (${size} bytes)`}`,
      { kind: 'other', location: `${this.location}/${rel}` },
    );
  }

  async stat(handle: Handle): Promise<FileInfo> {
    assertValidHandle(handle);
    const rel = handlePath(handle);
    return await this.run('stat', rel, async (c) => {
      const st = await this.req<Stats>(c, (cb) => c.sftp.stat(this.full(rel), cb));
      return { name: handle.type === 'config' ? 'config' : handle.name, size: st.size };
    });
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    if (type === 'config') {
      try {
        yield await this.stat({ type: 'config', name: 'config' });
      } catch (err) {
        if (!this.isNotFound(err)) throw err;
      }
      return;
    }
    const dirRel = typeDir(type);
    const top = await this.readdir(dirRel);
    if (type !== 'data') {
      for (const e of top) if (e.attrs.isFile() && NAME_RE.test(e.filename)) yield { name: e.filename, size: e.attrs.size };
      return;
    }
    const subs = top.filter((e) => e.attrs.isDirectory() && /^[0-9a-f]{2}$/.test(e.filename)).map((e) => e.filename);
    // Read a few subdirectories ahead while the caller consumes the current one.
    const ahead = 4;
    const pending: Array<Promise<FileEntryWithStats[]>> = [];
    let i = 0;
    const fill = () => {
      while (pending.length < ahead && i < subs.length) {
        const p = this.readdir(`${dirRel}/${subs[i++]}`);
        p.catch(() => undefined); // handled when awaited
        pending.push(p);
      }
    };
    fill();
    while (pending.length > 0) {
      const entries = await pending.shift()!;
      fill();
      for (const e of entries) if (e.attrs.isFile() && NAME_RE.test(e.filename)) yield { name: e.filename, size: e.attrs.size };
    }
  }

  /** All entries of a directory (relative to the repository); a missing directory is empty. */
  private async readdir(rel: string): Promise<FileEntryWithStats[]> {
    try {
      return await this.run('list', rel, (c) =>
        this.req<FileEntryWithStats[]>(c, (cb) => c.sftp.readdir(this.full(rel), cb as never)),
      );
    } catch (err) {
      if (this.isNotFound(err)) return [];
      throw err;
    }
  }

  async remove(handle: Handle): Promise<void> {
    assertValidHandle(handle);
    const rel = handlePath(handle);
    await this.run('remove', rel, (c) => this.unlink(c, this.full(rel)));
  }

  isNotFound(err: unknown): boolean {
    if (err instanceof StorageError) return err.kind === 'not-found';
    if (err === null || typeof err !== 'object') return false;
    const code = errCode(err);
    // A raw ssh2 SFTP status error: numeric NO_SUCH_FILE.
    return (code === SFTP_NO_SUCH_FILE || code === 'ENOENT') && typeof (err as { message?: unknown }).message === 'string';
  }

  async close(): Promise<void> {
    this.closed = true;
    const conns = [...this.live];
    this.live = [];
    const opening = [...this.opening];
    await Promise.all(
      conns.map(async (c) => {
        if (c.watchdog) clearInterval(c.watchdog);
        c.dead = true;
        await c.client.end().catch(() => undefined);
      }),
    );
    // Connections still being opened are disposed by acquire() when they arrive.
    await Promise.allSettled(opening);
  }
}
