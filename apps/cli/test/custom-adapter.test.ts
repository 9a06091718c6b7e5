/**
 * Custom storage adapters through the real `kiwi` CLI: a repository URL `myscheme:...` loads the
 * adapter the config names for that scheme — a file next to the config (fixtures/custom-storage),
 * or an installed npm package (the complete `dirstore` example of docs/storage-adapters.md,
 * extracted from the page and installed into a temporary project).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdir, readdir, readFile, realpath, stat, symlink, writeFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, makeSampleTree, expectSameTree, jsonLines, snapshotList } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, 'fixtures', 'custom-storage');
const fixtureConfig = join(fixtures, 'kiwi-config.json');

describe('a custom adapter module named in the config (flatdir: from a file next to the config)', () => {
  let work: string;
  let src: string;
  let repoDir: string;
  let env: NodeJS.ProcessEnv;
  /** Run kiwi with the fixture config (or, with `config: null`, with none: no data-dir config either). */
  const kiwi = (args: string[], config: string | null = fixtureConfig) =>
    runKiwi([...args, ...(config === null ? [] : ['--config', config])], { env, cwd: work });

  beforeAll(async () => {
    work = await tempDir('kiwi-cli-custom-');
    src = join(work, 'src');
    repoDir = join(work, 'flat-repo');
    await makeSampleTree(src);
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_PASSWORD: 'correct horse' };
  });
  afterAll(() => removeDir(work));

  it('init, backup, restore round-trip exactly; every file is where the adapter put it, with its storageOptions', async () => {
    const repo = `flatdir:${repoDir}`;
    const init = await kiwi(['init', '--repo', repo]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain(`at flatdir:${repoDir}`);

    const b = await kiwi(['backup', src, '--repo', repo, '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(jsonLines(b.stdout).find((l) => l.message_type === 'summary')!.status).toBe('success');

    // The adapter's own flat layout (not the built-in handlePath layout), with fileMode 0o640 from storageOptions.flatdir.
    const files = await readdir(repoDir);
    expect(files).toContain('config');
    expect(files.filter((f) => f.startsWith('snapshot.')).length).toBe(1);
    expect(files.filter((f) => f.startsWith('data.')).length).toBeGreaterThanOrEqual(1);
    expect(files.filter((f) => f.startsWith('key.')).length).toBe(1);
    expect(files.some((f) => f.startsWith('.partial-'))).toBe(false);
    for (const f of files) expect((await stat(join(repoDir, f))).mode & 0o777, f).toBe(0o640);

    const target = join(work, 'restore');
    const r = await kiwi(['restore', 'latest', '--repo', repo, '--target', target]);
    expect(r.code, r.stderr).toBe(0);
    await expectSameTree(join(target, src), src);

    const snaps = await kiwi(['snapshots', '--repo', repo, '--json']);
    expect(snaps.code, snaps.stderr).toBe(0);
    expect(snapshotList(snaps.stdout).length).toBe(1);
    const check = await kiwi(['check', '--read-data', '--repo', repo]);
    expect(check.code, check.stderr).toBe(0);
  });

  it('an unknown scheme: exit 2, naming the scheme and the known ones', async () => {
    for (const config of [fixtureConfig, null]) {
      const r = await kiwi(['init', '--repo', 'nosuch:/srv/x'], config);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/"nosuch:"/);
      const known = /known: ([^)]*)\)/.exec(r.stderr)?.[1]?.split(', ') ?? [];
      expect(known).toEqual(expect.arrayContaining(['local', 's3', 'sftp']));
      if (config === fixtureConfig) expect(known).toEqual(expect.arrayContaining(['flatdir', 'missing', 'broken']));
      expect(r.stderr).not.toMatch(/\n\s+at /);
      // JSON mode says the same on stdout.
      const j = await kiwi(['snapshots', '--repo', 'nosuch:/srv/x', '--json'], config);
      expect(j.code).toBe(2);
      expect(String(jsonLines(j.stdout).find((l) => l.message_type === 'error')!.message)).toMatch(/"nosuch:"/);
    }
    await expect(stat('/srv/x')).rejects.toThrow();
  });

  it('a configured module that is missing, or exports no adapter: exit 2 naming the module', async () => {
    const missing = await kiwi(['init', '--repo', 'missing:/x']);
    expect(missing.code, missing.stderr).toBe(2);
    expect(missing.stderr).toContain('no-such-adapter.mjs');
    expect(missing.stderr).toMatch(/not found|does not exist/);

    const broken = await kiwi(['init', '--repo', 'broken:/x']);
    expect(broken.code, broken.stderr).toBe(2);
    expect(broken.stderr).toContain('not-an-adapter.mjs');
    expect(broken.stderr).toMatch(/exports no adapter/);
    expect(broken.stderr).toContain('hello');

    const relative = await kiwi(['init', '--repo', 'flatdir:relative/path']);
    expect(relative.code, relative.stderr).toBe(2);
    expect(relative.stderr).toMatch(/flatdir needs an absolute path/);
    for (const r of [missing, broken, relative]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('the docs example adapter (dirstore:), installed as an npm package and named by package', () => {
  let work: string;
  let project: string;
  let src: string;
  let repoDir: string;
  let config: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = await tempDir('kiwi-cli-dirstore-');
    src = join(work, 'src');
    repoDir = join(work, 'dirstore-repo');
    await makeSampleTree(src);
    // A user's project: node_modules/kiwi-storage-dirstore from the page, and @kiwi-backup/core
    // (its peer dependency) being the same copy the CLI runs on.
    project = join(work, 'project');
    const pkgDir = join(project, 'node_modules', 'kiwi-storage-dirstore');
    await mkdir(pkgDir, { recursive: true });
    const doc = await readFile(join(here, '..', '..', '..', 'docs', 'storage-adapters.md'), 'utf8');
    const code = /```js\n(\/\/ kiwi-storage-dirstore\/index\.mjs[\s\S]*?)```/.exec(doc)?.[1];
    const pkg = /```json\n(\{\n\s*"name": "kiwi-storage-dirstore"[\s\S]*?)```/.exec(doc)?.[1];
    expect(code, 'the index.mjs block of docs/storage-adapters.md').toBeDefined();
    expect(pkg, 'the package.json block of docs/storage-adapters.md').toBeDefined();
    await writeFile(join(pkgDir, 'index.mjs'), code!);
    await writeFile(join(pkgDir, 'package.json'), pkg!);
    await mkdir(join(project, 'node_modules', '@kiwi-backup'), { recursive: true });
    await symlink(await realpath(join(here, '..', 'node_modules', '@kiwi-backup', 'core')), join(project, 'node_modules', '@kiwi-backup', 'core'));
    config = join(project, 'kiwi.json');
    await writeFile(
      config,
      JSON.stringify({
        repository: `dirstore:${repoDir}`,
        storage: { dirstore: 'kiwi-storage-dirstore' },
        storageOptions: { dirstore: { fsync: false } },
      }),
    );
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_PASSWORD: 'correct horse' };
  });
  afterAll(() => removeDir(work));

  const kiwi = (args: string[]) => runKiwi([...args, '--config', config], { env, cwd: work });

  it('the repository from the config: init, backup, restore, check', async () => {
    const init = await kiwi(['init']);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain(`at dirstore:${repoDir}`);
    expect((await readdir(repoDir)).sort()).toEqual(['config', 'data', 'index', 'key', 'lock', 'snapshot']);

    const b = await kiwi(['backup', src]);
    expect(b.code, b.stderr).toBe(0);
    expect((await readdir(join(repoDir, 'snapshot'))).length).toBe(1);

    const target = join(work, 'restore');
    const r = await kiwi(['restore', 'latest', '--target', target]);
    expect(r.code, r.stderr).toBe(0);
    await expectSameTree(join(target, src), src);

    const check = await kiwi(['check', '--read-data']);
    expect(check.code, check.stderr).toBe(0);
  });

  it('a bad storage option is a configuration error (exit 2) with the adapter\'s message', async () => {
    const bad = join(project, 'bad.json');
    await writeFile(bad, JSON.stringify({ storage: { dirstore: 'kiwi-storage-dirstore' }, storageOptions: { dirstore: { fsync: 'yes' } } }));
    const r = await runKiwi(['snapshots', '--repo', `dirstore:${repoDir}`, '--config', bad], { env, cwd: work });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/storageOptions\.dirstore\.fsync must be true or false/);
  });
});
