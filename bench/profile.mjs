#!/usr/bin/env node
// `pnpm bench:profile`: where Kiwi's CPU time goes. Runs one first backup of the bench data set into a
// fresh local repository and one full restore of it, each under `node --cpu-prof` (every thread writes
// its own profile), and prints per run: wall, user and system time and peak RSS, then from the profiles
// the time by stage (Kiwi package / source directory), by Kiwi source file and the top functions by self
// time, as Markdown for docs/benchmarks.md. Run after `pnpm build` (the script does it).
//
// Usage: pnpm bench:profile [--small] [--top 15] [--no-drop-caches]   (KIWI_BENCH_DIR as for pnpm bench)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kiwiNodeArgs } from '../scripts/kiwi-node-args.mjs';
import { summarizeFiles } from './cpuprofile.mjs';
import { freshDataset } from './dataset.mjs';
import { dropCaches } from './measure.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const args = process.argv.slice(2);
for (const a of args) {
  if (!['--small', '--top', '--no-drop-caches'].includes(a) && !/^\d+$/.test(a)) {
    process.stderr.write(`bench:profile: unknown option ${a}\nUsage: pnpm bench:profile [--small] [--top N] [--no-drop-caches]\n`);
    process.exit(2);
  }
}
const small = args.includes('--small');
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args[topAt + 1]) : 15;
if (!Number.isInteger(top) || top < 1) {
  process.stderr.write('bench:profile: --top needs a positive integer\n');
  process.exit(2);
}
const drop = args.includes('--no-drop-caches') ? () => {} : dropCaches;
const base = process.env.KIWI_BENCH_DIR ?? join(here, '.work');
const dataRoot = join(base, small ? 'data-small' : 'data');
const work = join(base, 'profile');
const repo = join(work, 'repo');
const kiwiBin = join(root, 'apps', 'cli', 'dist', 'bin.js');
const env = { ...process.env, KIWI_PASSWORD: 'kiwi-bench-password', KIWI_REPOSITORY: repo, KIWI_DATA_DIR: join(work, 'datadir'), XDG_CACHE_HOME: join(work, 'cache') };

/** Runs Kiwi (under --cpu-prof into `profDir` when given); returns wall/user/sys seconds and peak RSS. */
function kiwi(label, argv, profDir) {
  const node = [...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...kiwiNodeArgs(kiwiBin), kiwiBin, ...argv];
  const timeFile = join(work, 'time.txt');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, process.execPath, ...node], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${label} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  const [wall, user, sys, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { wall, user, sys, rssMiB: rssKiB / 1024 };
}

async function main() {
  if (!existsSync('/usr/bin/time')) throw new Error('needs /usr/bin/time (apt-get install time)');
  process.stderr.write(`data set in ${dataRoot} (built once)...\n`);
  await freshDataset(dataRoot, { small });
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  kiwi('kiwi init', ['init']);
  const out = [`## CPU profile of one first backup and one restore${small ? ' (--small data set)' : ''}`, ''];
  out.push(`Node ${process.version}, Kiwi with ${kiwiNodeArgs(kiwiBin).join(' ') || 'no extra Node options'} plus --cpu-prof (sampling every 1 ms; profiling slows the run a little).`, '');
  const restoreTarget = join(work, 'restored');
  const runs = [
    ['first backup', ['backup', dataRoot, '--quiet']],
    ['full restore', ['restore', 'latest', '--target', restoreTarget, '--quiet']],
  ];
  for (const [name, argv] of runs) {
    const profDir = join(work, name.replace(/ /g, '-'));
    mkdirSync(profDir, { recursive: true });
    mkdirSync(restoreTarget, { recursive: true });
    drop();
    process.stderr.write(`kiwi: ${name} under --cpu-prof...\n`);
    const t = kiwi(`kiwi ${name}`, argv, profDir);
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).sort().map((f) => join(profDir, f));
    out.push(`**${name}**: ${t.wall.toFixed(2)} s wall, ${t.user.toFixed(2)} s user + ${t.sys.toFixed(2)} s system CPU (all threads), peak RSS ${t.rssMiB.toFixed(0)} MiB; ${files.length} profile${files.length === 1 ? '' : 's'} (one per thread).`, '');
    out.push(summarizeFiles(root, name, files, top));
  }
  rmSync(restoreTarget, { recursive: true, force: true });
  rmSync(repo, { recursive: true, force: true });
  const text = out.join('\n');
  process.stdout.write(`${text}\n`);
  writeFileSync(join(base, 'last-profile.md'), `${text}\n`);
  process.stderr.write(`profiles kept in ${work}/ (open them in Chrome DevTools or speedscope)\n`);
}

main().catch((err) => {
  process.stderr.write(`bench:profile: ${err.stack ?? err}\n`);
  process.exit(1);
});
