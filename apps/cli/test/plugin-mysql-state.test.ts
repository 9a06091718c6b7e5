/**
 * Issue #4 acceptance for mysql-state, through the built `kiwi` CLI against a real MariaDB (`startMariaDb`):
 * the plug-in is configured in a config file (`--config`) by name, as a user would, and a data-directory
 * helper plug-in (`probe`) records what happens during the backup and can slow it down or make it fail.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  describeWithServer,
  MARIADB_INSTALL_HINT,
  mariaDbAvailable,
  mariaDbClient,
  startMariaDb,
  type MariaDbServer,
} from '@kiwi-backup/test-servers';
import { jsonLines, removeDir, runKiwi, tempDir, type RunResult, snapshotList } from './helpers.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Data-dir helper plug-in (runs after the config's mysql-state). Appends to $RECORD_FILE:
 * `file:<name>[:up|:down]` per regular file (with $DB_PORT: whether the server answers on that port right now),
 * `backup-end` when the backup inside onBackupStart is over, and `stop:<status>` in onBackupStop.
 * $SLOW_MS sleeps in every onFile; $FAIL_ON=<name> (or `*` for the first file) throws there.
 */
const PROBE = `
import { appendFileSync } from 'node:fs';
import { connect } from 'node:net';
const rec = (line) => appendFileSync(process.env.RECORD_FILE, line + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Does something answer with a server greeting on 127.0.0.1:$DB_PORT? */
const answers = () => new Promise((resolve) => {
  const s = connect({ host: '127.0.0.1', port: Number(process.env.DB_PORT) });
  const done = (v) => { s.destroy(); resolve(v); };
  s.once('data', () => done(true));
  s.once('error', () => done(false));
  s.setTimeout(3000, () => done(false));
});
export default {
  async onBackupStart(ctx, next) {
    rec('start');
    try { await next(); } finally { rec('backup-end'); }
  },
  async onFile(ctx, next) {
    if (ctx.file.type === 'file') {
      const name = ctx.file.path.split('/').pop();
      rec('file:' + name + (process.env.DB_PORT ? ((await answers()) ? ':up' : ':down') : ''));
      if (process.env.FAIL_ON === name || process.env.FAIL_ON === '*') throw new Error('simulated read failure on ' + name);
      if (process.env.SLOW_MS) await sleep(Number(process.env.SLOW_MS));
    }
    await next();
  },
  async onBackupStop(ctx, next) {
    rec('stop:' + ctx.backup.status);
    await next();
  },
};
`;

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

type Conn = Awaited<ReturnType<MariaDbServer['connect']>>;

