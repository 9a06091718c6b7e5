/**
 * Issue #4 acceptance, through the built `kiwi` CLI: a new user drops `pre_backup.sh` / `post_backup.sh` into
 * `<datadir>/plugins/script-launcher/` (no module of their own: the bundled plug-in runs them) and runs
 * `kiwi backup <dir>`.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { join } from 'node:path';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { runKiwi, tempDir, removeDir, jsonLines, snapshotList } from './helpers.js';

const PASSWORD = 'pw-7f3a-never-in-script-env';

/** Each script appends its hook to $ORDER_FILE and writes its whole environment (NUL-separated) to $ENV_DIR/<hook>.env. */
const recordingScript = (extra = '') => `#!/bin/sh
echo "$KIWI_HOOK" >> "$ORDER_FILE"
env -0 > "$ENV_DIR/$KIWI_HOOK.env"
${extra}
`;

/** A data-dir plug-in whose onFile throws on `boom.txt` (a backup that fails mid-way). */
const FAILER = `export default { async onFile(ctx, next) { if (ctx.file.path.endsWith('boom.txt')) throw new Error('disk read error on boom.txt'); await next(); } };`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('script-launcher through the kiwi CLI (scripts in <datadir>/plugins/script-launcher/)', () => {
  let work: string;
  let dataDir: string;
  let scripts: string;
  let srcA: string;
  let srcB: string;
  let envDir: string;
  let orderFile: string;
  let repo: string;
  let env: NodeJS.ProcessEnv;

  beforeEach(async () => {
    work = await tempDir('kiwi-cli-scripts-');
    dataDir = join(work, 'data');
    scripts = join(dataDir, 'plugins', 'script-launcher');
    await mkdir(scripts, { recursive: true });
    srcA = join(work, 'src a');
    srcB = join(work, 'src-b');
    await mkdir(srcA);
    await mkdir(srcB);
    await writeFile(join(srcA, 'one.txt'), 'one');
    await writeFile(join(srcB, 'two.txt'), 'two');
    envDir = join(work, 'env');
    await mkdir(envDir);
    orderFile = join(work, 'order.txt');
    repo = join(work, 'repo');
    env = { KIWI_DATA_DIR: dataDir, KIWI_REPOSITORY: repo, KIWI_PASSWORD: PASSWORD, ORDER_FILE: orderFile, ENV_DIR: envDir };
    const init = await runKiwi(['init'], { env });
    expect(init.code, init.stderr).toBe(0);
  });
  afterEach(() => removeDir(work));

  async function script(name: string, text: string): Promise<void> {
    await writeFile(join(scripts, name), text);
    await chmod(join(scripts, name), 0o755);
  }
  const order = async () => (existsSync(orderFile) ? (await readFile(orderFile, 'utf8')).trim().split('\n').filter(Boolean) : []);
  async function scriptEnv(hook: string): Promise<Record<string, string>> {
    const text = await readFile(join(envDir, `${hook}.env`), 'utf8');
    const out: Record<string, string> = {};
    for (const entry of text.split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return out;
  }
  async function snapshotIds(): Promise<string[]> {
    const r = await runKiwi(['snapshots', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    return snapshotList(r.stdout).map((l) => l.id);
  }

  it('runs pre_backup and post_backup in order, with the backup in KIWI_* and without KIWI_PASSWORD', async () => {
    await script('pre_backup.sh', recordingScript('echo "pre says hello"'));
    await script('post_backup.sh', recordingScript());
    const r = await runKiwi(['backup', srcA, srcB, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    const summary = lines.find((l) => l.message_type === 'summary')!;
    expect(summary.status).toBe('success');
    const snapshotId = String(summary.snapshot_id);
    expect(snapshotId).toMatch(/^[0-9a-f]{64}$/);

    expect(await order()).toEqual(['pre_backup', 'post_backup']);
    const pre = await scriptEnv('pre_backup');
    const post = await scriptEnv('post_backup');
    expect(pre).toMatchObject({
      KIWI_HOOK: 'pre_backup',
      KIWI_STATUS: 'running',
      KIWI_SNAPSHOT_ID: '',
      KIWI_SOURCES: `${srcA}\n${srcB}`,
      KIWI_REPOSITORY: repo,
      KIWI_DATA_DIR: dataDir,
      KIWI_PLUGIN_DIR: scripts,
      KIWI_DRY_RUN: '0',
    });
    expect(post).toMatchObject({
      KIWI_HOOK: 'post_backup',
      KIWI_STATUS: 'success',
      KIWI_SNAPSHOT_ID: snapshotId,
      KIWI_SOURCES: `${srcA}\n${srcB}`,
      KIWI_REPOSITORY: repo,
      KIWI_ERROR: '',
    });
    expect(pre.KIWI_BACKUP_ID).toBeTruthy();
    expect(post.KIWI_BACKUP_ID).toBe(pre.KIWI_BACKUP_ID);
    expect(JSON.parse(post.KIWI_STATS!)).toMatchObject({ totalFiles: 2 });
    // Kiwi's own secret never reaches the scripts, under any name.
    for (const e of [pre, post]) {
      expect(e).not.toHaveProperty('KIWI_PASSWORD');
      expect(Object.values(e)).not.toContain(PASSWORD);
    }
    // The scripts' output is streamed into Kiwi's log.
    const logs = lines.filter((l) => l.message_type === 'log').map((l) => String(l.message));
    expect(logs).toContain('pre_backup: pre says hello');
    expect(await snapshotIds()).toEqual([snapshotId]);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });

  it('a pre_backup that exits 3 aborts the backup: the error names the script and exit code, no snapshot, post still runs', async () => {
    await script('pre_backup.sh', recordingScript('echo "backup disk is not mounted" >&2\nexit 3'));
    await script('post_backup.sh', recordingScript());
    const r = await runKiwi(['backup', srcA], { env });
    expect(r.code).toBe(1);
    const preFile = join(scripts, 'pre_backup.sh');
    expect(r.stderr).toContain(`pre_backup script ${preFile} failed with exit code 3`);
    expect(r.stderr).toContain('backup disk is not mounted'); // the last lines of its output
    expect(r.stderr).toMatch(/aborted/);
    expect(await snapshotIds()).toEqual([]);
    expect(await order()).toEqual(['pre_backup', 'post_backup']);
    const post = await scriptEnv('post_backup');
    expect(post.KIWI_STATUS).toBe('aborted');
    expect(post.KIWI_SNAPSHOT_ID).toBe('');
    expect(post.KIWI_ERROR).toContain('failed with exit code 3');
  });

  it('post_backup runs after a backup that fails mid-way, with KIWI_STATUS=failure and the error', async () => {
    await script('pre_backup.sh', recordingScript());
    await script('post_backup.sh', recordingScript());
    await mkdir(join(dataDir, 'plugins', 'failer'));
    await writeFile(join(dataDir, 'plugins', 'failer', 'index.mjs'), FAILER);
    await writeFile(join(srcA, 'boom.txt'), 'x');
    const r = await runKiwi(['backup', srcA], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('disk read error on boom.txt');
    expect(await order()).toEqual(['pre_backup', 'post_backup']);
    const post = await scriptEnv('post_backup');
    expect(post.KIWI_STATUS).toBe('failure');
    expect(post.KIWI_ERROR).toContain('disk read error on boom.txt');
    expect(await snapshotIds()).toEqual([]);
  });

  it('a failing post_backup is reported without hiding the saved snapshot', async () => {
    await script('post_backup.sh', recordingScript('echo "notify failed"\nexit 7'));
    const r = await runKiwi(['backup', srcA, '--json'], { env });
    const lines = jsonLines(r.stdout);
    const snapshotId = lines.find((l) => l.message_type === 'summary')?.snapshot_id;
    expect(snapshotId).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stdout + r.stderr).toContain('failed with exit code 7');
    expect(r.stdout + r.stderr).toContain(`snapshot ${String(snapshotId)}`);
    expect(await snapshotIds()).toEqual([snapshotId]);
  });

  it('a hanging pre_backup is killed at the timeout with everything it started, and the backup is aborted', async () => {
    // The timeout comes from the config's pluginOptions (the folder keeps its place as a data-dir plug-in).
    const config = join(work, 'kiwi.json');
    await writeFile(config, JSON.stringify({ pluginOptions: { 'script-launcher': { timeout: '1s', killGrace: '300ms' } } }));
    const childPidFile = join(work, 'child.pid');
    await script('pre_backup.sh', recordingScript(`sleep 300 &\necho $! > "${childPidFile}"\nwait`));
    await script('post_backup.sh', recordingScript());
    const started = Date.now();
    const r = await runKiwi(['backup', srcA, '--config', config], { env, timeoutMs: 30_000 });
    const took = Date.now() - started;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('timed out after 1 s and was killed with its process group');
    expect(took).toBeLessThan(15_000);
    const childPid = Number((await readFile(childPidFile, 'utf8')).trim());
    expect(childPid).toBeGreaterThan(0);
    for (let i = 0; i < 40 && alive(childPid); i++) await sleep(50);
    expect(alive(childPid)).toBe(false); // the script's background child went with it
    expect(await order()).toEqual(['pre_backup', 'post_backup']);
    expect((await scriptEnv('post_backup')).KIWI_STATUS).toBe('aborted');
    expect(await snapshotIds()).toEqual([]);
  });

  it('a missing script is logged and the backup goes on', async () => {
    await script('post_backup.sh', recordingScript());
    const r = await runKiwi(['backup', srcA], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`no pre_backup script (looked for ${join(scripts, 'pre_backup.sh')})`);
    expect(await order()).toEqual(['post_backup']);
    expect((await snapshotIds()).length).toBe(1);
  });

  it('kiwi plugins lists script-launcher (the bundled plug-in for a folder of scripts) with its hooks', async () => {
    await script('pre_backup.sh', recordingScript());
    const r = await runKiwi(['plugins'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^script-launcher\b/m);
    expect(r.stdout).toMatch(/hooks: onServerStart, onBackupStart, onBackupStop/);
    const json = await runKiwi(['plugins', '--json'], { env });
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).toContain('script-launcher');
    expect(json.stdout).toContain('onBackupStart');
  });
});
