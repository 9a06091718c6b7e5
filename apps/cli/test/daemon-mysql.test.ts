/**
 * Unattended safety with a real MariaDB (`startMariaDb`) and mysql-state in service mode, its stop and start
 * commands controlling the real mariadbd as an init system would (issue 11, acceptance 2 and 3).
 * A data-directory plug-in (`probe`) records onServerStart and each file read, with whether the server
 * answered at that moment, and makes the backup slow.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeWithServer, MARIADB_INSTALL_HINT, mariaDbAvailable, startMariaDb, type MariaDbServer } from '@kiwi-backup/test-servers';
import { jsonLines, removeDir, runKiwi, sleep, tempDir } from './helpers.js';
import { eventually, killDaemon, startDaemon, type DaemonProcess } from './daemon-helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const PROBE = `
import { appendFileSync } from 'node:fs';
import { connect } from 'node:net';
const rec = (line) => appendFileSync(process.env.RECORD_FILE, line + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const answers = () => new Promise((resolve) => {
  const s = connect({ host: '127.0.0.1', port: Number(process.env.DB_PORT) });
  const done = (v) => { s.destroy(); resolve(v); };
  s.once('data', () => done(true));
  s.once('error', () => done(false));
  s.setTimeout(3000, () => done(false));
});
export default {
  async onServerStart(ctx, next) {
    rec('server-start:' + ((await answers()) ? 'up' : 'down'));
    await next();
  },
  async onFile(ctx, next) {
    if (ctx.file.type === 'file') {
      rec('file:' + ((await answers()) ? 'up' : 'down'));
      await sleep(Number(process.env.SLOW_MS ?? 0));
    }
    await next();
  },
  async onBackupStop(ctx, next) {
    rec('stop:' + ctx.backup.status + ':' + ((await answers()) ? 'up' : 'down'));
    await sleep(Number(process.env.STOP_MS ?? 0));
    rec('stop-done');
    await next();
  },
};
`;

describeWithServer('MariaDB (mariadbd)', mariaDbAvailable(), MARIADB_INSTALL_HINT, () => {
  let server: MariaDbServer;
  let work: string;
  let dataDir: string;
  let record: string;
  let src: string;
  let env: NodeJS.ProcessEnv;
  let cfg: string;
  let daemon: DaemonProcess | undefined;

  beforeAll(async () => {
    server = await startMariaDb();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  beforeEach(async () => {
    work = await tempDir('kiwi-daemon-mysql-');
    dataDir = join(work, 'data');
    record = join(work, 'record.txt');
    src = join(work, 'src');
    await writeFile(record, '');
    await mkdir(join(dataDir, 'plugins', 'probe'), { recursive: true });
    await writeFile(join(dataDir, 'plugins', 'probe', 'index.mjs'), PROBE);
    await mkdir(src);
    for (let i = 0; i < 12; i++) await writeFile(join(src, `f${i}.txt`), `${i}\n`);
    env = { KIWI_DATA_DIR: dataDir, KIWI_PASSWORD: 'pw', KIWI_REPOSITORY: join(work, 'repo'), RECORD_FILE: record, DB_PORT: String(server.port), SLOW_MS: '400' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    cfg = join(work, 'kiwi.json');
    await writeFile(
      cfg,
      JSON.stringify({
        plugins: [
          {
            name: 'mysql-state',
            options: { ...server.params(), mode: 'service', stopCommand: server.stopCommand, startCommand: server.startCommand, waitTimeout: '30s', connectTimeout: '5s' },
          },
        ],
        jobs: { db: { paths: [src], schedule: '0 0 1 1 *' } },
      }),
    );
    daemon = undefined;
    if (!(await server.isUp())) await server.start();
  });
  afterEach(async () => {
    killDaemon(daemon);
    if (!(await server.isUp())) await server.start();
    await removeDir(work);
  });

  const recorded = async () => (await readFile(record, 'utf8')).split('\n').filter(Boolean);
  const waitFor = (pattern: RegExp, ms?: number) => eventually(async () => (await recorded()).some((l) => pattern.test(l)), String(pattern), ms);
  const journal = async () => (existsSync(join(dataDir, 'recovery')) ? (await readdir(join(dataDir, 'recovery'))).filter((f) => f.endsWith('.json')) : []);
  const history = async (job: string) =>
    (await readFile(join(dataDir, 'daemon', 'history', `${job}.jsonl`), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);

  it('acceptance 2: SIGTERM to the daemon\'s process group twice, 1 s apart, during a job: onBackupStop completes, MySQL runs afterwards, the run is interrupted, exit 0', async () => {
    // onBackupStop takes 2.5 s: the second SIGTERM arrives while it runs.
    daemon = await startDaemon(['--config', cfg, '--stop-timeout', '90'], { ...env, STOP_MS: '2500' }, dataDir);
    const run = await daemon.api('/api/jobs/db/run', { method: 'POST' });
    expect(run.status).toBe(202);
    await waitFor(/^file:down$/); // mysql-state stopped the server; the backup is reading
    expect(await server.isUp()).toBe(false);
    process.kill(-daemon.child.pid!, 'SIGTERM');
    await sleep(1000);
    process.kill(-daemon.child.pid!, 'SIGTERM');
    const exit = await daemon.exited;
    expect(exit.code, daemon.stderr()).toBe(0);
    expect(await server.isUp()).toBe(true);
    const lines = await recorded();
    expect(lines.filter((l) => l.startsWith('file:')).length).toBeLessThan(12); // really interrupted mid-way
    expect(lines).toContain('stop:interrupted:up'); // onBackupStop ran, with MySQL back already
    expect(lines.at(-1)).toBe('stop-done'); // and finished, despite the second SIGTERM
    expect(daemon.stderr()).toMatch(/SIGTERM again: already stopping/);
    const last = (await history('db')).at(-1)!;
    expect(last).toMatchObject({ id: run.body.run_id, status: 'interrupted' });
    expect(await journal()).toEqual([]); // nothing left to undo
  });

  it('acceptance 3: kill -9 while mysql-state has MySQL stopped; the next kiwi daemon starts MySQL before anything else and says so', async () => {
    daemon = await startDaemon(['--config', cfg], env, dataDir);
    const run = await daemon.api('/api/jobs/db/run', { method: 'POST' });
    expect(run.status).toBe(202);
    await waitFor(/^file:down$/);
    expect(await journal()).toHaveLength(1);
    process.kill(daemon.child.pid!, 'SIGKILL'); // the worst moment: MySQL is down
    await daemon.exited;
    await sleep(500);
    expect(await server.isUp()).toBe(false);
    expect(await recorded()).not.toContain('stop:interrupted:up');

    await writeFile(record, '');
    const again = await startDaemon(['--config', cfg], env, dataDir);
    daemon = again;
    expect(await server.isUp()).toBe(true);
    const lines = again.lines();
    const recovery = lines.findIndex((l) => l.message_type === 'recovery');
    const started = lines.findIndex((l) => l.message_type === 'daemon_started');
    expect(recovery).toBeGreaterThanOrEqual(0);
    expect(recovery).toBeLessThan(started);
    expect(lines[recovery]).toMatchObject({ plugin: 'mysql-state', action: 'start-service', status: 'done', message: expect.stringMatching(/^started MySQL/) });
    const said = lines.filter((l) => l.message_type === 'log').map((l) => String(l.message));
    expect(said.some((m) => /recovery: mysql-state "start-service" \(registered .* by pid \d+\) was not cleared/.test(m))).toBe(true);
    // Before anything else: onServerStart already saw the server up.
    expect(await recorded()).toEqual(['server-start:up']);
    expect(await journal()).toEqual([]);
    // The run the kill cut short is recorded as interrupted; the next run's result lists the recovery.
    const killed = (await history('db')).filter((r) => r.id === run.body.run_id).at(-1)!;
    expect(killed.status).toBe('interrupted');
    const next = await again.api('/api/jobs/db/run', { method: 'POST' });
    expect(next.status).toBe(202);
    const done = await eventually(async () => (await history('db')).find((r) => r.id === next.body.run_id && r.status !== 'running'), 'the next run');
    expect(done.status).toBe('success');
    expect(done.recovered).toEqual([expect.objectContaining({ plugin: 'mysql-state', action: 'start-service', status: 'done' })]);
    expect((await again.stop()).code).toBe(0);
    expect(await server.isUp()).toBe(true);
  });

  it('kill -9 while MySQL is stopped, then `kiwi backup`: it starts MySQL first, says so, and records it in the summary', async () => {
    let child: import('node:child_process').ChildProcess | undefined;
    const first = runKiwi(['backup', src, '--config', cfg], { env, onSpawn: (c) => (child = c) });
    await waitFor(/^file:down$/);
    child!.kill('SIGKILL');
    await first;
    expect(await server.isUp()).toBe(false);
    expect(await journal()).toHaveLength(1);

    await writeFile(record, '');
    const r = await runKiwi(['backup', src, '--config', cfg, '--json'], { env: { ...env, SLOW_MS: '0' } });
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    const said = lines.findIndex((l) => l.message_type === 'log' && /recovery: mysql-state "start-service": started MySQL/.test(String(l.message)));
    expect(said).toBeGreaterThanOrEqual(0);
    expect((await recorded())[0]).toBe('server-start:up');
    expect(lines.find((l) => l.message_type === 'summary')!.recovered).toEqual([expect.objectContaining({ plugin: 'mysql-state', status: 'done' })]);
    expect(await server.isUp()).toBe(true);
    expect(await journal()).toEqual([]);
  });

  it('`pnpm kiwi backup` in service mode, its process group SIGTERMed (twice): MySQL is running afterwards', async () => {
    const child = spawn('pnpm', ['--silent', 'kiwi', 'backup', src, '--config', cfg], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.resume();
    try {
      await eventually(async () => (await recorded()).includes('file:down'), `the backup to run with MySQL stopped (${stderr})`, 120_000);
      process.kill(-child.pid!, 'SIGTERM');
      await sleep(1000);
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // gone already
      }
      await waitFor(/^stop:interrupted:up$/);
      await eventually(() => {
        try {
          process.kill(-child.pid!, 0);
          return false;
        } catch {
          return true;
        }
      }, 'the process group to exit');
      expect(await server.isUp()).toBe(true);
      expect(await journal()).toEqual([]);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }, 180_000);

  it('SIGHUP to `kiwi backup` in service mode: MySQL is running afterwards, exit 130', async () => {
    let child: import('node:child_process').ChildProcess | undefined;
    const run = runKiwi(['backup', src, '--config', cfg], { env, onSpawn: (c) => (child = c) });
    await waitFor(/^file:down$/);
    child!.kill('SIGHUP');
    const r = await run;
    expect(r.code, r.stderr).toBe(130);
    expect(await server.isUp()).toBe(true);
    expect(await recorded()).toContain('stop:interrupted:up');
  });

  it('--dry-run never stops the service', async () => {
    const r = await runKiwi(['backup', src, '--config', cfg, '--dry-run'], { env: { ...env, SLOW_MS: '0' } });
    expect(r.code, r.stderr).toBe(0);
    const files = (await recorded()).filter((l) => l.startsWith('file:'));
    expect(files.length).toBe(12);
    expect(files.every((l) => l === 'file:up')).toBe(true);
  });
});
