import { mkdtempSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PluginDefinition } from '@kiwi-backup/core';
import {
  BackupAbortedError,
  fakeBackupInfo,
  instantiatePlugin,
  loadTestPlugins,
  memoryLogger,
  runBackupWithPlugins,
  type RunBackupWithPluginsOptions,
} from '@kiwi-backup/core/testing';
import {
  describeWithServer,
  MARIADB_INSTALL_HINT,
  mariaDbAvailable,
  mariaDbClient,
  startMariaDb,
  type MariaDbServer,
} from '@kiwi-backup/test-servers';
import mysqlState from '../src/index.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A data directory of its own (the recovery journal of service mode is written there). */
const dataDir = mkdtempSync(join(tmpdir(), 'kiwi-mysql-state-data-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const plugin = (options: Record<string, unknown>) => [{ name: 'mysql-state', module: mysqlState, options }];

/** One backup with mysql-state loaded with `options`, on Kiwi's real plug-in runtime. */
function backup(options: Record<string, unknown>, run: RunBackupWithPluginsOptions = {}) {
  return runBackupWithPlugins(plugin(options), { dataDir, ...run });
}

/** The virtual file a run added at `path`, as stored in the snapshot. */
function added(run: { addedFiles: Array<{ path: string; content: Buffer }> }, path: string): Buffer {
  const file = run.addedFiles.find((f) => f.path === path);
  if (!file) throw new Error(`no virtual file ${path} (have: ${run.addedFiles.map((f) => f.path).join(', ') || 'none'})`);
  return file.content;
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Run `sql` on a fresh connection and report whether it finished within `ms`. */
async function finishesWithin(server: MariaDbServer, sql: string, ms: number): Promise<boolean> {
  const conn = await server.connect();
  try {
    await conn.query('SET SESSION lock_wait_timeout = 5');
    const result = await Promise.race([conn.query(sql).then(() => true), sleep(ms).then(() => false)]);
    return result;
  } finally {
    conn.destroy();
  }
}

describeWithServer('MariaDB (mariadbd)', mariaDbAvailable(), MARIADB_INSTALL_HINT, () => {
  let server: MariaDbServer;
  let params: { host: string; port: number; user: string; password: string };

  beforeAll(async () => {
    server = await startMariaDb();
    params = server.params();
    await server.query(
      `CREATE DATABASE app;
       CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;
       INSERT INTO app.t (v) VALUES ('before')`,
    );
  });
  afterAll(async () => {
    await server?.destroy();
  });

  describe('service mode', () => {
    const serviceOptions = () => ({
      mode: 'service',
      ...params,
      stopCommand: server.stopCommand,
      startCommand: server.startCommand,
      waitTimeout: '30s',
    });

    it('stops the server while the backup runs and starts it after; it answers again', async () => {
      let upDuring: boolean | undefined;
      let pidDuring: number | undefined = -1;
      const run = await backup(serviceOptions(), {
        body: async () => {
          upDuring = await server.isUp();
          pidDuring = server.pid();
        },
      });
      expect(run.startError).toBeUndefined();
      expect(run.stopErrors).toEqual([]);
      expect(upDuring).toBe(false);
      expect(pidDuring).toBeUndefined();
      expect(await server.isUp()).toBe(true);
      const rows = await server.query<Array<{ v: string }>>('SELECT v FROM app.t ORDER BY id');
      expect(rows.map((r) => r.v)).toContain('before');
      expect(run.metadata['mysql-state']).toMatchObject({ mode: 'service', serverVersion: server.version });
    });

    it('starts the server again after a backup that fails mid-way (shell-string commands)', async () => {
      const run = await backup({
        ...serviceOptions(),
        stopCommand: server.stopCommand.map((a) => `'${a}'`).join(' '),
        startCommand: server.startCommand.map((a) => `'${a}'`).join(' '),
      }, {
        body: async () => {
          expect(await server.isUp()).toBe(false);
          throw new Error('storage went away');
        },
      });
      expect((run.startError as Error).message).toBe('storage went away');
      expect(run.backup.status).toBe('failure');
      expect(await server.isUp()).toBe(true);
    });

    it('fails loudly when the server does not answer after the start command', async () => {
      try {
        const run = await backup({ ...serviceOptions(), startCommand: ['true'], waitTimeout: 1500 });
        expect(run.bodyRan).toBe(true);
        const message = (run.startError as Error).message;
        expect(message).toContain('MySQL did not answer within 1500 ms after `true`');
        expect(message).toContain(`127.0.0.1:${server.port} as user kiwi`);
        expect(message).toContain('THE DATABASE MAY BE DOWN');
        expect(message).not.toContain(server.password);
      } finally {
        await server.start();
      }
    });
  });

  describe('lock mode', () => {
    it.each(['backup-stage', 'flush-tables'] as const)(
      '%s: an INSERT from another connection waits for the backup; reads go on',
      async (lockMethod) => {
        const writer = await server.connect();
        let inserted = false;
        let insert: Promise<void> | undefined;
        let readMs = -1;
        let insertedDuring: boolean | undefined;
        try {
          const run = await backup({ mode: 'lock', ...params, lockMethod }, {
            body: async () => {
              insert = writer.query(`INSERT INTO app.t (v) VALUES ('during-${lockMethod}')`).then(() => {
                inserted = true;
              });
              const t0 = Date.now();
              await server.query('SELECT COUNT(*) FROM app.t');
              readMs = Date.now() - t0;
              await sleep(800);
              insertedDuring = inserted;
            },
          });
          expect(run.startError).toBeUndefined();
          expect(insertedDuring).toBe(false);
          expect(readMs).toBeLessThan(2000);
          await insert;
          expect(inserted).toBe(true);
          const rows = await server.query<unknown[]>('SELECT id FROM app.t WHERE v = ?', [`during-${lockMethod}`]);
          expect(rows).toHaveLength(1);
          expect(run.metadata['mysql-state']).toMatchObject({ mode: 'lock', lockMethod, serverVersion: server.version });
        } finally {
          writer.destroy();
        }
      },
    );

    it('on the plug-in runtime\'s own session API: a concurrent INSERT waits for the backup, and lands after it', async () => {
      const runtime = await loadTestPlugins(plugin({ mode: 'lock', ...params }), { dataDir });
      const backup = fakeBackupInfo();
      const session = runtime.createBackupSession({ backup, signal: new AbortController().signal, onAddFile: () => undefined });
      const writer = await server.connect();
      let inserted = false;
      let insert: Promise<void> | undefined;
      let insertedDuring: boolean | undefined;
      try {
        await session.start(async () => {
          insert = writer.query("INSERT INTO app.t (v) VALUES ('via-runtime')").then(() => {
            inserted = true;
          });
          await sleep(600);
          insertedDuring = inserted;
        });
        backup.status = 'success';
        expect(await session.stop()).toEqual([]);
        await insert;
        expect(insertedDuring).toBe(false);
        expect(inserted).toBe(true);
        expect(backup.metadata['mysql-state']).toMatchObject({ mode: 'lock', lockMethod: 'backup-stage' });
      } finally {
        writer.destroy();
      }
    });

    it('leaves no lock after a failed backup', async () => {
      let blockedDuring: boolean | undefined;
      const run = await backup({ mode: 'lock', ...params }, {
        body: async () => {
          blockedDuring = !(await finishesWithin(server, "INSERT INTO app.t (v) VALUES ('x')", 300));
          throw new Error('walk failed');
        },
      });
      expect(blockedDuring).toBe(true);
      expect((run.startError as Error).message).toBe('walk failed');
      expect(await finishesWithin(server, "INSERT INTO app.t (v) VALUES ('after-failure')", 2000)).toBe(true);
    });

    it('leaves no lock after SIGINT', async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('SIGINT')), 300);
      const run = await backup({ mode: 'lock', ...params }, {
        signal: controller.signal,
        body: async (ctx) => {
          await new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('interrupted by SIGINT'))));
        },
      });
      expect(run.backup.status).toBe('interrupted');
      expect((run.startError as Error).message).toBe('interrupted by SIGINT');
      expect(await finishesWithin(server, "INSERT INTO app.t (v) VALUES ('after-sigint')", 2000)).toBe(true);
    });

    it('onBackupStop releases a lock the start hook still holds (start hook never finished)', async () => {
      // Driven through the runtime's session directly: the harness always waits for the start chain.
      const logs = memoryLogger();
      const runtime = await loadTestPlugins(plugin({ mode: 'lock', ...params }), { dataDir, logger: logs });
      const info = fakeBackupInfo();
      const session = runtime.createBackupSession({ backup: info, signal: new AbortController().signal, onAddFile: () => undefined });
      let entered!: () => void;
      const bodyEntered = new Promise<void>((r) => (entered = r));
      let finishBody!: () => void;
      const hung = session.start(async () => {
        entered();
        await new Promise<void>((r) => (finishBody = r));
      });
      await bodyEntered;
      expect(await finishesWithin(server, "INSERT INTO app.t (v) VALUES ('y')", 300)).toBe(false);
      // The runtime gives up on the backup (e.g. a second SIGTERM) and runs the stop hooks.
      info.status = 'interrupted';
      expect(await session.stop()).toEqual([]);
      expect(await finishesWithin(server, "INSERT INTO app.t (v) VALUES ('after-safety-net')", 2000)).toBe(true);
      expect(logs.entries).toContainEqual(expect.objectContaining({ level: 'warn', message: expect.stringContaining('MySQL still locked; restoring it now') }));
      finishBody();
      await expect(hung).resolves.toBeUndefined();
    });

    it('warns loudly and marks the metadata when the lock connection dies during the backup', async () => {
      const before = new Set((await server.query<Array<{ id: number }>>('SELECT ID AS id FROM information_schema.PROCESSLIST')).map((r) => r.id));
      // No onServerStart: its probe connection must not show up in the process list below.
      const run = await backup({ mode: 'lock', ...params, keepAliveInterval: 100 }, {
        serverStart: false,
        body: async () => {
          const now = await server.query<Array<{ id: number }>>(
            'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
            [server.user],
          );
          const lockConn = now.map((r) => r.id).filter((id) => !before.has(id));
          expect(lockConn).toHaveLength(1);
          await server.query(`KILL ${lockConn[0]}`);
          await sleep(500);
        },
      });
      expect(run.startError).toBeUndefined();
      expect(run.metadata['mysql-state']).toMatchObject({ lockLost: { reason: expect.any(String) } });
      expect(run.logs).toContainEqual(expect.objectContaining({ level: 'error', message: expect.stringContaining('GLOBAL READ LOCK LOST') }));
      expect(await finishesWithin(server, "INSERT INTO app.t (v) VALUES ('after-kill')", 2000)).toBe(true);
    });

    it('aborts with a clear message when the login fails, never showing the password', async () => {
      const run = await backup({ mode: 'lock', ...params, password: 'not-the-password-42' });
      expect(run.bodyRan).toBe(false);
      expect(run.startError).toBeInstanceOf(BackupAbortedError);
      const message = (run.startError as Error).message;
      expect(message).toContain(`cannot log in to the MySQL server (127.0.0.1:${server.port} as user kiwi)`);
      expect(message).toContain('Access denied');
      expect(message).not.toContain('not-the-password-42');
    });
  });

  describe('dump mode', () => {
    let fresh: MariaDbServer | undefined;
    let scratch: string;
    beforeAll(async () => {
      scratch = await mkdtemp(join(tmpdir(), 'kiwi-mysql-state-test-'));
      await server.query(
        `CREATE DATABASE shop CHARACTER SET utf8mb4;
         CREATE TABLE shop.products (
           id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, price DECIMAL(10,2),
           data BLOB, created DATETIME(3), note TEXT NULL
         ) ENGINE=InnoDB;
         INSERT INTO shop.products (name, price, data, created, note) VALUES
           ('kiwi 🥝', 1.25, UNHEX('00FF10275C27'), '2024-01-02 03:04:05.678', NULL),
           ('quote '' and \\\\ backslash', 99999999.99, NULL, NULL, 'multi\nline');
         CREATE TABLE shop.orders (id INT PRIMARY KEY, product INT, qty INT, KEY (product)) ENGINE=InnoDB;
         SET SESSION max_recursive_iterations = 100000;
         INSERT INTO shop.orders
           WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 3000)
           SELECT n, 1 + n % 2, n * 7 % 13 FROM seq;
         CREATE TABLE shop.audit (v INT) ENGINE=MyISAM;
         INSERT INTO shop.audit VALUES (1), (2), (3);
         CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE qty > 10;
         CREATE TRIGGER shop.count_order AFTER INSERT ON shop.orders FOR EACH ROW INSERT INTO shop.audit VALUES (NEW.id);
         CREATE DATABASE crm;
         CREATE TABLE crm.contacts (id INT PRIMARY KEY, email VARCHAR(200)) ENGINE=InnoDB;
         INSERT INTO crm.contacts VALUES (1, 'a@example.org'), (2, 'b@example.org');`,
      );
    });
    afterAll(async () => {
      await fresh?.destroy();
      await rm(scratch, { recursive: true, force: true });
    });

    const checksums = async (s: MariaDbServer, tables: string[]) =>
      (await s.query<Array<{ Table: string; Checksum: string | number }>>(`CHECKSUM TABLE ${tables.join(', ')}`)).map((r) => [r.Table, String(r.Checksum)]);

    it('streams each database into the snapshot; restored into a fresh server, the tables have the same checksums', async () => {
      // The engine reads the dumps at the end of the walk, while onBackupStart still holds the connection.
      const run = await backup({ mode: 'dump', ...params });
      const dumps = new Map(run.addedFiles.map((f) => [f.path, f.content]));
      expect(run.startError).toBeUndefined();
      expect([...dumps.keys()].sort()).toEqual(['mysql/app.sql', 'mysql/crm.sql', 'mysql/shop.sql']);
      expect(run.metadata['mysql-state']).toMatchObject({
        mode: 'dump',
        serverVersion: server.version,
        databases: ['app', 'crm', 'shop'],
        files: ['mysql/app.sql', 'mysql/crm.sql', 'mysql/shop.sql'],
      });
      expect(String((run.metadata['mysql-state'] as { tool: string }).tool)).toMatch(/dump/i);
      expect(dumps.get('mysql/shop.sql')!.toString()).not.toContain('Dump completed on'); // --skip-dump-date

      fresh = await startMariaDb();
      for (const db of ['shop', 'crm']) {
        await fresh.query(`CREATE DATABASE ${db}`);
        mariaDbClient(fresh, [db], dumps.get(`mysql/${db}.sql`));
      }
      const tables = ['shop.products', 'shop.orders', 'shop.audit', 'crm.contacts'];
      const source = await checksums(server, tables);
      expect(source.every(([, sum]) => sum !== '0' && sum !== 'null')).toBe(true);
      expect(await checksums(fresh, tables)).toEqual(source);
      const view = await fresh.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM shop.big_orders');
      expect(Number(view[0]!.n)).toBeGreaterThan(0);
      const triggers = await fresh.query<unknown[]>("SHOW TRIGGERS FROM shop LIKE 'orders'");
      expect(triggers).toHaveLength(1);
    });

    it('fails the backup when the dump tool fails (here: the database vanished)', async () => {
      await server.query('CREATE DATABASE doomed; CREATE TABLE doomed.t (v INT)');
      const run = await backup({ mode: 'dump', ...params, database: 'doomed' }, {
        body: async () => {
          await server.query('DROP DATABASE doomed');
        },
      });
      // The dump stream errors, and the backup is aborted: no snapshot without the database is written.
      expect(run.startError).toBeInstanceOf(BackupAbortedError);
      const message = (run.startError as Error).message;
      expect(message).toMatch(/dump of database doomed \(127\.0\.0\.1:\d+ as user kiwi\) failed with exit code 2/);
      expect(message).toMatch(/Unknown database|doomed/);
      expect(run.backup.status).toBe('aborted');
    });

    it('aborts when a configured database does not exist', async () => {
      const run = await backup({ mode: 'dump', ...params, databases: ['crm', 'nope'] });
      expect(run.bodyRan).toBe(false);
      expect((run.startError as Error).message).toContain(`database nope not found on 127.0.0.1:${server.port} as user kiwi`);
    });

    it('hands the password to the dump tool in a private option file, never on its command line', async () => {
      const seen = join(scratch, 'seen');
      const fake = join(scratch, 'fake-dump.sh');
      await writeFile(
        fake,
        `#!/bin/sh
cfg="\${1#--defaults-extra-file=}"
printf '%s\\n' "$@" > "${seen}.args"
stat -c %a "$cfg" > "${seen}.mode"
echo "$cfg" > "${seen}.path"
cat "$cfg" > "${seen}.cnf"
echo "-- dump of $# args"
if [ "$MYSQL_PWD" != "" ]; then echo "password in env" >&2; exit 9; fi
grep '^password=' "$cfg" >&2
exit 4
`,
      );
      await chmod(fake, 0o755);
      const run = await backup({ mode: 'dump', ...params, database: 'crm', dumpCommand: fake });
      const args = await readFile(`${seen}.args`, 'utf8');
      expect(args).not.toContain(server.password);
      expect(args.split('\n')).toContain('--single-transaction');
      expect((await readFile(`${seen}.mode`, 'utf8')).trim()).toBe('600');
      expect(await readFile(`${seen}.cnf`, 'utf8')).toContain(`password="${server.password}"`);
      // Removed once the dump ended.
      await expect(stat((await readFile(`${seen}.path`, 'utf8')).trim())).rejects.toThrow(/ENOENT/);
      // The tool's failure (exit 4) aborts the backup, and its stderr is shown with the password masked.
      expect(run.startError).toBeInstanceOf(BackupAbortedError);
      const message = (run.startError as Error).message;
      expect(message).toContain('failed with exit code 4: password="***"');
      expect(message).not.toContain(server.password);
    });

    it('reads the connection from a MySQL option file (defaultsFile)', async () => {
      const cnf = join(scratch, 'my.cnf');
      await writeFile(
        cnf,
        `# backup credentials\n[mysqld]\nport=1\n\n[client]\nuser = ${server.user}\npassword = "${server.password}"\nhost=127.0.0.1\nport=${server.port}\n`,
        { mode: 0o600 },
      );
      const run = await backup({ mode: 'dump', defaultsFile: cnf, database: 'crm' });
      expect(run.startError).toBeUndefined();
      const dump = added(run, 'mysql/crm.sql').toString();
      expect(dump).toContain('a@example.org');
    });
  });

  describe('server unreachable at backup start', () => {
    it.each(['service', 'lock', 'dump'] as const)('%s: a clear error, the backup is aborted, onBackupStop still runs', async (mode) => {
      const port = await closedPort();
      const definition = await instantiatePlugin(mysqlState, {
        mode,
        host: '127.0.0.1',
        port,
        user: 'backup',
        password: 'hunter2-secret',
        stopCommand: ['false'],
        startCommand: ['false'],
        connectTimeout: 2000,
      }, { name: 'mysql-state', dataDir });
      let stopRan = false;
      const stop = definition.onBackupStop!;
      const spied: PluginDefinition = {
        ...definition,
        onBackupStop: async (ctx, next) => {
          stopRan = true;
          return stop(ctx, next);
        },
      };
      const run = await runBackupWithPlugins([{ name: 'mysql-state', module: spied }], { dataDir });
      expect(run.bodyRan).toBe(false);
      expect(run.startError).toBeInstanceOf(BackupAbortedError);
      const message = (run.startError as Error).message;
      expect(message).toContain(`cannot reach the MySQL server (127.0.0.1:${port} as user backup)`);
      expect(message).toContain('ECONNREFUSED');
      expect(JSON.stringify([message, run.logs])).not.toContain('hunter2-secret');
      expect(run.backup.status).toBe('aborted');
      expect(stopRan).toBe(true);
      expect(run.stopErrors).toEqual([]);
    });

    it('names the socket it tried', async () => {
      const run = await backup({ mode: 'lock', socket: '/nonexistent/kiwi-test/mysqld.sock', user: 'backup' });
      expect(run.bodyRan).toBe(false);
      expect((run.startError as Error).message).toContain('cannot reach the MySQL server (socket /nonexistent/kiwi-test/mysqld.sock as user backup)');
    });

    it('backs up without the plug-in when onUnreachable is "continue"', async () => {
      const port = await closedPort();
      const run = await backup({ mode: 'lock', host: '127.0.0.1', port, user: 'backup', onUnreachable: 'continue' });
      expect(run.bodyRan).toBe(true);
      expect(run.startError).toBeUndefined();
      expect(run.logs).toContainEqual(expect.objectContaining({ level: 'warn', message: expect.stringContaining('backing up without lock mode') }));
      expect(run.metadata['mysql-state']).toMatchObject({ skipped: expect.stringContaining('cannot reach') });
    });
  });
});
