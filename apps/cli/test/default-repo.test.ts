import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { join } from 'node:path';
import { writeFile, mkdir, stat, readFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir } from './helpers.js';

describe('the default repository in the data directory', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir();
  });
  afterAll(() => removeDir(work));

  it('is created on first backup with a generated 0600 key file, which later runs use', async () => {
    const src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'x.txt'), 'x');
    const env = { KIWI_DATA_DIR: join(work, 'data') };
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(0);
    const keyFile = join(work, 'data', 'repository.password');
    expect(b.stderr).toContain(keyFile);
    expect(b.stderr).toMatch(/keep a copy/i);
    const key = (await readFile(keyFile, 'utf8')).trim();
    expect(key.length).toBeGreaterThanOrEqual(32);
    expect(b.stderr + b.stdout).not.toContain(key);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(work, 'data', 'repository', 'config'))).isFile()).toBe(true);

    const again = await runKiwi(['backup', src], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/Created the password file/);
    const snaps = await runKiwi(['snapshots'], { env });
    expect(snaps.code).toBe(0);
    expect(snaps.stdout.trim().split('\n').length).toBe(3); // header + 2
  });

  it('whose config file is gone: backup and init refuse (exit 10) instead of making a new repository over the old one', async () => {
    const src = join(work, 'src3');
    await mkdir(src);
    await writeFile(join(src, 'x.txt'), 'x');
    const env = { KIWI_DATA_DIR: join(work, 'data3') };
    expect((await runKiwi(['backup', src], { env })).code).toBe(0);
    const repo = join(work, 'data3', 'repository');
    const { readdir, rm } = await import('node:fs/promises');
    const keys = await readdir(join(repo, 'keys'));
    await rm(join(repo, 'config'));
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(10);
    expect(b.stderr).toMatch(/has no config file, but holds a repository's files/);
    expect(b.stderr).not.toMatch(/Created the default repository/);
    const i = await runKiwi(['init', '-r', repo], { env: { ...env, KIWI_PASSWORD: 'pw' } });
    expect(i.code, i.stderr).toBe(10);
    expect(i.stderr).toMatch(/Do not run `kiwi init` there/);
    expect(await readdir(join(repo, 'keys'))).toEqual(keys);
    await expect(stat(join(repo, 'config'))).rejects.toThrow();
  });

  it('a non-default repository with no password and no terminal → 2 with a hint', async () => {
    const env = { KIWI_DATA_DIR: join(work, 'data2'), KIWI_REPOSITORY: join(work, 'other') };
    expect((await runKiwi(['init'], { env: { ...env, KIWI_PASSWORD: 'pw' } })).code).toBe(0);
    const r = await runKiwi(['snapshots'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/KIWI_PASSWORD/);
  });

  it('no password and no repository either: the missing repository is the error (10)', async () => {
    const r = await runKiwi(['snapshots'], { env: { KIWI_DATA_DIR: join(work, 'data3'), KIWI_REPOSITORY: join(work, 'missing') } });
    expect(r.code).toBe(10);
    expect(r.stderr).toMatch(/no repository at .*missing: run `kiwi init` to create one/);
  });
});
