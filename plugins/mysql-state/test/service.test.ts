/**
 * Service mode against a stand-in server (no MariaDB needed): a process named `mariadbd` that answers every
 * connection with MySQL's "Too many connections" error (so the plug-in sees it up without logging in), writes
 * its pid file, and on SIGTERM stops listening at once but exits only `LINGER_MS` later, like a server
 * flushing its files after it stopped accepting connections.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadTestPlugins, runBackupWithPlugins } from '@kiwi-backup/core/testing';
import mysqlState, { detectServiceCommands, type ServiceProbe } from '../src/index.js';

const LINGER_MS = 1500;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const FAKE_SERVER = `
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
const [port, pidFile, linger] = process.argv.slice(2);
const message = Buffer.from('Too many connections');
const payload = Buffer.concat([Buffer.from([0xff, 0x10, 0x04]), Buffer.from('#08004'), message]);
const packet = Buffer.concat([Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, 0, 0]), payload]);
const server = createServer((s) => { s.on('error', () => {}); s.end(packet); });
server.listen(Number(port), '127.0.0.1', () => writeFileSync(pidFile, String(process.pid)));
process.on('SIGTERM', () => { server.close(); setTimeout(() => process.exit(0), Number(linger)); });
`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSyncSafe(`/proc/${pid}/stat`);
    return !stat || !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}
function readFileSyncSafe(p: string): string | undefined {
  try {
    return spawnSync('cat', [p], { encoding: 'utf8' }).stdout;
  } catch {
    return undefined;
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.once('data', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(2000, () => done(false));
  });
}

describe.runIf(process.platform === 'linux')('service mode (stand-in server)', () => {
  let dir: string;
  let dataDir: string;
  let port: number;
  let pidFile: string;
  let startCommand: string[];
  let stopCommand: string[];
  let marker: string;

  async function startFake(): Promise<number> {
    const r = spawnSync('/bin/sh', startCommand);
    expect(r.status).toBe(0);
    for (let i = 0; i < 100; i++) {
      if (existsSync(pidFile) && (await answers(port))) return Number(await readFile(pidFile, 'utf8'));
      await sleep(50);
    }
    throw new Error('the stand-in server did not start');
  }
  const currentPid = async () => Number(await readFile(pidFile, 'utf8'));

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiwi-mysql-service-'));
    dataDir = join(dir, 'data');
    port = await freePort();
    pidFile = join(dir, 'server.pid');
    marker = join(dir, 'commands.log');
    await writeFile(join(dir, 'fake.mjs'), FAKE_SERVER);
    // Named mariadbd, as the real server's process is (the plug-in checks the pid file's process name).
    await symlink(process.execPath, join(dir, 'mariadbd'));
    startCommand = ['-c', `echo start >> ${marker}; ${join(dir, 'mariadbd')} ${join(dir, 'fake.mjs')} ${port} ${pidFile} ${LINGER_MS} </dev/null >/dev/null 2>&1 &`];
    // Like `kill`-style stop scripts, it returns before the server has exited.
    stopCommand = ['-c', `echo stop >> ${marker}; kill -TERM $(cat ${pidFile})`];
    await startFake();
  });
  afterEach(async () => {
    try {
      process.kill(await currentPid(), 'SIGKILL');
    } catch {
      // gone
    }
    await rm(dir, { recursive: true, force: true });
  });

  const options = (extra: Record<string, unknown> = {}) => ({
    mode: 'service',
    host: '127.0.0.1',
    port,
    user: 'kiwi',
    pidFile,
    stopCommand: ['/bin/sh', ...stopCommand],
    startCommand: ['/bin/sh', ...startCommand],
    waitTimeout: '10s',
    connectTimeout: '2s',
    ...extra,
  });
  const plugin = (extra: Record<string, unknown> = {}) => [{ name: 'mysql-state', module: mysqlState, options: options(extra) }];
  const commands = async () => (existsSync(marker) ? (await readFile(marker, 'utf8')).split('\n').filter(Boolean) : []);

  it('the backup reads files only after the server process has exited, not merely stopped answering', async () => {
    const pid = await currentPid();
    let processDuring: boolean | undefined;
    let answersDuring: boolean | undefined;
    const run = await runBackupWithPlugins(plugin(), {
      dataDir,
      body: async () => {
        processDuring = alive(pid);
        answersDuring = await answers(port);
      },
    });
    expect(run.startError).toBeUndefined();
    expect(answersDuring).toBe(false);
    expect(processDuring).toBe(false);
    expect(run.logs.map((l) => l.message).join('\n')).toContain(`MySQL has stopped (process ${pid} exited)`);
    expect(await answers(port)).toBe(true);
    expect(await commands()).toEqual(['start', 'stop', 'start']);
    expect(await readdir(join(dataDir, 'recovery'))).toEqual([]); // the journal entry was cleared
  });

  it('--dry-run never stops the service', async () => {
    let answersDuring: boolean | undefined;
    const run = await runBackupWithPlugins(plugin(), { dataDir, dryRun: true, body: async () => void (answersDuring = await answers(port)) });
    expect(run.startError).toBeUndefined();
    expect(answersDuring).toBe(true);
    expect(await commands()).toEqual(['start']); // only the test's own start
    expect(run.metadata['mysql-state']).toMatchObject({ dryRun: true });
  });

  it('a journal that cannot be written aborts the backup before anything is stopped', async () => {
    const file = join(dir, 'not-a-dir');
    await writeFile(file, '');
    const run = await runBackupWithPlugins(plugin(), { dataDir: file });
    expect(run.status).toBe('aborted');
    expect(run.bodyRan).toBe(false);
    expect(run.error?.message).toMatch(/MySQL was not stopped: cannot write the recovery journal/);
    expect(await commands()).toEqual(['start']);
    expect(await answers(port)).toBe(true);
  });

  it('after a crash while the server is stopped, the next start starts it (once) and says so', async () => {
    // The backup runs; in its middle (server stopped) we take the journal as a `kill -9` would leave it.
    let saved: Array<{ name: string; text: string }> = [];
    await runBackupWithPlugins(plugin(), {
      dataDir,
      body: async () => {
        const rdir = join(dataDir, 'recovery');
        saved = await Promise.all((await readdir(rdir)).map(async (name) => ({ name, text: await readFile(join(rdir, name), 'utf8') })));
      },
    });
    expect(saved).toHaveLength(1);
    const entry = JSON.parse(saved[0]!.text);
    expect(entry).toMatchObject({ plugin: 'mysql-state', action: 'start-service', data: { target: `127.0.0.1:${port} as user kiwi` } });
    expect(JSON.stringify(entry)).not.toMatch(/password/i);
    // The state after kill -9: the server down, the entry there, its process gone.
    const pid = await currentPid();
    process.kill(pid, 'SIGTERM');
    while (alive(pid)) await sleep(50);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(join(dataDir, 'recovery', saved[0]!.name), JSON.stringify({ ...entry, pid: dead, processStart: undefined }));
    const before = (await commands()).length;

    const runtime = await loadTestPlugins(plugin(), { dataDir });
    const outcomes = await runtime.recover();
    expect(outcomes).toEqual([expect.objectContaining({ plugin: 'mysql-state', action: 'start-service', status: 'done' })]);
    expect(outcomes[0]!.message).toMatch(/^started MySQL/);
    expect(await answers(port)).toBe(true);
    expect((await commands()).slice(before)).toEqual(['start']);
    expect(await readdir(join(dataDir, 'recovery'))).toEqual([]);
    // Nothing twice: a second start finds nothing to do.
    expect(await runtime.recover()).toEqual([]);
    expect((await commands()).slice(before)).toEqual(['start']);
  });

  it('an entry left after the server was already started again runs no start command', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const id = 'a'.repeat(32);
    await rm(join(dataDir, 'recovery'), { recursive: true, force: true });
    await (await import('node:fs/promises')).mkdir(join(dataDir, 'recovery'), { recursive: true });
    await writeFile(
      join(dataDir, 'recovery', `${id}.json`),
      JSON.stringify({ id, plugin: 'mysql-state', action: 'start-service', data: { startCommand: ['/bin/sh', ...startCommand] }, registeredAt: new Date().toISOString(), pid: dead, host: (await import('node:os')).hostname() }),
    );
    const runtime = await loadTestPlugins(plugin(), { dataDir });
    const outcomes = await runtime.recover();
    expect(outcomes[0]).toMatchObject({ status: 'done', message: expect.stringMatching(/already answers.*nothing to start/) });
    expect(await commands()).toEqual(['start']);
  });
});

describe('default service commands', () => {
  const probe = (files: string[], bins: string[]): ServiceProbe => ({
    exists: (p) => files.includes(p),
    which: (n) => (bins.includes(n) ? `/usr/bin/${n}` : undefined),
  });

  it('Debian/Ubuntu without systemd (a container): service mariadb stop/start', () => {
    // Debian 12 ships /etc/init.d/mariadb only; `service mysql stop` fails there.
    expect(detectServiceCommands(undefined, probe(['/etc/init.d/mariadb', '/lib/systemd/system/mariadb.service', '/lib/systemd/system/mysql.service'], ['service', 'systemctl']))).toEqual({
      ok: true, stop: ['service', 'mariadb', 'stop'], start: ['service', 'mariadb', 'start'], how: 'service mariadb',
    });
  });

  it('Debian/Ubuntu with systemd: systemctl stop mariadb', () => {
    const r = detectServiceCommands(undefined, probe(['/run/systemd/system', '/lib/systemd/system/mariadb.service', '/lib/systemd/system/mysql.service'], ['systemctl', 'service']));
    expect(r).toMatchObject({ ok: true, stop: ['systemctl', 'stop', 'mariadb'], start: ['systemctl', 'start', 'mariadb'] });
  });

  it('elsewhere (MySQL packages): the mysql unit, or mysqld', () => {
    expect(detectServiceCommands(undefined, probe(['/run/systemd/system', '/usr/lib/systemd/system/mysql.service'], ['systemctl']))).toMatchObject({ stop: ['systemctl', 'stop', 'mysql'] });
    expect(detectServiceCommands(undefined, probe(['/run/systemd/system', '/etc/systemd/system/mysqld.service'], ['systemctl']))).toMatchObject({ stop: ['systemctl', 'stop', 'mysqld'] });
    expect(detectServiceCommands(undefined, probe(['/etc/init.d/mysql'], []))).toMatchObject({ stop: ['/etc/init.d/mysql', 'stop'] });
  });

  it('a configured name wins', () => {
    expect(detectServiceCommands('mariadb@main', probe(['/run/systemd/system'], ['systemctl']))).toMatchObject({ stop: ['systemctl', 'stop', 'mariadb@main'] });
    expect(detectServiceCommands('db', probe([], ['service']))).toMatchObject({ stop: ['service', 'db', 'stop'] });
  });

  it('nothing found: a clear error naming the options', () => {
    const r = detectServiceCommands(undefined, probe([], ['service']));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/no mariadb, mysql, mysqld init script was found.*"service".*"stopCommand" and "startCommand"/);
  });

  it('an invalid service name is refused when the plug-in loads', async () => {
    await expect(loadTestPlugins([{ name: 'mysql-state', module: mysqlState, options: { mode: 'service', service: 'x; rm -rf /' } }])).rejects.toThrow(/option "service" must be a service or unit name/);
  });
});

