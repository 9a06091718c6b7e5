/**
 * kiwi restore: patterns (a plain name at any depth; a pattern that matches nothing is exit 1), a restore
 * killed with SIGKILL (its temporary files are removed by the next restore), and targets or repositories
 * that cannot be created (a clear error, not a spin: `/proc/self/x`).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { runKiwi, tempDir, removeDir, bytes, jsonLines, sleep } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Every path below `root` (relative), files and directories. */
async function walkNames(root: string): Promise<string[]> {
  const out: string[] = [];
  async function visit(dir: string, rel: string): Promise<void> {
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      out.push(r);
      if (d.isDirectory()) await visit(join(dir, d.name), r);
    }
  }
  await visit(root, '');
  return out.sort();
}

describe('kiwi restore', () => {
  let work: string;
  let src: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = await tempDir('kiwi-cli-restore-');
    src = join(work, 'src');
    await mkdir(join(src, 'etc/skel'), { recursive: true });
    await mkdir(join(src, 'usr/bin'), { recursive: true });
    await mkdir(join(src, 'home/me/bash'), { recursive: true });
    await writeFile(join(src, 'usr/bin/bash'), 'the shell');
    await writeFile(join(src, 'etc/skel/bash'), 'not really, but named so');
    await writeFile(join(src, 'home/me/bash/history'), 'ls\n');
    await writeFile(join(src, 'home/me/.bashrc'), 'alias ll="ls -l"\n');
    await writeFile(join(src, 'big.bin'), bytes(24 * 1024 * 1024, 7));
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'correct horse' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('--include <plain name> restores every match at any depth', async () => {
    const target = join(work, 'plain');
    const r = await runKiwi(['restore', 'latest', '--target', target, '--include', 'bash'], { env });
    expect(r.code, r.stderr).toBe(0);
    const files = (await walkNames(join(target, src))).filter((p) => !['etc', 'etc/skel', 'usr', 'usr/bin', 'home', 'home/me'].includes(p));
    expect(files).toEqual(['etc/skel/bash', 'home/me/bash', 'home/me/bash/history', 'usr/bin/bash']);
    expect(await readFile(join(target, src, 'usr/bin/bash'), 'utf8')).toBe('the shell');
  });

  it('a pattern that matches nothing is an error naming it (exit 1), also in JSON', async () => {
    const target = join(work, 'nomatch');
    const r = await runKiwi(['restore', 'latest', '--target', target, '--include', 'bsh'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--include pattern "bsh" matched nothing in snapshot [0-9a-f]{8}/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const j = await runKiwi(['restore', 'latest', '--target', target, '--include', 'bash', '--exclude', '*.nothing', '--json'], { env });
    expect(j.code).toBe(1);
    const lines = jsonLines(j.stdout);
    expect(lines.find((l) => l.message_type === 'error')).toMatchObject({ option: 'exclude', pattern: '*.nothing' });
    expect(lines.find((l) => l.message_type === 'summary')).toMatchObject({ files_restored: 3, unmatched_patterns: 1 });
  });

  it('a restore killed with SIGKILL leaves temporary files; the next restore removes them and completes', async () => {
    // The repository through an adapter whose data loads hang after the first: the big file is caught half written.
    const config = join(work, 'stall-config.json');
    await writeFile(config, JSON.stringify({ storage: { stalldir: join(here, 'fixtures/custom-storage/stall-adapter.mjs') }, storageOptions: { stalldir: { stallAfter: 1 } } }));
    const flat = join(work, 'flat-repo');
    const initFlat = await runKiwi(['init', '--repo', `stalldir:${flat}`, '--config', config], { env });
    expect(initFlat.code, initFlat.stderr).toBe(0);
    const b = await runKiwi(['backup', src, '--repo', `stalldir:${flat}`, '--config', config], { env });
    expect(b.code, b.stderr).toBe(0);
    const target = join(work, 'killed');
    let child: import('node:child_process').ChildProcess | undefined;
    const run = runKiwi(['restore', 'latest', '--target', target, '--repo', `stalldir:${flat}`, '--config', config], {
      env,
      onSpawn: (c) => (child = c),
    });
    let temps: string[] = [];
    for (let i = 0; i < 600 && temps.length === 0; i++) {
      await sleep(50);
      temps = (await walkNames(target).catch(() => [])).filter((p) => /\.kiwi-restore-[0-9]+-[0-9a-f]{12}\.tmp$/.test(p));
    }
    expect(temps.length).toBeGreaterThan(0);
    child!.kill('SIGKILL');
    const killed = await run;
    expect(killed.signal, `${killed.code} ${killed.stderr}`).toBe('SIGKILL');
    expect((await walkNames(target)).filter((p) => p.includes('.kiwi-restore-'))).toEqual(temps);
    // The next restore (same data, the plain flatdir adapter) cleans up and finishes.
    await writeFile(config, JSON.stringify({ storage: { stalldir: join(here, 'fixtures/custom-storage/stall-adapter.mjs') }, storageOptions: { stalldir: { stallAfter: 1e9 } } }));
    const again = await runKiwi(['restore', 'latest', '--target', target, '--repo', `stalldir:${flat}`, '--config', config, '--json'], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(jsonLines(again.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ temp_files_removed: temps.length, errors: 0 });
    expect((await walkNames(target)).filter((p) => p.includes('.kiwi-restore-'))).toEqual([]);
    expect((await readFile(join(target, src, 'big.bin'))).equals(bytes(24 * 1024 * 1024, 7))).toBe(true);
  });

  it.runIf(process.platform === 'linux')('without the native addon (KIWI_NATIVE_FS=off): what is not backed up or restored is said, restore exits 3', async () => {
    const dir = join(work, 'special-src');
    await mkdir(dir);
    await writeFile(join(dir, 'with-attr'), 'x');
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    try {
      execFileSync('setfattr', ['-n', 'user.note', '-v', 'kept?', join(dir, 'with-attr')]);
    } catch (err) {
      if (process.env.CI === 'true') throw err;
      console.warn('\n*** setfattr is missing (apt-get install attr): test skipped ***\n');
      return;
    }
    const off = { ...env, KIWI_NATIVE_FS: 'off' };
    const b = await runKiwi(['backup', dir], { env: off });
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/warning: extended attributes and ACLs are not backed up: @kiwi-backup\/native-fs is not available \(turned off by KIWI_NATIVE_FS=off\)/);
    // The next backup (with the addon) reads the attributes although the files did not change.
    expect((await runKiwi(['backup', dir], { env })).code).toBe(0);
    const target = join(work, 'no-native');
    const r = await runKiwi(['restore', 'latest', '--target', target, '--include', dir], { env: off });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(`${dir}/fifo: FIFO not restored: @kiwi-backup/native-fs is not available (turned off by KIWI_NATIVE_FS=off)`);
    expect(r.stderr).toContain(`${dir}/with-attr: 1 extended attribute not restored: @kiwi-backup/native-fs is not available`);
    expect(r.stderr).toMatch(/2 entries not restored/);
    expect(await readFile(join(target, dir, 'with-attr'), 'utf8')).toBe('x');
    const withAddon = await runKiwi(['restore', 'latest', '--target', join(work, 'with-native'), '--include', dir], { env });
    expect(withAddon.code, withAddon.stderr).toBe(0);
    expect(execFileSync('getfattr', ['-n', 'user.note', join(work, 'with-native', dir, 'with-attr')], { encoding: 'utf8' })).toContain('user.note="kept?"');
  });

  it.runIf(process.platform === 'linux')('a target or repository that cannot be created is one clear error, quickly (no mkdir spin)', async () => {
    const r = await runKiwi(['restore', 'latest', '--target', '/proc/self/x'], { env, timeoutMs: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/restore target: cannot create directory \/proc\/self\/x: the file system refuses it/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const deep = await runKiwi(['restore', 'latest', '--target', '/proc/self/x/y/z'], { env, timeoutMs: 20_000 });
    expect(deep.code).toBe(1);
    const i = await runKiwi(['init', '--repo', '/proc/self/x'], { env: { ...env, KIWI_REPOSITORY: undefined }, timeoutMs: 20_000 });
    expect(i.signal).toBeNull();
    expect(i.code).toBe(1);
    expect(i.stderr).toMatch(/cannot create directory \/proc\/self\/x: the file system refuses it/);
    expect(i.stderr).not.toMatch(/\n\s+at /);
  });
});
