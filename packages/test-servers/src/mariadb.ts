import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readFileSync, rmSync, statSync } from 'node:fs';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';

const execFileAsync = promisify(execFile);

/** How to get the binaries `startMariaDb` needs (printed when they are missing). */
export const MARIADB_INSTALL_HINT =
  'install Debian\'s MariaDB server and client: `apt-get install -y mariadb-server mariadb-client` ' +
  '(needs mariadbd, mariadb-install-db and mariadb-dump)';

/** Connection parameters of a test server, in the shape `mysql2` and the mysql-state plug-in take. */
export interface MariaDbConnectionParams {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** A throw-away MariaDB server on a temporary data directory, socket and port. */
export interface MariaDbServer {
  /** Always `127.0.0.1` (the server binds there only). */
  readonly host: string;
  readonly port: number;
  /** Unix socket path. */
  readonly socket: string;
  /** A non-root user with all privileges, authenticated by password (over TCP and the socket). */
  readonly user: string;
  readonly password: string;
  /** The MariaDB data directory. */
  readonly dataDir: string;
  /** Folder holding the data directory, socket, logs and the control script; removed by `destroy()`. */
  readonly baseDir: string;
  /** Server version string (e.g. `10.11.6-MariaDB-0+deb12u1`). */
  readonly version: string;
  /**
   * argv that stops the server and returns once it is down, like `service mysql stop`.
   * Meant for the mysql-state plug-in's `service` mode.
   */
  readonly stopCommand: readonly string[];
  /**
   * argv that launches the server on the same data directory and returns at once (the server is not yet
   * answering when it returns, like a slow `service mysql start`).
   */
  readonly startCommand: readonly string[];
  /** TCP connection parameters for the password user. */
  params(): MariaDbConnectionParams;
  /** Open a `mysql2/promise` connection as the password user (TCP), optionally on a database. */
  connect(database?: string): Promise<mysql.Connection>;
  /** One-shot query on a fresh connection. */
  query<T = unknown>(sql: string, values?: unknown[]): Promise<T>;
  /** Whether the server answers a ping right now. */
  isUp(): Promise<boolean>;
  /** The server's current pid, if it runs. */
  pid(): number | undefined;
  /** Stop the server (waits until the process is gone). */
  stop(): Promise<void>;
  /** Start it again on the same data directory (unless it runs) and wait until it answers. */
  start(): Promise<void>;
  /** Stop it and remove everything it wrote. */
  destroy(): Promise<void>;
}

interface Binaries {
  mariadbd: string;
  installDb: string;
  dump: string;
  client: string;
}

const SEARCH_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/libexec', '/usr/bin', '/usr/local/bin', '/sbin'];

function findExecutable(names: readonly string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SEARCH_DIRS];
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      try {
        if (statSync(candidate).isFile()) {
          accessSync(candidate, constants.X_OK);
          return candidate;
        }
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

let cachedBinaries: Binaries | null | undefined;

/** The MariaDB binaries, or `null` if any is missing. */
export function findMariaDbBinaries(): Binaries | null {
  if (cachedBinaries !== undefined) return cachedBinaries;
  const mariadbd = findExecutable(['mariadbd', 'mysqld']);
  const installDb = findExecutable(['mariadb-install-db', 'mysql_install_db']);
  const dump = findExecutable(['mariadb-dump', 'mysqldump']);
  const client = findExecutable(['mariadb', 'mysql']);
  cachedBinaries = mariadbd && installDb && dump && client ? { mariadbd, installDb, dump, client } : null;
  return cachedBinaries;
}

/** True when `startMariaDb` can run here (use with `describeWithServer`). */
export function mariaDbAvailable(): boolean {
  return findMariaDbBinaries() !== null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Servers still running, killed when the test process exits so no mariadbd outlives the run. */
const live = new Set<{ pidFile: string; baseDir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const s of live) {
      const pid = readPid(s.pidFile);
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(s.baseDir, { recursive: true, force: true });
    }
  });
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Start a fresh MariaDB server: `mariadb-install-db` into a temporary data directory, then `mariadbd`
 * on a temporary socket and a free port on 127.0.0.1, with a password user (`kiwi`) that has all
 * privileges (root gets the same password). Small memory settings keep it light on CI.
 *
 * The server is launched by a generated control script (see `stopCommand`/`startCommand`), so it can be
 * stopped and started by a command exactly as an init system would.
 */
export async function startMariaDb(): Promise<MariaDbServer> {
  const bins = findMariaDbBinaries();
  if (!bins) throw new Error(`MariaDB is not available: ${MARIADB_INSTALL_HINT}`);
  installExitHook();

  const baseDir = await mkdtemp(join(tmpdir(), 'kiwi-mariadb-'));
  const dataDir = join(baseDir, 'data');
  const socket = join(baseDir, 'mysqld.sock');
  const pidFile = join(baseDir, 'mariadbd.pid');
  const errorLog = join(baseDir, 'error.log');
  const ctl = join(baseDir, 'ctl.sh');
  const port = await freePort();
  const password = randomBytes(12).toString('base64url');
  const user = 'kiwi';
  const runAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;

  // Shared by install-db (which passes them to its bootstrap server) and the server.
  const tuning = [
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=8M',
    '--innodb-flush-log-at-trx-commit=2',
    ...(runAsRoot ? ['--user=root'] : []),
  ];
  try {
    await execFileAsync(
      bins.installDb,
      ['--no-defaults', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...tuning],
      { maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    rmSync(baseDir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db into ${dataDir} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }

  const serverArgv = [
    bins.mariadbd,
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--pid-file=${pidFile}`,
    `--log-error=${errorLog}`,
    '--skip-name-resolve',
    '--performance-schema=OFF',
    ...tuning,
  ];
  // `( exec setsid … ) &`: the server gets its own session (a signal to the caller's process group does
  // not reach it) and keeps the pid `$!` names, which we record before mariadbd writes its own pid file.
  const setsid = findExecutable(['setsid']);
  const launch = `${setsid ? `exec ${shQuote(setsid)} ` : 'exec '}${serverArgv.map(shQuote).join(' ')}`;
  await writeFile(
    ctl,
    `#!/bin/sh
# Control script of a Kiwi test MariaDB server: ctl.sh start|stop
pidfile=${shQuote(pidFile)}
case "$1" in
  start)
    ( ${launch} </dev/null >>${shQuote(errorLog)} 2>&1 ) &
    echo $! > "$pidfile"
    ;;
  stop)
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || { rm -f "$pidfile"; exit 0; }
    i=0
    while kill -0 "$pid" 2>/dev/null; do
      i=$((i + 1))
      if [ "$i" -eq 300 ]; then kill -KILL "$pid" 2>/dev/null; fi
      sleep 0.1
    done
    rm -f "$pidfile"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
`,
  );
  await chmod(ctl, 0o755);
  const stopCommand = ['/bin/sh', ctl, 'stop'] as const;
  const startCommand = ['/bin/sh', ctl, 'start'] as const;
  const entry = { pidFile, baseDir };
  live.add(entry);

  const tcp = (): MariaDbConnectionParams => ({ host: '127.0.0.1', port, user, password });

  async function ping(conn: mysql.ConnectionOptions): Promise<boolean> {
    let c: mysql.Connection | undefined;
    try {
      c = await mysql.createConnection({ ...conn, connectTimeout: 2000 });
      await c.ping();
      return true;
    } catch {
      return false;
    } finally {
      c?.destroy();
    }
  }

  async function errorLogTail(): Promise<string> {
    const text = await readFile(errorLog, 'utf8').catch(() => '');
    return text.split('\n').slice(-20).join('\n');
  }

  async function waitUntilUp(conn: mysql.ConnectionOptions, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await ping(conn)) return;
      const pid = readPid(pidFile);
      if (pid === undefined || !alive(pid)) {
        throw new Error(`mariadbd on ${socket} exited during startup; error log:\n${await errorLogTail()}`);
      }
      await sleep(100);
    }
    throw new Error(`mariadbd on ${socket} did not answer within ${timeoutMs} ms; error log:\n${await errorLogTail()}`);
  }

  async function run(argv: readonly string[]): Promise<void> {
    await execFileAsync(argv[0]!, argv.slice(1));
  }

  async function stop(): Promise<void> {
    await run(stopCommand);
  }

  await run(startCommand);
  let version: string;
  try {
    // Right after install-db, root@localhost has no password (normal authentication); set up real auth.
    await waitUntilUp({ socketPath: socket, user: 'root' });
    const root = await mysql.createConnection({ socketPath: socket, user: 'root', multipleStatements: true });
    try {
      const pw = root.escape(password);
      await root.query(
        `CREATE USER '${user}'@'localhost' IDENTIFIED BY ${pw};
         CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY ${pw};
         GRANT ALL PRIVILEGES ON *.* TO '${user}'@'localhost' WITH GRANT OPTION;
         GRANT ALL PRIVILEGES ON *.* TO '${user}'@'127.0.0.1' WITH GRANT OPTION;
         ALTER USER 'root'@'localhost' IDENTIFIED BY ${pw};
         FLUSH PRIVILEGES;`,
      );
      const [rows] = await root.query('SELECT VERSION() AS v');
      version = String((rows as Array<{ v: string }>)[0]?.v);
    } finally {
      await root.end();
    }
  } catch (err) {
    await stop().catch(() => undefined);
    live.delete(entry);
    rmSync(baseDir, { recursive: true, force: true });
    throw err;
  }

  const server: MariaDbServer = {
    host: '127.0.0.1',
    port,
    socket,
    user,
    password,
    dataDir,
    baseDir,
    version,
    stopCommand,
    startCommand,
    params: tcp,
    connect: (database?: string) => mysql.createConnection({ ...tcp(), ...(database ? { database } : {}) }),
    async query<T>(sql: string, values?: unknown[]): Promise<T> {
      const c = await mysql.createConnection({ ...tcp(), multipleStatements: true });
      try {
        const [rows] = await c.query(sql, values);
        return rows as T;
      } finally {
        await c.end();
      }
    },
    isUp: () => ping(tcp()),
    pid: () => {
      const pid = readPid(pidFile);
      return pid !== undefined && alive(pid) ? pid : undefined;
    },
    stop,
    async start() {
      if (server.pid() === undefined) await run(startCommand);
      await waitUntilUp(tcp());
    },
    async destroy() {
      await stop().catch(() => undefined);
      const pid = readPid(pidFile);
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
      live.delete(entry);
      rmSync(baseDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** Run the MariaDB client binary against a server (e.g. to load a dump), feeding `input` on stdin. */
export function mariaDbClient(server: MariaDbServer, args: readonly string[], input?: string | Buffer): string {
  const bins = findMariaDbBinaries();
  if (!bins) throw new Error(`MariaDB is not available: ${MARIADB_INSTALL_HINT}`);
  const res = spawnSync(
    bins.client,
    ['--no-defaults', `--socket=${server.socket}`, `--user=${server.user}`, ...args],
    { input, env: { ...process.env, MYSQL_PWD: server.password }, maxBuffer: 256 * 1024 * 1024 },
  );
  if (res.error) throw res.error;
  if (res.status !== 0) {
    throw new Error(`${bins.client} ${args.join(' ')} exited with ${res.status}: ${res.stderr.toString()}`);
  }
  return res.stdout.toString();
}

