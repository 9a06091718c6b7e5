import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import mysql from 'mysql2/promise';
import { readOptionFile } from './option-file.js';

/** Where and as whom to connect. The password never appears in messages (see {@link redact}). */
export interface ConnectionConfig {
  host?: string;
  port?: number;
  socket?: string;
  user: string;
  password?: string;
  /** The option file the settings were read from, if any (also handed to the dump tool). */
  defaultsFile?: string;
}

/** Connection settings as the plug-in's options give them. */
export interface ConnectionOptions {
  host?: string;
  port?: number;
  socket?: string;
  user?: string;
  password?: string;
  defaultsFile?: string;
}

/** Where a local server's socket usually is, tried when neither host nor socket is configured. */
const DEFAULT_SOCKETS = ['/run/mysqld/mysqld.sock', '/var/run/mysqld/mysqld.sock', '/tmp/mysql.sock'];
/** Sections of an option file that MySQL and MariaDB clients read. */
const CLIENT_SECTIONS = ['client', 'client-server', 'client-mariadb'];

/**
 * Work out the connection: the plug-in's options first, then the option file (`defaultsFile`), then the
 * environment (`MYSQL_HOST`, `MYSQL_TCP_PORT`, `MYSQL_UNIX_PORT`, `MYSQL_USER`, `MYSQL_PWD`), then defaults
 * (a local socket if one exists, else `localhost:3306`; the login name as user).
 */
export async function resolveConnection(options: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): Promise<ConnectionConfig> {
  const file: Record<string, string> = {};
  if (options.defaultsFile) {
    const sections = await readOptionFile(options.defaultsFile, (p) => readFile(p, 'utf8'));
    for (const name of CLIENT_SECTIONS) Object.assign(file, sections[name]);
  }
  const pick = (key: 'host' | 'socket' | 'user' | 'password', envName: string): string | undefined =>
    options[key] ?? file[key] ?? (env[envName] || undefined);

  const portText = options.port ?? file.port ?? (env.MYSQL_TCP_PORT || undefined);
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`mysql-state: invalid port ${JSON.stringify(portText)}`);
  }
  let host = pick('host', 'MYSQL_HOST');
  let socket = pick('socket', 'MYSQL_UNIX_PORT');
  if (host === undefined && socket === undefined && port === undefined) {
    socket = DEFAULT_SOCKETS.find((s) => existsSync(s));
    if (socket === undefined) host = 'localhost';
  }
  // Like the mysql client: "localhost" without a port means the local socket, when there is one.
  if (host === 'localhost' && port === undefined && socket === undefined) {
    socket = DEFAULT_SOCKETS.find((s) => existsSync(s));
    if (socket !== undefined) host = undefined;
  }
  const password = pick('password', 'MYSQL_PWD');
  return {
    ...(host !== undefined ? { host } : {}),
    ...(port !== undefined || socket === undefined ? { port: port ?? 3306 } : {}),
    ...(socket !== undefined ? { socket } : {}),
    user: pick('user', 'MYSQL_USER') ?? userInfo().username,
    ...(password !== undefined ? { password } : {}),
    ...(options.defaultsFile ? { defaultsFile: options.defaultsFile } : {}),
  };
}

/** "socket /run/mysqld/mysqld.sock as user root" or "db.example:3306 as user backup": for messages. */
export function describeTarget(c: ConnectionConfig): string {
  const where = c.socket !== undefined ? `socket ${c.socket}` : `${c.host ?? 'localhost'}:${c.port ?? 3306}`;
  return `${where} as user ${c.user}`;
}

/** Replace the password wherever it occurs in a message. */
export function redact(text: string, c: Pick<ConnectionConfig, 'password'>): string {
  return c.password ? text.split(c.password).join('***') : text;
}

/** An error whose message names the server and never holds the password. */
export function connectionError(what: string, err: unknown, c: ConnectionConfig): Error {
  const detail = err instanceof Error ? err.message : String(err);
  return new Error(redact(`${what} (${describeTarget(c)}): ${detail}`, c));
}

export function connect(c: ConnectionConfig, connectTimeoutMs: number): Promise<mysql.Connection> {
  return mysql.createConnection({
    ...(c.socket !== undefined ? { socketPath: c.socket } : { host: c.host ?? 'localhost', port: c.port ?? 3306 }),
    user: c.user,
    ...(c.password !== undefined ? { password: c.password } : {}),
    connectTimeout: connectTimeoutMs,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
}

/** Network-level failures: the server is not there (as opposed to answering with an error). */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ENOENT', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT',
]);

export type Probe = { up: true; version?: string; loginError?: Error } | { up: false; error: Error };

/**
 * Does the server answer? A server that answers with an error (wrong password, too many connections)
 * is up: `service` mode only needs to know it runs, while `lock`/`dump` then fail on `loginError`.
 */
export async function probe(c: ConnectionConfig, connectTimeoutMs: number): Promise<Probe> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await connect(c, connectTimeoutMs);
    const [rows] = await conn.query('SELECT VERSION() AS version');
    return { up: true, version: String((rows as Array<{ version: unknown }>)[0]?.version) };
  } catch (err) {
    const e = err as Error & { code?: string; errno?: number; sqlState?: string };
    if (e.code !== undefined && UNREACHABLE_CODES.has(e.code)) return { up: false, error: e };
    // MariaDB answers "shutdown in progress" / "server is starting" while it changes state.
    if (e.errno === 1053 || e.errno === 1077 || e.errno === 2013) return { up: false, error: e };
    if (e.sqlState !== undefined || e.errno !== undefined) return { up: true, loginError: e };
    return { up: false, error: e };
  } finally {
    conn?.destroy();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll until the server is up (or down, with `want: false`); returns the last probe. */
export async function waitFor(
  c: ConnectionConfig,
  want: boolean,
  timeoutMs: number,
  intervalMs = 250,
): Promise<{ ok: boolean; last: Probe }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await probe(c, Math.min(5_000, Math.max(500, deadline - Date.now())));
    if (last.up === want) return { ok: true, last };
    if (Date.now() >= deadline) return { ok: false, last };
    await sleep(intervalMs);
  }
}

/** Compare MariaDB/MySQL version strings like `10.11.6-MariaDB-…` against `major.minor.patch`. */
export function versionAtLeast(version: string, wanted: [number, number, number]): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const have = [Number(m[1]), Number(m[2]), Number(m[3])];
  for (let i = 0; i < 3; i++) {
    if (have[i]! !== wanted[i]!) return have[i]! > wanted[i]!;
  }
  return true;
}
