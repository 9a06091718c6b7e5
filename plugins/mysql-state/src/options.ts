import type { CommandSpec } from './command.js';
import type { ConnectionOptions } from './connection.js';
import { DEFAULT_DUMP_ARGS } from './dump.js';
import type { LockMethod } from './lock.js';

export type Mode = 'service' | 'lock' | 'dump';

/** The plug-in's options (`{ "name": "mysql-state", "options": { … } }` in the config). */
export interface MysqlStateOptions extends ConnectionOptions {
  mode: Mode;
  /** `dump`: the database to dump (or use `databases`). Default: every database except the system ones. */
  database?: string;
  /** `dump`: the databases to dump. */
  databases?: string[];
  /** How long to wait for a connection: ms or `"10s"`. Default 10 s. */
  connectTimeout?: number | string;
  /** The server does not answer at backup start: `abort` the backup (default) or `continue` without this plug-in. */
  onUnreachable?: 'abort' | 'continue';
  /**
   * `service`: the service's name (systemd unit or init script). Default: the first of `mariadb` (Debian,
   * Ubuntu), `mysql`, `mysqld` that exists on this machine.
   */
  service?: string;
  /** `service`: stop command, argv array or shell string. Default `systemctl stop <service>` (or `service <service> stop`). */
  stopCommand?: CommandSpec;
  /** `service`: start command. Default `systemctl start <service>` (or `service <service> start`). */
  startCommand?: CommandSpec;
  /**
   * `service`: the server's pid file, to wait for its process to exit after the stop command. Default: the
   * server's own `@@pid_file` (when the login works), else `/run/mysqld/mysqld.pid`.
   */
  pidFile?: string;
  /** `service`: kill a stop/start command that runs longer than this. Default 2 minutes. */
  commandTimeout?: number | string;
  /** `service`: how long to wait for the server to go down after stop, and to answer after start. Default 2 minutes. */
  waitTimeout?: number | string;
  /** `lock`: `auto` (default: BACKUP STAGE on MariaDB ≥ 10.4, else FLUSH TABLES WITH READ LOCK), or either one. */
  lockMethod?: 'auto' | LockMethod;
  /** `lock`: give up taking the lock after this long (lock_wait_timeout). Default 60 s. */
  lockTimeout?: number | string;
  /** `lock`: ping the lock's connection this often, to notice if it (and so the lock) is lost. Default 10 s. */
  keepAliveInterval?: number | string;
  /** `dump`: the dump tool. Default: `mariadb-dump`, else `mysqldump`, from the PATH. */
  dumpCommand?: string;
  /** `dump`: the tool's arguments, replacing {@link DEFAULT_DUMP_ARGS} (connection settings are added by the plug-in). */
  dumpArgs?: string[];
  /** `dump`: folder of the dump files in the snapshot. Default `mysql`. */
  dumpDir?: string;
}

export interface Settings {
  mode: Mode;
  connection: ConnectionOptions;
  databases: string[] | undefined;
  connectTimeoutMs: number;
  onUnreachable: 'abort' | 'continue';
  /** Undefined: detected on first use ({@link detectServiceCommands}). */
  stopCommand: CommandSpec | undefined;
  startCommand: CommandSpec | undefined;
  service: string | undefined;
  pidFile: string | undefined;
  commandTimeoutMs: number;
  waitTimeoutMs: number;
  lockMethod: 'auto' | LockMethod;
  lockTimeoutMs: number;
  keepAliveMs: number;
  dumpCommand: string | undefined;
  dumpArgs: readonly string[];
  dumpDir: string;
}

