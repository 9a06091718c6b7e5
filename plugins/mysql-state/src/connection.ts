import { realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
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

/**
 * Where a local server's socket usually is, tried when neither host nor socket is configured, and used only
 * when it passes {@link trustedSocket}. Not `/tmp/mysql.sock`: anyone can create that one, and mysql2
 * counts a Unix socket as a secure channel, over which it sends the password in cleartext when asked.
 */
export const DEFAULT_SOCKETS: readonly string[] = ['/run/mysqld/mysqld.sock', '/var/run/mysqld/mysqld.sock'];
/** Sections of an option file that MySQL and MariaDB clients read. */
const CLIENT_SECTIONS = ['client', 'client-server', 'client-mariadb'];

/**
 * Why a local user other than root could put a fake server at `socket` (and receive the password when Kiwi
 * logs in), or undefined when none could: its directory must be writable only by its owner (or root), and
 * every directory above it only by root, both as named and after symlinks (`/var/run` → `/run`). Group
 * write counts only for the root group. A world-writable directory such as `/tmp`, sticky or not, lets
 * anyone create the socket while the server is down, the very moment `service` mode waits for it to come
 * back. The socket itself need not exist.
 */
export function socketDirectoryProblem(socket: string): string | undefined {
  let real = socket;
  try {
    real = realpathSync(socket);
  } catch {
    // no socket (yet): its directory still tells who could create one
  }
  const dirs = new Set<string>();
  for (const start of [dirname(socket), dirname(real)]) {
    for (let d = start; ; d = dirname(d)) {
      dirs.add(d);
      if (dirname(d) === d) break;
    }
  }
  const ownDirs = new Set([dirname(socket), dirname(real)]);
  for (const dir of dirs) {
    let st;
    try {
      st = statSync(dir);
    } catch {
      continue; // a directory that does not exist holds no socket; one above it is checked
    }
    const othersWrite = (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0);
    if (othersWrite) return `other users can write to ${dir} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
    // The socket's own directory may belong to the server's user; every one above it must be root's.
    if (!ownDirs.has(dir) && st.uid !== 0) return `${dir} does not belong to root`;
  }
  return undefined;
}

/** True when `socket` is a socket that no local user but root and its directory's owner could have put there. */
export function trustedSocket(socket: string): boolean {
  if (process.platform === 'win32') return false;
  try {
    if (!statSync(socket).isSocket()) return false;
  } catch {
    return false;
  }
  return socketDirectoryProblem(socket) === undefined;
}

/** The first of `candidates` that exists and that no other local user could have put there. */
export function findDefaultSocket(candidates: readonly string[] = DEFAULT_SOCKETS): string | undefined {
  return candidates.find(trustedSocket);
}

/**
 * With no socket there now (the server is down: stopped by `service` mode, or the recovery of a run that
 * stopped it), the first of `candidates` whose directory exists and where no other local user could create
 * it: the server's socket once it is back. Without this, the default fell back to `localhost:3306`, where
 * any local user may listen while MySQL is down and be sent the login (with `caching_sha2_password`, the
 * password itself, encrypted under a key that listener hands out).
 */
export function defaultSocketPlace(candidates: readonly string[] = DEFAULT_SOCKETS): string | undefined {
  if (process.platform === 'win32') return undefined;
  return candidates.find((socket) => {
    try {
      if (!statSync(dirname(socket)).isDirectory()) return false;
    } catch {
      return false;
    }
    try {
      // Something else than a socket there (a file, a directory): not the server's.
      if (!statSync(socket).isSocket()) return false;
    } catch {
      // no socket yet: its directory decides
    }
    return socketDirectoryProblem(socket) === undefined;
  });
}

/**
 * Work out the connection: the plug-in's options first, then the option file (`defaultsFile`), then the
 * environment (`MYSQL_HOST`, `MYSQL_TCP_PORT`, `MYSQL_UNIX_PORT`, `MYSQL_USER`, `MYSQL_PWD`), then defaults
 * (a local socket of {@link DEFAULT_SOCKETS} if one exists where only root and its owner can write, or
 * where one would be while the server is down ({@link defaultSocketPlace}), else `localhost:3306`; the
 * login name as user). A configured socket is used as it is.
 */
export async function resolveConnection(
  options: ConnectionOptions,
  env: NodeJS.ProcessEnv = process.env,
  defaultSockets: readonly string[] = DEFAULT_SOCKETS,
): Promise<ConnectionConfig> {
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
    socket = findDefaultSocket(defaultSockets) ?? defaultSocketPlace(defaultSockets);
    if (socket === undefined) host = 'localhost';
  }
  // Like the mysql client: "localhost" without a port means the local socket, when there is one (or its
  // place, while the server is down).
  if (host === 'localhost' && port === undefined && socket === undefined) {
    socket = findDefaultSocket(defaultSockets) ?? defaultSocketPlace(defaultSockets);
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

/**
 * What to add to a failure to reach a default socket (nothing there, or nobody listening): since the
 * plug-in prefers a local socket's place to TCP, a host with a stopped local server package and a
 * server reachable only over TCP (a container's published port) ends up here, and needs `host`/`port`.
 */
export function socketHint(c: ConnectionConfig, err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (c.socket === undefined || !DEFAULT_SOCKETS.includes(c.socket) || (code !== 'ENOENT' && code !== 'ECONNREFUSED')) return '';
  return '. Nothing listens on that socket; if the server is reachable only over TCP (a container\'s published port, say), set the plug-in\'s "host" and "port" options';
}

/** An error whose message names the server and never holds the password. */
export function connectionError(what: string, err: unknown, c: ConnectionConfig): Error {
  const detail = err instanceof Error ? err.message : String(err);
  return new Error(redact(`${what} (${describeTarget(c)}): ${detail}${socketHint(c, err)}`, c));
}

/**
 * Open a connection. Over a Unix socket mysql2 sends the password in cleartext when the server asks for it
 * (`sha256_password`, a `caching_sha2_password` full authentication), as the MySQL client does: the server
 * requires it there. Its `overrideIsSecure: false` would not help against a fake server (the password then
 * goes RSA-encrypted under the key that server hands out) and breaks MySQL 8's first login after a restart
 * over the socket. What protects the password is which socket is used: see {@link trustedSocket}.
 */
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
