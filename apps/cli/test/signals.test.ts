/**
 * Signals as service managers send them: a second SIGTERM/SIGINT, or a SIGHUP, never skips onBackupStop;
 * only --stop-timeout cuts it short. The data-directory plug-in `probe` records the backup, and its
 * onBackupStop takes $STOP_MS to finish (like a database that takes a while to start again).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeDir, runKiwi, sleep, tempDir, type RunResult } from './helpers.js';
import { eventually, killDaemon, startDaemon, type DaemonProcess } from './daemon-helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const PROBE = `
import { appendFileSync, open } from 'node:fs';
const rec = (line) => appendFileSync(process.env.RECORD_FILE, line + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onFile(ctx, next) {
    if (ctx.file.type === 'file') { rec('file'); await sleep(Number(process.env.SLOW_MS ?? 0)); }
    await next();
  },
  async onBackupStop(ctx, next) {
    rec('stop-begin ' + ctx.backup.status);
    // A thread of libuv's pool stuck in a system call (a FIFO no one writes to; a hung NFS mount in life).
    if (process.env.BLOCK_FIFO) open(process.env.BLOCK_FIFO, 'r', () => undefined);
    await sleep(Number(process.env.STOP_MS ?? 0));
    rec('stop-done ' + ctx.backup.status);
    await next();
  },
};
`;

describe('signals', () => {
  let work: string;
  let dataDir: string;
  let record: string;
  let src: string;
  let env: NodeJS.ProcessEnv;
  let daemon: DaemonProcess | undefined;

  beforeEach(async () => {
    work = await tempDir('kiwi-signals-');
    dataDir = join(work, 'data');
    record = join(work, 'record.txt');
    src = join(work, 'src');
    await writeFile(record, '');
    await mkdir(join(dataDir, 'plugins', 'probe'), { recursive: true });
    await writeFile(join(dataDir, 'plugins', 'probe', 'index.mjs'), PROBE);
    await mkdir(src);
    for (let i = 0; i < 20; i++) await writeFile(join(src, `f${i}.txt`), `${i}\n`);
    env = { KIWI_DATA_DIR: dataDir, KIWI_PASSWORD: 'pw', KIWI_REPOSITORY: join(work, 'repo'), RECORD_FILE: record, SLOW_MS: '300', STOP_MS: '2500' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    daemon = undefined;
  });
  afterEach(async () => {
    killDaemon(daemon);
    await removeDir(work);
  });

  const recorded = async () => (await readFile(record, 'utf8')).split('\n').filter(Boolean);
  const waitFor = (line: string) => eventually(async () => (await recorded()).includes(line), `"${line}" in the record`);

  /** Start `kiwi backup` in its own process group; `signals` are sent to the group once a file was read. */
  async function backupWithSignals(signals: Array<[NodeJS.Signals, number]>, args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    let child: import('node:child_process').ChildProcess | undefined;
    const run = runKiwi(['backup', src, ...args], { env: { ...env, ...extraEnv }, onSpawn: (c) => (child = c) });
    await waitFor('file');
    for (const [sig, pause] of signals) {
      child!.kill(sig);
      await sleep(pause);
    }
    return run;
  }

  it('SIGTERM twice, 1 s apart: onBackupStop still completes, exit 130', async () => {
    const r = await backupWithSignals([['SIGTERM', 1000], ['SIGTERM', 0]]);
    expect(r.code, r.stderr).toBe(130);
    expect(await recorded()).toContain('stop-done interrupted');
    expect(r.stderr).toMatch(/SIGTERM received: stopping cleanly/);
    expect(r.stderr).toMatch(/SIGTERM again: already stopping; waiting for .* onBackupStop hooks/);
  });

  it('SIGINT three times quickly (an impatient Ctrl-C): onBackupStop still completes', async () => {
    const r = await backupWithSignals([['SIGINT', 50], ['SIGINT', 50], ['SIGINT', 0]]);
    expect(r.code).toBe(130);
    expect(await recorded()).toContain('stop-done interrupted');
  });

  it('SIGHUP (the terminal went away): a clean stop, onBackupStop completes', async () => {
    const r = await backupWithSignals([['SIGHUP', 0]]);
    expect(r.code, r.stderr).toBe(130);
    expect(await recorded()).toContain('stop-done interrupted');
    expect(r.stderr).toMatch(/SIGHUP received/);
  });

  it('--stop-timeout is the only thing that cuts onBackupStop short', async () => {
    const r = await backupWithSignals([['SIGTERM', 0]], ['--stop-timeout', '1'], { STOP_MS: '60000' });
    expect(r.code).toBe(130);
    const lines = await recorded();
    expect(lines).toContain('stop-begin interrupted');
    expect(lines).not.toContain('stop-done interrupted');
    expect(r.stderr).toMatch(/--stop-timeout of 1 s reached: exiting now/);
  });

  it('--stop-timeout exits even while a threadpool thread is stuck in a system call', async () => {
    const fifo = join(work, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const t0 = Date.now();
    const r = await backupWithSignals([['SIGTERM', 0]], ['--stop-timeout', '1'], { STOP_MS: '60000', BLOCK_FIFO: fifo });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/--stop-timeout of 1 s reached: exiting now/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('a bad --stop-timeout is a usage error', async () => {
    const r = await runKiwi(['backup', src, '--stop-timeout', 'soon'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--stop-timeout must be a positive number of seconds/);
  });

  it('`pnpm kiwi backup` whose process group gets SIGTERM (pnpm, the wrapper and the CLI all get it): onBackupStop completes', async () => {
    const child = spawn('pnpm', ['--silent', 'kiwi', 'backup', src], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.resume();
    try {
      await eventually(async () => (await recorded()).includes('file'), `the backup to start (pnpm: ${stderr})`, 120_000);
      process.kill(-child.pid!, 'SIGTERM');
      await sleep(1000);
      try {
        process.kill(-child.pid!, 'SIGTERM'); // as systemd does when the first one is not enough
      } catch {
        // the group may be gone already
      }
      await waitFor('stop-done interrupted');
      // Every process of the group exits once the hooks have run.
      await eventually(() => {
        try {
          process.kill(-child.pid!, 0);
          return false;
        } catch {
          return true;
        }
      }, 'the process group to exit');
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }, 180_000);

  it('the daemon: SIGTERM to its process group twice during a job; onBackupStop completes, the run is recorded as interrupted, exit 0', async () => {
    const cfg = join(work, 'kiwi.json');
    await writeFile(cfg, JSON.stringify({ jobs: { slow: { paths: [src], schedule: '0 0 1 1 *' } } }));
    daemon = await startDaemon(['--config', cfg], env, dataDir);
    const started = await daemon.api('/api/jobs/slow/run', { method: 'POST' });
    expect(started.status).toBe(202);
    await waitFor('file');
    process.kill(-daemon.child.pid!, 'SIGTERM');
    await sleep(1000);
    process.kill(-daemon.child.pid!, 'SIGTERM');
    const exit = await daemon.exited;
    expect(exit.code, daemon.stderr()).toBe(0);
    expect(await recorded()).toContain('stop-done interrupted');
    const history = (await readFile(join(dataDir, 'daemon', 'history', 'slow.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const last = history.at(-1);
    expect(last).toMatchObject({ id: started.body.run_id, status: 'interrupted' });
    expect(daemon.stderr()).toMatch(/SIGTERM again: already stopping/);
    expect(daemon.lines().some((l) => l.message_type === 'daemon_stopped')).toBe(true);
  });
});
