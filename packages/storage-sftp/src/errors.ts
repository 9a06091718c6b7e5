/**
 * Error mapping: SFTP status codes and ssh2/socket errors to {@link StorageError} kinds, and the
 * host key refusal {@link HostKeyError}.
 */
import { StorageError, type StorageErrorKind } from '@kiwi-backup/core';
import type { Conn, ConnTarget } from './connection.js';
import { userAtHost } from './options.js';

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
export const SFTP_EOF = 1;
export const SFTP_NO_SUCH_FILE = 2;
export const SFTP_PERMISSION_DENIED = 3;
export const SFTP_FAILURE = 4;
export const SFTP_NO_CONNECTION = 6;
export const SFTP_CONNECTION_LOST = 7;

const TRANSIENT_MESSAGES =
  /No response from server|Not connected|No SFTP connection|Channel (?:not open|closed)|Unexpected (?:end|close)|connection (?:lost|reset|closed)|Timed out while waiting for handshake|socket hang up|write after end|Keepalive timeout/i;

export function errCode(err: unknown): unknown {
  return err !== null && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Why opening a connection to `t` failed. */
export function connectError(
  t: ConnTarget,
  err: unknown,
  raw: (Error & { level?: string; code?: unknown }) | undefined,
  hostKey: HostKeyError | undefined,
  authExhausted: boolean,
  tried: string[],
): StorageError {
  if (hostKey) return hostKey;
  const where = userAtHost(t.r);
  const e = raw ?? (err as Error & { level?: string; code?: unknown });
  if (authExhausted || e?.level === 'client-authentication') {
    return new StorageError(
      `SFTP authentication failed for ${where} (tried: ${tried.join(', ') || 'nothing'}` +
        (t.auth.notes.length ? `; ${t.auth.notes.join('; ')}` : '') +
        ')',
      { kind: 'auth', location: t.location },
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
    text = `cannot connect to SFTP server ${where}: timed out after ${t.r.connectTimeoutMs} ms`;
  } else if (/unable to start subsystem/i.test(msg)) {
    // The account has no SFTP (a shell-only or forced-command login, a server without the subsystem):
    // asking again cannot help, so not transient (the retry layer would try for a minute).
    kind = 'config';
    text = `cannot connect to SFTP server ${where}: the server refused the SFTP subsystem (is SFTP enabled for this account? a forced command or a shell-only login refuses it)`;
  } else if (e?.level === 'protocol' || e?.level === 'handshake') {
    kind = /algorithm|negotiat/i.test(msg) ? 'config' : 'transient';
  }
  return new StorageError(text, { kind, location: t.location, cause: err });
}

/** A failed request of operation `op` on `key` (relative to `location`) on connection `c`; a lost connection is marked dead. */
export function opError(location: string, err: unknown, op: string, key: string, c: Conn): StorageError {
  if (err instanceof StorageError) return err;
  const code = errCode(err);
  const msg = errMessage(err);
  const at = `${location}/${key}`;
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

/** Whether `err` says the file does not exist (a StorageError, or a raw SFTP/fs error). */
export function isNotFound(err: unknown): boolean {
  if (err instanceof StorageError) return err.kind === 'not-found';
  if (err === null || typeof err !== 'object') return false;
  const code = errCode(err);
  // A raw ssh2 SFTP status error: numeric NO_SUCH_FILE.
  return (code === SFTP_NO_SUCH_FILE || code === 'ENOENT') && typeof (err as { message?: unknown }).message === 'string';
}
