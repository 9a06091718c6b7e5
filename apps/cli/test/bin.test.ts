import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { KIWI_BIN } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

it('the kiwi bin runs as an executable with the Node options its shebang declares', () => {
  expect(readFileSync(KIWI_BIN, 'utf8').split('\n', 1)[0]).toBe('#!/usr/bin/env -S node --single-threaded-gc');
  accessSync(KIWI_BIN, constants.X_OK);
  // Run it the way an installed `kiwi` runs: the kernel reads the shebang.
  expect(execFileSync(KIWI_BIN, ['--version'], { encoding: 'utf8' })).toMatch(/^kiwi \d+\.\d+\.\d+/);
  // ...and a script with the same shebang gets the option from Node.
  const dir = mkdtempSync(join(tmpdir(), 'kiwi-shebang-'));
  try {
    const probe = join(dir, 'probe.mjs');
    writeFileSync(probe, `${readFileSync(KIWI_BIN, 'utf8').split('\n', 1)[0]}\nconsole.log(JSON.stringify(process.execArgv));\n`, { mode: 0o755 });
    expect(JSON.parse(execFileSync(probe, { encoding: 'utf8' }))).toEqual(['--single-threaded-gc']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('repository scripts start the CLI with the same Node options (pnpm kiwi, pnpm bench)', async () => {
  const { kiwiNodeArgs } = (await import(join(root, 'scripts', 'kiwi-node-args.mjs'))) as { kiwiNodeArgs: (bin: string) => string[] };
  expect(kiwiNodeArgs(KIWI_BIN)).toEqual(['--single-threaded-gc']);
  expect(readFileSync(join(root, 'scripts', 'kiwi.mjs'), 'utf8')).toContain('kiwiNodeArgs(bin)');
});