describeWithServer('MariaDB (mariadbd)', mariaDbAvailable(), MARIADB_INSTALL_HINT, () => {
  let server: MariaDbServer;
  let work: string;
  let dataDir: string;
  let record: string;
  let src: string;
  let env: NodeJS.ProcessEnv;
  /** Every CLI run's output, checked for the database password after each test. */
  let outputs: RunResult[];

  beforeAll(async () => {
    server = await startMariaDb();
    await server.query(
      `CREATE DATABASE app;
       CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100) CHARACTER SET utf8mb4) ENGINE=InnoDB;
       CREATE TABLE app.blobs (id INT PRIMARY KEY, b LONGBLOB, note TEXT) ENGINE=InnoDB;
       CREATE TABLE app.nums (id INT PRIMARY KEY, d DECIMAL(20,6), f DOUBLE, ts DATETIME(6), j JSON) ENGINE=InnoDB;
       CREATE TABLE app.log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(40)) ENGINE=MyISAM;
       INSERT INTO app.t (v) VALUES ('before'), ('kiwi 🥝 ünïcödé'), ('it''s "quoted"\\\\ and \\n newline');
       INSERT INTO app.blobs VALUES (1, UNHEX('00FF27225C0A0D1A00'), 'binary'), (2, REPEAT('x', 70000), NULL);
       INSERT INTO app.nums VALUES (1, 12345678901234.123456, -1.5e-300, '2024-02-29 23:59:59.999999', '{"a":[1,2,{"b":null}]}'),
                                   (2, -0.000001, 3.141592653589793, '1970-01-01 00:00:01.000000', '[]');
       INSERT INTO app.log (msg) VALUES ('myisam row')`,
    );
  });
  afterAll(async () => {
    await server?.destroy();
  });

  beforeEach(async () => {
    work = await tempDir('kiwi-cli-mysql-');
    dataDir = join(work, 'data');
    await mkdir(join(dataDir, 'plugins', 'probe'), { recursive: true });
    await writeFile(join(dataDir, 'plugins', 'probe', 'index.mjs'), PROBE);
    record = join(work, 'record.txt');
    await writeFile(record, '');
    src = join(work, 'src');
    await mkdir(src);
    for (const n of ['f1.txt', 'f2.txt', 'f3.txt', 'f4.txt', 'f5.txt', 'f6.txt']) await writeFile(join(src, n), `${n}\n`);
    env = { KIWI_DATA_DIR: dataDir, KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'repo-pw', RECORD_FILE: record };
    outputs = [];
    await kiwi(['init']);
  });
  afterEach(async () => {
    for (const r of outputs) {
      expect(r.stdout).not.toContain(server.password);
      expect(r.stderr).not.toContain(server.password);
    }
    await removeDir(work);
  });

  /** Run the CLI and keep its output for the password check. */
  async function kiwi(args: string[], opts: Parameters<typeof runKiwi>[1] = {}): Promise<RunResult> {
    const r = await runKiwi(args, { ...opts, env: { ...env, ...opts.env } });
    outputs.push(r);
    return r;
  }
  /** A config file naming mysql-state as a user would: by name, with its options. */
  async function config(options: Record<string, unknown>): Promise<string> {
    const file = join(work, 'kiwi.json');
    await writeFile(
      file,
      JSON.stringify({ plugins: [{ name: 'mysql-state', options: { ...server.params(), connectTimeout: '5s', ...options } }] }, null, 2),
    );
    return file;
  }
  const recorded = async () => (await readFile(record, 'utf8')).split('\n').filter(Boolean);
  async function waitForRecord(pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await recorded()).some((l) => pattern.test(l))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in ${record}: ${(await recorded()).join(', ')}`);
      await sleep(25);
    }
  }
  async function snapshotCount(): Promise<number> {
    const r = await kiwi(['snapshots', '--json']);
    expect(r.code, r.stderr).toBe(0);
    return snapshotList(r.stdout).length;
  }
  /** Whether `sql` finishes within `ms` on a fresh connection. */
  async function finishesWithin(sql: string, ms: number): Promise<boolean> {
    const conn = await server.connect();
    try {
      await conn.query('SET SESSION lock_wait_timeout = 10');
      return await Promise.race([conn.query(sql).then(() => true), sleep(ms).then(() => false)]);
    } finally {
      conn.destroy();
    }
  }
  /**
   * Start an INSERT on its own connection once the backup reads its first file; check it still waits
   * 700 ms later while the backup is still reading, and that reads go on meanwhile.
   */
  async function insertDuringBackup(value: string): Promise<{ writer: Conn; insert: Promise<string[]> }> {
    await waitForRecord(/^file:/);
    const writer = await server.connect();
    await writer.query('SET SESSION lock_wait_timeout = 60');
    let done = false;
    const insert = writer.query('INSERT INTO app.t (v) VALUES (?)', [value]).then(async () => {
      done = true;
      return recorded(); // what had happened when the write got through
    });
    insert.catch(() => undefined);
    expect(await finishesWithin('SELECT COUNT(*) FROM app.t', 2000)).toBe(true); // reads keep working
    await sleep(700);
    expect(done).toBe(false);
    expect(await recorded()).not.toContain('backup-end'); // the backup was still running while the write waited
    return { writer, insert };
  }

  it('lock: a concurrent INSERT waits for the backup and lands after it; no lock remains', async () => {
    const cfg = await config({ mode: 'lock' });
    const run = kiwi(['backup', src, '--config', cfg, '--json', '--verbose'], { env: { SLOW_MS: '500' } });
    const { writer, insert } = await insertDuringBackup('during-lock');
    const r = await run;
    try {
      expect(r.code, r.stderr).toBe(0);
      const whenInserted = await insert;
      expect(whenInserted).toContain('backup-end'); // the write got through only after the backup ended
      expect(whenInserted.filter((l) => l.startsWith('file:'))).toHaveLength(6);
    } finally {
      writer.destroy();
    }
    const lines = jsonLines(r.stdout);
    expect(lines.find((l) => l.message_type === 'summary')?.status).toBe('success');
    const logs = lines.filter((l) => l.message_type === 'log').map((l) => String(l.message));
    expect(logs.some((m) => /taking the global read lock on 127\.0\.0\.1:\d+ as user kiwi \(BACKUP STAGE\)/.test(m))).toBe(true);
    expect(logs.some((m) => m.startsWith('released the global read lock'))).toBe(true);
    expect(await recorded()).toContain('stop:success');
    expect(await snapshotCount()).toBe(1);
    const rows = await server.query<Array<{ n: number }>>("SELECT COUNT(*) AS n FROM app.t WHERE v = 'during-lock'");
    expect(Number(rows[0]!.n)).toBe(1);
    expect(await finishesWithin("INSERT INTO app.t (v) VALUES ('after-lock')", 2000)).toBe(true);
  });

  it('lock: after a backup that fails mid-way the database is unlocked, and the CLI exits 1', async () => {
    const cfg = await config({ mode: 'lock' });
    const run = kiwi(['backup', src, '--config', cfg], { env: { SLOW_MS: '500', FAIL_ON: 'f4.txt' } });
    const { writer, insert } = await insertDuringBackup('during-failed');
    const r = await run;
    try {
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('simulated read failure on f4.txt');
      expect(await insert).toContain('backup-end');
    } finally {
      writer.destroy();
    }
    expect(await recorded()).toContain('stop:failure');
    expect(await finishesWithin("INSERT INTO app.t (v) VALUES ('after-failure')", 2000)).toBe(true);
    expect(await snapshotCount()).toBe(0);
  });

  it('lock: after SIGINT the database is unlocked, and the CLI exits 130', async () => {
    const cfg = await config({ mode: 'lock' });
    let sent = false;
    let child: import('node:child_process').ChildProcess | undefined;
    const run = kiwi(['backup', src, '--config', cfg], { env: { SLOW_MS: '500' }, onSpawn: (c) => (child = c) });
    const { writer, insert } = await insertDuringBackup('during-sigint');
    sent = child!.kill('SIGINT');
    const r = await run;
    try {
      expect(sent).toBe(true);
      expect(r.code).toBe(130);
      expect(await insert).toContain('backup-end');
    } finally {
      writer.destroy();
    }
    const lines = await recorded();
    expect(lines.filter((l) => l.startsWith('file:')).length).toBeLessThan(6); // it really was interrupted mid-way
    expect(lines).toContain('stop:interrupted');
    expect(await finishesWithin("INSERT INTO app.t (v) VALUES ('after-sigint')", 2000)).toBe(true);
    expect(await snapshotCount()).toBe(0);
  });

  it('dump: the snapshot holds mysql/app.sql; restored and loaded into a fresh database it checksums like the source', async () => {
    const cfg = await config({ mode: 'dump', databases: ['app'] });
    const r = await kiwi(['backup', src, '--config', cfg, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const ls = await kiwi(['ls', 'latest', '--json']);
    expect(ls.code, ls.stderr).toBe(0);
    const dumpNode = jsonLines(ls.stdout).find((l) => l.message_type === 'node' && String(l.path).endsWith('mysql/app.sql'));
    expect(dumpNode, ls.stdout).toBeDefined();
    expect(dumpNode!.type).toBe('file');
    expect(Number(dumpNode!.size)).toBeGreaterThan(70_000); // holds the 70 kB blob

    expect(dumpNode!.path).toBe('/mysql/app.sql');
    expect(jsonLines(ls.stdout).some((l) => String(l.path).endsWith('/src/f1.txt'))).toBe(true); // next to the files

    // As docs/writing-plugins.md says: restore the folder, load the file into any database name.
    const target = join(work, 'restore');
    const restore = await kiwi(['restore', 'latest', '--target', target, '--include', '/mysql/']);
    expect(restore.code, restore.stderr).toBe(0);
    const dumpFile = join(target, 'mysql', 'app.sql');
    expect(existsSync(dumpFile)).toBe(true);
    const sql = await readFile(dumpFile!);
    expect(sql.toString('utf8')).toContain('CREATE TABLE `blobs`');

    await server.query('DROP DATABASE IF EXISTS app_copy; CREATE DATABASE app_copy');
    mariaDbClient(server, ['app_copy'], sql);
    const tables = ['t', 'blobs', 'nums', 'log'];
    const sums = async (db: string) =>
      (await server.query<Array<{ Checksum: string | number | null }>>(`CHECKSUM TABLE ${tables.map((t) => `${db}.${t}`).join(', ')}`)).map((row) =>
        String(row.Checksum),
      );
    const source = await sums('app');
    expect(source.every((s) => s !== 'null' && s !== '0')).toBe(true);
    expect(await sums('app_copy')).toEqual(source);
  });

  it('service: the server is down while files are read and answers again after', async () => {
    const pidBefore = server.pid();
    const cfg = await config({ mode: 'service', stopCommand: server.stopCommand, startCommand: server.startCommand, waitTimeout: '30s' });
    // Back up the database's own files, the way `service` mode is meant to be used.
    const r = await kiwi(['backup', join(server.dataDir, 'app'), '--config', cfg, '--json'], { env: { DB_PORT: String(server.port) } });
    expect(r.code, r.stderr).toBe(0);
    expect(await server.isUp()).toBe(true); // at once: the plug-in waited until it answered
    expect(server.pid()).not.toBe(pidBefore);
    const files = (await recorded()).filter((l) => l.startsWith('file:'));
    expect(files.length).toBeGreaterThanOrEqual(4); // db.opt and the .frm/.ibd/.MYD… of the tables
    expect(files.every((l) => l.endsWith(':down')), files.join(', ')).toBe(true);
    const ls = await kiwi(['ls', 'latest', '--json']);
    expect(jsonLines(ls.stdout).some((l) => String(l.path).endsWith('/app/t.ibd'))).toBe(true);
    const rows = await server.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM app.t');
    expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(3);
  });

  it('service: after a backup that fails mid-way the server answers again, and the CLI exits 1', async () => {
    const cfg = await config({ mode: 'service', stopCommand: server.stopCommand, startCommand: server.startCommand, waitTimeout: '30s' });
    const r = await kiwi(['backup', src, '--config', cfg], { env: { DB_PORT: String(server.port), FAIL_ON: '*' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/simulated read failure on f\d\.txt/);
    expect(await recorded()).toEqual(['start', expect.stringMatching(/^file:f\d\.txt:down$/), 'backup-end', 'stop:failure']);
    expect(await server.isUp()).toBe(true);
    expect(await snapshotCount()).toBe(0);
  });

  it('service: after SIGTERM the server answers again, and the CLI exits 130', async () => {
    const cfg = await config({ mode: 'service', stopCommand: server.stopCommand, startCommand: server.startCommand, waitTimeout: '30s' });
    let child: import('node:child_process').ChildProcess | undefined;
    const run = kiwi(['backup', src, '--config', cfg], { env: { DB_PORT: String(server.port), SLOW_MS: '500' }, onSpawn: (c) => (child = c) });
    await waitForRecord(/^file:/);
    expect(await server.isUp()).toBe(false);
    child!.kill('SIGTERM');
    const r = await run;
    expect(r.code).toBe(130);
    expect(await server.isUp()).toBe(true);
    expect(await recorded()).toContain('stop:interrupted');
  });

  it('server unreachable at backup start: a clear error naming host and port, the backup is aborted, onBackupStop runs', async () => {
    const port = await closedPort();
    const cfg = await config({ mode: 'lock', port, connectTimeout: '2s' });
    const r = await kiwi(['backup', src, '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the MySQL server (127.0.0.1:${port} as user kiwi)`);
    expect(r.stderr).toMatch(/ECONNREFUSED/);
    expect(r.stderr).toMatch(/aborted/);
    // mysql-state (listed first) aborted in its onBackupStart, so the probe's start hook and the backup never ran;
    // every plug-in's onBackupStop still did.
    expect(await recorded()).toEqual(['stop:aborted']);
    expect(await snapshotCount()).toBe(0);
  });

  it('the documented config form ({ package, name }) loads the bundled plug-in, and kiwi plugins never shows the password', async () => {
    const file = join(work, 'kiwi-package.json');
    await writeFile(
      file,
      JSON.stringify({
        plugins: [{ package: '@kiwi-backup/plugin-mysql-state', name: 'mysql-state', options: { mode: 'lock', ...server.params() } }],
      }),
    );
    const r = await kiwi(['plugins', '--config', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^mysql-state\b/m);
    expect(r.stdout).toMatch(/hooks: onServerStart, onBackupStart, onBackupStop/);
  });
});
