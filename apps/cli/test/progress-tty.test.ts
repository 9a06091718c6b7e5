/**
 * Progress on a terminal (issue 14, acceptance 6): a real backup of a data set built like the
 * benchmark's (bench/dataset.mjs, a smaller variant), run in a pseudo-terminal with util-linux
 * `script`, shows a percentage and an ETA once the scan that runs ahead has the total.
 */
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KIWI_BIN, removeDir, tempDir, runKiwi } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Run `kiwi args` in a pseudo-terminal; returns everything the terminal received. */
function inPty(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, KIWI_BIN, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    // -q quiet, -f flush at once, -e the command's exit code, -c the command; the typescript goes nowhere.
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, ...env, TERM: 'xterm' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('backup progress on a terminal', () => {
  let work: string;
  let data: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = await tempDir('kiwi-tty-');
    data = join(work, 'data-set');
    const { ensureDataset } = (await import(pathToFileURL(join(root, 'bench', 'dataset.mjs')).href)) as {
      ensureDataset: (dir: string, o?: { shape?: { a: number; b: number; k: number; largeMiB: number } }) => Promise<void>;
    };
    await ensureDataset(data, { shape: { a: 2, b: 20, k: 50, largeMiB: 32 } });
    env = { KIWI_DATA_DIR: join(work, 'kiwi'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    for (const k of Object.keys(process.env)) if (k.startsWith('KIWI_')) env[k] ??= undefined;
    expect((await runKiwi(['init'], { env })).code).toBe(0);
  }, 120_000);
  afterAll(() => removeDir(work));

  it('shows elapsed time, a percentage, files and bytes of the total, errors and an ETA', async () => {
    const r = await inPty(['backup', data], env);
    expect(r.code, r.output).toBe(0);
    // Each redraw starts at the beginning of the line; take the frames apart.
    const frames = r.output.split(/\r|\x1b\[\d*A|\x1b\[J/).map((f) => f.trim()).filter(Boolean);
    const withTotal = frames.filter((f) => /^\[\d+:\d\d\] \d{1,3}\.\d\d%( ETA \d+:\d\d)? +\d+ files? [\d.]+ \w*B of \d+ files [\d.]+ \w*B done, \d+ errors?/.test(f));
    expect(withTotal.length, r.output.slice(0, 4000)).toBeGreaterThan(0);
    // Before the end, with time left to estimate: a percentage under 100 and an ETA.
    expect(withTotal.some((f) => /\] (\d|[1-9]\d)\.\d\d% ETA \d+:\d\d /.test(f)), withTotal.join('\n')).toBe(true);
    // The snapshot was written (a real backup), and the summary's counts add up.
    expect(r.output).toMatch(/snapshot [0-9a-f]{8} saved/);
    const files = /Files: +([\d]+) files?: (\d+) new, (\d+) changed, (\d+) unmodified/.exec(r.output);
    expect(files).not.toBeNull();
    expect(Number(files![2]) + Number(files![3]) + Number(files![4])).toBe(Number(files![1]));
  }, 300_000);
});
