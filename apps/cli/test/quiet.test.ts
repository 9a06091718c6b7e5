/** `--quiet` silences every command's non-error output (issue 14). */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, runKiwi, tempDir } from './helpers.js';

describe('--quiet', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;
  beforeAll(async () => {
    work = await tempDir('kiwi-quiet-');
    src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'a');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
  });
  afterAll(() => removeDir(work));

  it('every command that succeeds prints nothing', async () => {
    const runs: string[][] = [
      ['init'],
      ['backup', src],
      ['backup', src],
      ['snapshots'],
      ['ls', 'latest'],
      ['ls', '-l', 'latest'],
      ['diff', 'latest', 'latest'],
      ['restore', 'latest', '--target', join(work, 'out')],
      ['check'],
      ['check', '--read-data'],
      ['plugins'],
    ];
    for (const args of runs) {
      for (const q of ['-q', '--quiet']) {
        if (args[0] === 'init' && q === '--quiet') continue;
        const r = await runKiwi([...args, q], { env });
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        expect(r.stdout + r.stderr, args.join(' ')).toBe('');
      }
    }
  });

  it('errors still show', async () => {
    const r = await runKiwi(['ls', 'ffffffff', '-q'], { env });
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/no snapshot matches/);
  });

  it('the default repository and its password file are created quietly too', async () => {
    const r = await runKiwi(['backup', src, '-q'], { env: { KIWI_DATA_DIR: join(work, 'data2') } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toBe('');
  });
});