export function parseOptions(o: Record<string, unknown>): Settings {
  const name = 'mysql-state';
  const known = new Set([
    'mode', 'host', 'port', 'socket', 'user', 'password', 'defaultsFile', 'database', 'databases', 'connectTimeout',
    'onUnreachable', 'service', 'stopCommand', 'startCommand', 'pidFile', 'commandTimeout', 'waitTimeout', 'lockMethod', 'lockTimeout',
    'keepAliveInterval', 'dumpCommand', 'dumpArgs', 'dumpDir',
  ]);
  for (const key of Object.keys(o)) {
    if (!known.has(key)) throw new Error(`${name}: unknown option "${key}" (known: ${[...known].join(', ')})`);
  }
  const oneOf = <T extends string>(key: string, values: readonly T[], fallback?: T): T => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'string' || !values.includes(v as T)) {
      throw new Error(`${name}: option "${key}" must be one of ${values.map((x) => `"${x}"`).join(', ')}`);
    }
    return v as T;
  };
  const str = (key: string): string | undefined => {
    const v = o[key];
    if (v !== undefined && (typeof v !== 'string' || v === '')) throw new Error(`${name}: option "${key}" must be a non-empty string`);
    return v as string | undefined;
  };
  const strings = (key: string): string[] | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
      throw new Error(`${name}: option "${key}" must be an array of non-empty strings`);
    }
    return v as string[];
  };
  const command = (key: string): CommandSpec | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v === 'string' && v.trim() !== '') return v;
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) return v as string[];
    throw new Error(`${name}: option "${key}" must be a shell command string or an argv array`);
  };
  const port = o.port;
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535)) {
    throw new Error(`${name}: option "port" must be a TCP port number`);
  }
  const database = str('database');
  const databases = strings('databases');
  if (database !== undefined && databases !== undefined) throw new Error(`${name}: give "database" or "databases", not both`);
  const list = databases ?? (database !== undefined ? [database] : undefined);
  for (const d of list ?? []) {
    if (d.startsWith('-') || d.includes('/')) throw new Error(`${name}: invalid database name ${JSON.stringify(d)}`);
  }
  const password = o.password;
  if (password !== undefined && typeof password !== 'string') throw new Error(`${name}: option "password" must be a string`);
  const connection: ConnectionOptions = {};
  for (const key of ['host', 'socket', 'user', 'defaultsFile'] as const) {
    const v = str(key);
    if (v !== undefined) connection[key] = v;
  }
  if (port !== undefined) connection.port = port as number;
  if (password !== undefined) connection.password = password;
  const dumpDir = str('dumpDir') ?? 'mysql';
  return {
    mode: oneOf('mode', ['service', 'lock', 'dump'] as const),
    connection,
    databases: list,
    connectTimeoutMs: duration(o.connectTimeout, 'connectTimeout', 10_000),
    onUnreachable: oneOf('onUnreachable', ['abort', 'continue'] as const, 'abort'),
    stopCommand: command('stopCommand'),
    startCommand: command('startCommand'),
    service: serviceName(str('service')),
    pidFile: str('pidFile'),
    commandTimeoutMs: duration(o.commandTimeout, 'commandTimeout', 120_000),
    waitTimeoutMs: duration(o.waitTimeout, 'waitTimeout', 120_000),
    lockMethod: oneOf('lockMethod', ['auto', 'backup-stage', 'flush-tables'] as const, 'auto'),
    lockTimeoutMs: duration(o.lockTimeout, 'lockTimeout', 60_000),
    keepAliveMs: duration(o.keepAliveInterval, 'keepAliveInterval', 10_000),
    dumpCommand: str('dumpCommand'),
    dumpArgs: strings('dumpArgs') ?? DEFAULT_DUMP_ARGS,
    dumpDir: dumpDir.replace(/^\/+|\/+$/g, ''),
  };

  function duration(value: unknown, key: string, fallback: number): number {
    if (value === undefined) return fallback;
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
    if (typeof value === 'string') {
      const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
      const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m?.[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
      if (m && Number(m[1]) > 0) return Number(m[1]) * unit;
    }
    throw new Error(`${name}: option "${key}" must be a positive number of milliseconds or a duration like "30s"`);
  }
}

function serviceName(name: string | undefined): string | undefined {
  if (name !== undefined && !/^[A-Za-z0-9@._-]+$/.test(name)) {
    throw new Error(`mysql-state: option "service" must be a service or unit name (letters, digits, "@", ".", "_", "-"), not ${JSON.stringify(name)}`);
  }
  return name;
}

export function formatMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
