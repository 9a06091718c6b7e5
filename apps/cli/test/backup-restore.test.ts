import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFile, stat, readFile, appendFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, makeSampleTree, expectSameTree, jsonLines, snapshotList } from './helpers.js';

describe('kiwi backup → restore on a local repository', () => {
  let work: string;
  let src: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = await tempDir();
    src = join(work, 'src');
    await makeSampleTree(src);
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'correct horse' };
    const init = await runKiwi(['init'], { env });
    expect(init.stderr + init.stdout).toMatch(/created repository/);
    expect(init.code).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('restores contents, modes, mtimes, symlinks, empty files and dirs, odd names exactly', async () => {
    const b = await runKiwi(['backup', src, '--tag', 'first'], { env });
    expect(b.stderr).not.toMatch(/error/i);
    expect(b.code).toBe(0);
    const target = join(work, 'restore1');
    const r = await runKiwi(['restore', 'latest', '--target', target], { env });
    expect(r.code, r.stderr).toBe(0);
    await expectSameTree(join(target, src), src);
  });

  it('a second backup with no change reads no file contents and adds almost nothing', async () => {
    const repo = env.KIWI_REPOSITORY!;
    const before = await dirSize(repo);
    const b = await runKiwi(['backup', src, '--json'], { env });
    expect(b.code, b.stderr).toBe(0);
    const summary = jsonLines(b.stdout).find((l) => l.message_type === 'summary')!;
    expect(summary.bytes_read).toBe(0);
    expect(summary.files_unmodified).toBeGreaterThan(5);
    expect(summary.files_new).toBe(0);
    const after = await dirSize(repo);
    expect(after - before).toBeLessThan(64 * 1024);
  });

  it('snapshots, ls, diff and check work and speak JSON', async () => {
    await appendFile(join(src, 'docs', 'a.txt'), 'more\n');
    await writeFile(join(src, 'new.txt'), 'new file');
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(0);

    const snaps = await runKiwi(['snapshots', '--json'], { env });
    expect(snaps.code).toBe(0);
    const list = snapshotList(snaps.stdout);
    expect(list.length).toBe(3);
    expect(list[0]!.tags).toEqual(['first']);

    const ls = await runKiwi(['ls', 'latest'], { env });
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain(`${src}/docs/deep/er/big.bin`);
    expect(ls.stdout).toContain(`${src}/new.txt`);

    const diff = await runKiwi(['diff', String(list[0]!.id).slice(0, 8), 'latest'], { env });
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toMatch(new RegExp(`\\+\\s+${escape(src)}/new.txt`));
    expect(diff.stdout).toMatch(new RegExp(`M\\s+${escape(src)}/docs/a.txt`));

    const check = await runKiwi(['check', '--read-data'], { env });
    expect(check.code, check.stderr).toBe(0);
  });

  it('restore --include restores only matching paths', async () => {
    const target = join(work, 'restore-include');
    const r = await runKiwi(['restore', 'latest', '--target', target, '--include', `${src}/docs/deep`], { env });
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(join(target, src, 'docs', 'deep', 'b.bin'))).size).toBe(300_000);
    await expect(stat(join(target, src, 'script.sh'))).rejects.toThrow();
    const restored = await readFile(join(target, src, 'docs', 'deep', 'er', 'big.bin'));
    expect(restored.equals(await readFile(join(src, 'docs', 'deep', 'er', 'big.bin')))).toBe(true);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function dirSize(dir: string): Promise<number> {
  const { readdir, lstat } = await import('node:fs/promises');
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await lstat(join(e.parentPath, e.name))).size;
  }
  return total;
}
