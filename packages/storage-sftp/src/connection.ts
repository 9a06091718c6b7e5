/**
 * One SSH connection with its SFTP channel: connecting (handshake, host key, authentication), what
 * the server supports, and the watchdog that drops a connection that stopped answering.
 */
import SftpClient from 'ssh2-sftp-client';
import type { AnyAuthMethod, AuthenticationType, ConnectConfig, SFTPWrapper } from 'ssh2';
import { StorageError } from '@kiwi-backup/core';
import { hostVerifier, preferredHostKeyAlgorithms, type Auth } from './auth.js';
import { connectError } from './errors.js';
import { userAtHost, type Resolved } from './options.js';

/** One SSH connection with its SFTP channel, and what the server supports on it. */
export interface Conn {
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

/** Where and how to connect: the resolved options, the printable location, the credentials to try. */
export interface ConnTarget {
  r: Resolved;
  location: string;
  auth: Auth;
}

/** Connect, authenticate and open the SFTP channel; `id` names the client. */
export async function openConn(t: ConnTarget, id: number): Promise<Conn> {
  const r = t.r;
  if (t.auth.steps.length === 0) {
    throw new StorageError(
      `no SFTP credentials for ${userAtHost(r)}: no private key found (${r.keyFiles.join(', ')}), no ssh-agent (SSH_AUTH_SOCK), no password (KIWI_SFTP_PASSWORD)` +
        (t.auth.notes.length ? `; ${t.auth.notes.join('; ')}` : ''),
      { kind: 'auth', location: t.location },
    );
  }
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
  const ssh = (client as unknown as { client: { setNoDelay(on: boolean): void; destroy(): void } }).client;
  client.on('connect', () => ssh.setNoDelay(true));
  const { verify, refused } = hostVerifier(r, t.location);
  let authExhausted = false;
  const tried: string[] = [];
  let stepIndex = 0;
  const authHandler = (
    methodsLeft: AuthenticationType[] | null,
    _partial: boolean | null,
    next: (m: AnyAuthMethod | false) => void,
  ): void => {
    while (stepIndex < t.auth.steps.length) {
      const step = t.auth.steps[stepIndex++]!;
      if (methodsLeft && !methodsLeft.includes(step.method.type === 'agent' ? 'publickey' : step.method.type)) continue;
      tried.push(step.label);
      next(step.method);
      return;
    }
    authExhausted = true;
    next(false);
  };
  const prefer = preferredHostKeyAlgorithms(r);
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
  let timer: NodeJS.Timeout | undefined;
  try {
    const connecting = client.connect(config as SftpClient.ConnectOptions);
    connecting.catch(() => undefined); // abandoned when the time is up
    // ssh2's readyTimeout ends with authentication; opening the SFTP channel has no limit of its own,
    // and a login whose forced command ignores the sftp subsystem never answers it: bound it all.
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error('Timed out while waiting for the SFTP channel'), { level: 'client-timeout' })),
        r.connectTimeoutMs,
      );
    });
    sftp = await Promise.race([connecting, timedOut]);
  } catch (err) {
    client.removeListener('error', onRawError);
    markDead();
    // Not client.end(): before the SFTP channel is open it closes nothing, which left an authenticated
    // session (a refused or timed-out channel) open, keeping the process alive.
    ssh.destroy();
    throw connectError(t, err, rawError, refused(), authExhausted, tried);
  } finally {
    clearTimeout(timer);
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
    maxRead: transferLimit(lim._maxReadLen),
    maxWrite: transferLimit(lim._maxWriteLen),
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

/** Mark `c` dead and close it in the background. */
export function disposeConn(c: Conn): void {
  c.dead = true;
  if (c.watchdog) clearInterval(c.watchdog);
  void c.client.end().catch(() => undefined);
}


/**
 * 256 KiB less 1 KiB for a packet's headers (a WRITE's handle may take up to 256 bytes): what OpenSSH
 * itself advertises. ssh2 refuses any incoming SFTP packet over 256 KiB, headers included, as fatal.
 */
export const MAX_TRANSFER = 255 * 1024;

/**
 * The most bytes one READ or WRITE request carries, from what the server advertised
 * (`limits@openssh.com`; 32 KiB without it): at least 1 KiB, at most {@link MAX_TRANSFER}. A server
 * advertising 256 KiB made every large read's reply (its data and 9 bytes of headers) kill the connection.
 */
export function transferLimit(advertised: number | undefined): number {
  const n = advertised !== undefined && Number.isFinite(advertised) ? Math.floor(advertised) : 32 * 1024;
  return Math.max(1024, Math.min(n, MAX_TRANSFER));
}
