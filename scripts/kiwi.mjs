#!/usr/bin/env node
// `pnpm kiwi <command> ...` from the repository root: build what the CLI needs (turbo caches it,
// so this is quick after the first time), then run it. Build output goes to stderr so that
// `pnpm kiwi ... --json` keeps stdout clean.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { constants } from 'node:os';
import { kiwiNodeArgs } from './kiwi-node-args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const turbo = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'turbo.cmd' : 'turbo');
const build = spawnSync(turbo, ['run', 'build', '--filter=@kiwi-backup/cli...', '--output-logs=errors-only', '--log-prefix=none'], {
  cwd: root,
  stdio: ['ignore', process.stderr, process.stderr],
  env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' },
});
if (build.status !== 0) {
  process.stderr.write('kiwi: building the CLI failed (see above)\n');
  process.exit(build.status ?? 1);
}
// pnpm runs scripts from the root; resolve relative paths against where the user ran the command.
const cwd = process.env.INIT_CWD || process.cwd();
const bin = join(root, 'apps', 'cli', 'dist', 'bin.js');
const child = spawn(process.execPath, [...kiwiNodeArgs(bin), bin, ...process.argv.slice(2)], {
  cwd,
  stdio: 'inherit',
});
// Ctrl-C reaches the whole process group, so the CLI sees it itself; a SIGTERM sent to this wrapper is passed on.
// Either way the wrapper waits for the CLI to finish its cleanup (onBackupStop hooks, locks) and exits with its code.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1));
});
