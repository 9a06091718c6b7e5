/** Issue 14, "Safe defaults": Kiwi's own data is never backed up; a missing source is one error. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytes, jsonLines, removeDir, runKiwi, tempDir } from './helpers.js';

describe('safe defaults', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('kiwi-safe-');
  });
  afterAll(() => removeDir(work));

  it('`kiwi backup ~` twice with the default repository under ~: the second run adds under 1 MiB (acceptance 2)', async () => {
    const home = join(work, 'home');
    await mkdir(join(home, 'Documents'), { recursive: true });
    await writeFile(join(home, 'Documents', 'report.bin'), bytes(3 * 1024 * 1024, 7));
    await writeFile(join(home, '.profile'), 'export EDITOR=vi\n');
    // Kiwi's cache (of remote repositories' metadata) is its own data too.
    await mkdir(join(home, '.cache', 'kiwi', '0123abcd'), { recursive: true });
    await writeFile(join(home, '.cache', 'kiwi', '0123abcd', 'index-copy'), bytes(4096, 3));
    // No KIWI_DATA_DIR: the data directory (and the default repository) is ~/.local/share/kiwi.
    // (Nor KIWI_CACHE_DIR, which the test helpers set: the cache is the default ~/.cache/kiwi.)
    const env = { HOME: home, XDG_DATA_HOME: '', XDG_CACHE_HOME: '', KIWI_CACHE_DIR: '' };
    const first = await runKiwi(['backup', home], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain(
      `note: not backed up, as Kiwi's own data (a repository cannot hold itself): ${join(home, '.local', 'share', 'kiwi')}, ${join(home, '.cache', 'kiwi')}`,
    );
    const second = await runKiwi(['backup', home, '--json'], { env });
    expect(second.code, second.stderr).toBe(0);
    const summary = jsonLines(second.stdout).find((l) => l.message_type === 'summary')!;
    expect(summary.data_added_packed as number).toBeLessThan(1024 * 1024);
    const ls = await runKiwi(['ls', 'latest'], { env });
    expect(ls.stdout).toContain(join(home, 'Documents', 'report.bin'));
    expect(ls.stdout).toContain(join(home, '.local', 'share'));
    expect(ls.stdout).not.toContain(join(home, '.local', 'share', 'kiwi'));
    expect(ls.stdout).toContain(join(home, '.cache'));
    expect(ls.stdout).not.toContain(join(home, '.cache', 'kiwi'));
    // The note is for the first run only.
    const third = await runKiwi(['backup', home], { env });
    expect(third.stderr).not.toContain('note: not backed up');
  });

  it('a local repository named with --repo inside the source is not backed up either', async () => {
    const src = join(work, 'proj');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'a.txt'), 'a');
    const env = { KIWI_DATA_DIR: join(work, 'data-repo-inside'), KIWI_PASSWORD: 'pw' };
    const repo = join(src, 'backups', 'repo');
    expect((await runKiwi(['init', '--repo', repo], { env })).code).toBe(0);
    const r = await runKiwi(['backup', src, '--repo', repo], { env });
    expect(r.code, r.stderr).toBe(0);
    const ls = await runKiwi(['ls', 'latest', '--repo', repo], { env });
    expect(ls.stdout).toContain(join(src, 'a.txt'));
    expect(ls.stdout).toContain(join(src, 'backups'));
    expect(ls.stdout).not.toContain(repo);
  });

  it('a source that does not exist: one error, exit 3, and no phantom directory in the snapshot', async () => {
    const src = join(work, 'real');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'f.txt'), 'f');
    const missing = join(work, 'not', 'there', 'at-all');
    const env = { KIWI_DATA_DIR: join(work, 'data-missing'), KIWI_REPOSITORY: join(work, 'repo-missing'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    const r = await runKiwi(['backup', src, missing], { env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error:'))).toEqual([`error: ${missing}: lstat: no such file or directory (ENOENT)`]);
    expect(r.stderr).toMatch(/Errors: +1 entry could not be read/);
    const ls = await runKiwi(['ls', 'latest'], { env });
    expect(ls.stdout).toContain(join(src, 'f.txt'));
    expect(ls.stdout).not.toContain(join(work, 'not'));
  });
});
