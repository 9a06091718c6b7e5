import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { join } from 'node:path';
import { writeFile, mkdir, readFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, jsonLines, snapshotList } from './helpers.js';

/** A data-directory plug-in with all four hooks that appends what happens to $RECORD_FILE. */
const RECORDER = `
import { appendFileSync } from 'node:fs';
const rec = (line) => appendFileSync(process.env.RECORD_FILE, line + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onServerStart(ctx, next) {
    rec('serverStart');
    if (process.env.FAIL_HOOK === 'onServerStart') throw new Error('boom in server start');
    await next();
  },
  async onBackupStart(ctx, next) {
    rec('backupStart:before');
    if (process.env.FAIL_HOOK === 'onBackupStart') throw new Error('boom in start');
    try { await next(); } finally { rec('backupStart:after'); }
  },
  async onFile(ctx, next) {
    if (ctx.file.type === 'file') rec('file:' + ctx.file.path.split('/').pop());
    if (process.env.FAIL_HOOK === 'onFile' && ctx.file.path.endsWith('b.txt')) throw new Error('boom in file');
    if (process.env.SLOW_FILES) await sleep(Number(process.env.SLOW_FILES));
    await next();
  },
  async onBackupStop(ctx, next) {
    rec('backupStop:' + ctx.backup.status + (ctx.backup.error ? ':' + ctx.backup.error.message : ''));
    await next();
    if (process.env.FAIL_HOOK === 'onBackupStop') throw new Error('boom in stop');
  },
};
`;

describe('data-directory plug-in with all four hooks', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;
  let record: string;

  beforeEach(async () => {
    work = await tempDir();
    src = join(work, 'src');
    await mkdir(src);
    for (const n of ['a.txt', 'b.txt', 'c.txt', 'd.txt']) await writeFile(join(src, n), n);
    const dataDir = join(work, 'data');
    await mkdir(join(dataDir, 'plugins', 'recorder'), { recursive: true });
    await writeFile(join(dataDir, 'plugins', 'recorder', 'index.mjs'), RECORDER);
    record = join(work, 'record.txt');
    await writeFile(record, '');
    env = { KIWI_DATA_DIR: dataDir, KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw', RECORD_FILE: record };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
  });
  afterEach(() => removeDir(work));

  const recorded = async () => (await readFile(record, 'utf8')).trim().split('\n').filter(Boolean);

  it('runs the hooks in order around a successful backup', async () => {
    const r = await runKiwi(['backup', src], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await recorded()).toEqual([
      'serverStart',
      'backupStart:before',
      'file:a.txt',
      'file:b.txt',
      'file:c.txt',
      'file:d.txt',
      'backupStart:after',
      'backupStop:success',
    ]);
  });

  it('runs onBackupStop after a failed backup, and names the plug-in and hook', async () => {
    const r = await runKiwi(['backup', src], { env: { ...env, FAIL_HOOK: 'onFile' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/recorder/);
    expect(r.stderr).toMatch(/onFile/);
    const lines = await recorded();
    expect(lines.slice(0, 4)).toEqual(['serverStart', 'backupStart:before', 'file:a.txt', 'file:b.txt']);
    expect(lines).toContain('backupStart:after');
    expect(lines.at(-1)).toMatch(/^backupStop:failure/);
    expect(snapshotList((await runKiwi(['snapshots', '--json'], { env })).stdout)).toEqual([]);
  });

  it('a plug-in that throws in onServerStart stops the run with its name and hook, before any backup', async () => {
    const r = await runKiwi(['backup', src], { env: { ...env, FAIL_HOOK: 'onServerStart' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/recorder/);
    expect(r.stderr).toMatch(/onServerStart/);
    expect(r.stderr).toMatch(/boom in server start/);
    expect(await recorded()).toEqual(['serverStart']);
  });

  it('runs onBackupStop when onBackupStart throws', async () => {
    const r = await runKiwi(['backup', src], { env: { ...env, FAIL_HOOK: 'onBackupStart' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/recorder.*onBackupStart|onBackupStart.*recorder/);
    expect((await recorded()).at(-1)).toMatch(/^backupStop:failure/);
  });

  it('reports an onBackupStop failure without hiding the saved snapshot', async () => {
    const r = await runKiwi(['backup', src, '--json'], { env: { ...env, FAIL_HOOK: 'onBackupStop' } });
    const lines = jsonLines(r.stdout);
    expect(lines.find((l) => l.message_type === 'summary')?.snapshot_id).toBeTruthy();
    expect(JSON.stringify(lines.filter((l) => l.message_type === 'error' || l.message_type === 'log'))).toMatch(/boom in stop/);
    expect((await recorded()).at(-1)).toBe('backupStop:success');
  });

  it('runs onBackupStop after SIGINT, exits 130 and saves no snapshot', async () => {
    let sent = false;
    const r = await runKiwi(['backup', src], {
      env: { ...env, SLOW_FILES: '400' },
      onSpawn: (child) => {
        const timer = setInterval(async () => {
          if (sent) return;
          const text = await readFile(record, 'utf8');
          if (text.includes('file:a.txt')) {
            sent = true;
            clearInterval(timer);
            child.kill('SIGINT');
          }
        }, 20);
        child.on('close', () => clearInterval(timer));
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    const lines = await recorded();
    expect(lines).toContain('backupStart:after');
    expect(lines.at(-1)).toMatch(/^backupStop:interrupted/);
    const snaps = await runKiwi(['snapshots', '--json'], { env });
    expect(snapshotList(snaps.stdout)).toEqual([]);
  });

  it('kiwi plugins lists hooks and reports a misnamed hook with the right name', async () => {
    await mkdir(join(env.KIWI_DATA_DIR!, 'plugins', 'typo'), { recursive: true });
    await writeFile(join(env.KIWI_DATA_DIR!, 'plugins', 'typo', 'index.mjs'), 'export default { async onStartBackup(ctx, next) { await next(); } };');
    const r = await runKiwi(['plugins'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/recorder/);
    expect(r.stdout).toMatch(/onServerStart, onBackupStart, onFile, onBackupStop/);
    expect(r.stderr).toMatch(/onStartBackup/);
    expect(r.stderr).toMatch(/onBackupStart/);
  });
});
