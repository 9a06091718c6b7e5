import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFile, mkdir, chmod, chown, readdir } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, jsonLines } from './helpers.js';
import { Repository } from '@kiwi-backup/core';
import { createLocalStorage } from '@kiwi-backup/storage-local';

const isRoot = process.getuid?.() === 0;
const NOBODY = { uid: 65534, gid: 65534 };

describe('exit codes and clear errors for bad input', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;

  beforeAll(async () => {
    work = await tempDir();
    src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'ok.txt'), 'fine');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw-one' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('missing repository → 10, naming it', async () => {
    const r = await runKiwi(['snapshots'], { env: { ...env, KIWI_REPOSITORY: join(work, 'nope') } });
    expect(r.code).toBe(10);
    expect(r.stderr).toContain(join(work, 'nope'));
  });

  it('wrong password → 12, and the password is never printed', async () => {
    const r = await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD: 'definitely-wrong-pw' } });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/password/i);
    expect(r.stderr + r.stdout).not.toContain('definitely-wrong-pw');
  });

  it('wrong password with --json → 12 and a JSON error line', async () => {
    const r = await runKiwi(['snapshots', '--json'], { env: { ...env, KIWI_PASSWORD: 'definitely-wrong-pw' } });
    expect(r.code).toBe(12);
    const lines = jsonLines(r.stdout);
    expect(lines.some((l) => l.message_type === 'error')).toBe(true);
  });

  it('unknown option → 2 with a suggestion', async () => {
    const r = await runKiwi(['backup', src, '--exlude', 'x'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--exlude.*did you mean --exclude/);
  });

  it('unknown command → 2', async () => {
    const r = await runKiwi(['bakup'], { env });
    expect(r.code).toBe(2);
  });

  it('a config file with a mistyped key → 2, naming the key and the file', async () => {
    const cfg = join(work, 'bad-config.json');
    await writeFile(cfg, JSON.stringify({ pluigns: [] }));
    const r = await runKiwi(['snapshots', '--config', cfg], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pluigns');
    expect(r.stderr).toContain('plugins');
    expect(r.stderr).toContain(cfg);
  });

  it('a broken config file → 2, naming the file and line', async () => {
    const cfg = join(work, 'broken.json');
    await writeFile(cfg, '{\n  "repository": "x",\n  oops\n}\n');
    const r = await runKiwi(['snapshots', '--config', cfg], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(cfg);
    expect(r.stderr).toMatch(/line 3/);
  });

  it('a lock held by another live process → 11; a stale lock is taken over', async () => {
    const repo = await Repository.open(createLocalStorage(env.KIWI_REPOSITORY!), 'pw-one');
    const lock = await repo.lock('exclusive');
    try {
      // --retry-lock 0: fail at once (by default a backup waits a few minutes for the lock).
      const r = await runKiwi(['backup', src, '--retry-lock', '0'], { env });
      expect(r.code).toBe(11);
      expect(r.stderr).toMatch(/lock/i);
      expect(r.stderr).toContain(String(process.pid));
    } finally {
      await lock.release();
      await repo.close();
    }
    const ok = await runKiwi(['backup', src], { env });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('an unreadable file: the backup goes on, reports it, exits 3', async () => {
    const dir = join(work, 'partial');
    await mkdir(join(dir, 'src'), { recursive: true });
    await writeFile(join(dir, 'src', 'readable.txt'), 'yes');
    await writeFile(join(dir, 'src', 'secret.txt'), 'no');
    await chmod(join(dir, 'src', 'secret.txt'), 0o000);
    await mkdir(join(dir, 'src', 'closed-dir'));
    await writeFile(join(dir, 'src', 'closed-dir', 'inner.txt'), 'hidden');
    await chmod(join(dir, 'src', 'closed-dir'), 0o000);
    const penv = { KIWI_DATA_DIR: join(dir, 'data'), KIWI_REPOSITORY: join(dir, 'repo'), KIWI_PASSWORD: 'pw', HOME: dir };
    if (isRoot) {
      // root reads everything: run Kiwi as nobody so the permissions bite.
      await chmod(dir, 0o755);
      await chown(dir, NOBODY.uid, NOBODY.gid);
      for (const e of await readdir(dir, { recursive: true })) await chown(join(dir, e), NOBODY.uid, NOBODY.gid).catch(() => {});
      await chmod(work, 0o755);
    }
    const asUser = isRoot ? NOBODY : undefined;
    expect((await runKiwi(['init'], { env: penv, ...(asUser ? { asUser } : {}) })).code).toBe(0);
    const r = await runKiwi(['backup', join(dir, 'src'), '--json'], { env: penv, ...(asUser ? { asUser } : {}) });
    expect(r.code, r.stderr).toBe(3);
    const lines = jsonLines(r.stdout);
    const errors = lines.filter((l) => l.message_type === 'error');
    expect(errors.map((e) => String(e.message)).join('\n')).toContain('secret.txt');
    expect(errors.map((e) => String(e.message)).join('\n')).toContain('closed-dir');
    const summary = lines.find((l) => l.message_type === 'summary')!;
    expect(summary.snapshot_id).toBeTruthy();
    const ls = await runKiwi(['ls', 'latest'], { env: penv, ...(asUser ? { asUser } : {}) });
    expect(ls.stdout).toContain('readable.txt');
  });
});
