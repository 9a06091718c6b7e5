/**
 * An error nothing handles — a plug-in's promise rejected with no handler, or an exception thrown in one
 * of its timer callbacks — used to end the process on the spot with a stack trace, skipping onBackupStop
 * (which puts a stopped database back). Now it stops the backup as cleanly as a signal: the hooks run,
 * no snapshot is saved, the command fails with exit 1 naming the error, and the next backup works.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, runKiwi, snapshotList, tempDir } from './helpers.js';

const STRAY = `
import { appendFileSync } from 'node:fs';
const rec = (line) => appendFileSync(process.env.RECORD_FILE, line + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let fired = false;
export default {
  async onFile(ctx, next) {
    if (ctx.file.type === 'file' && !fired && process.env.STRAY) {
      fired = true;
      if (process.env.STRAY === 'reject') Promise.reject(new Error('stray rejection from the plug-in, password hunter2-not-secret'));
      else setTimeout(() => { throw new Error('stray throw from a timer of the plug-in'); }, 0);
    }
    await sleep(Number(process.env.SLOW_MS ?? 0));
    await next();
  },
  async onBackupStop(ctx, next) {
    rec('stop ' + ctx.backup.status);
    await next();
  },
};
`;

describe('errors that nothing handles', () => {
  let work: string;
  let record: string;
  let src: string;
  let env: NodeJS.ProcessEnv;

  beforeEach(async () => {
    work = await tempDir('kiwi-stray-');
    const dataDir = join(work, 'data');
    record = join(work, 'record.txt');
    src = join(work, 'src');
    await writeFile(record, '');
    await mkdir(join(dataDir, 'plugins', 'stray'), { recursive: true });
    await writeFile(join(dataDir, 'plugins', 'stray', 'index.mjs'), STRAY);
    await mkdir(src);
    for (let i = 0; i < 20; i++) await writeFile(join(src, `f${i}.txt`), `${i}\n`);
    env = { KIWI_DATA_DIR: dataDir, KIWI_PASSWORD: 'pw', KIWI_REPOSITORY: join(work, 'repo'), RECORD_FILE: record, SLOW_MS: '50' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
  });
  afterEach(async () => {
    await removeDir(work);
  });

  const recorded = async () => (await readFile(record, 'utf8')).split('\n').filter(Boolean);

  for (const kind of ['reject', 'throw'] as const) {
    it(`a plug-in ${kind === 'reject' ? 'promise rejected with no handler' : 'exception thrown in a timer'} stops the backup cleanly: hooks run, exit 1, no stack, the next backup works`, async () => {
      const r = await runKiwi(['backup', src], { env: { ...env, STRAY: kind } });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(kind === 'reject' ? /internal error: stray rejection from the plug-in/ : /internal error: stray throw from a timer of the plug-in/);
      expect(r.stderr).toMatch(/stopping cleanly; onBackupStop hooks still run/);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      // The hook ran (the database would be back), and the backup saved nothing.
      expect((await recorded()).filter((l) => l.startsWith('stop '))).toHaveLength(1);
      const snaps = await runKiwi(['snapshots', '--json'], { env });
      expect(snaps.code, snaps.stderr).toBe(0);
      expect(snapshotList(snaps.stdout)).toEqual([]);
      // The repository is consistent and the next run recovers.
      const check = await runKiwi(['check'], { env });
      expect(check.code, check.stdout + check.stderr).toBe(0);
      const again = await runKiwi(['backup', src], { env });
      expect(again.code, again.stderr).toBe(0);
    });
  }

  it('with --json, the failure is a JSON error line with exit code 1', async () => {
    const r = await runKiwi(['backup', src, '--json'], { env: { ...env, STRAY: 'reject' } });
    expect(r.code, r.stderr).toBe(1);
    const errors = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { message_type: string; message?: string; exit_code?: number })
      .filter((m) => m.message_type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ exit_code: 1 });
    expect(errors[0]!.message).toMatch(/internal error: stray rejection/);
  });
});
