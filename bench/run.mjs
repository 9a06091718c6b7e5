#!/usr/bin/env node
// `pnpm bench`: time Kiwi — and restic and borg when installed — on the same deterministic data sets, in
// one run: the bench data set (~1 GiB: first backup, no-change backup, backup after a ~1 % change, full
// restore, `snapshots` and `ls latest`), a deep tree shaped like /usr (118,000 entries: first and no-change
// backup, `ls`), forget-all-but-the-last + prune, and with --scale a tree of 1,000,000 small files. Prints
// wall time, peak RSS and repository size per tool and step, Kiwi's ratios to restic and the remote
// (S3, SFTP on loopback servers) ratios to local, each against its target. See docs/benchmarks.md.
//
// Usage: pnpm bench [--tools ...] [--steps ...] [--runs 5] [--scale] [--small] ... (--help)
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshDataset } from './dataset.mjs';
import { countFiles, dropCaches, duBytes, measurer } from './measure.mjs';
import { USAGE, UsageError, parseOptions } from './options.mjs';
import { formatReport } from './report.mjs';
import { benchTreeSteps, createRunner, deepTreeSteps, maintenanceSteps, scaleSteps } from './steps.mjs';
import { createTools, ssh2BindingBuilt } from './tools.mjs';
import { DEEP_FULL, DEEP_SMALL, ensureDeepTree, ensureScaleTree } from './trees.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const log = (text) => process.stderr.write(`${text}\n`);

async function main() {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const base = process.env.KIWI_BENCH_DIR ?? join(here, '.work');
  await mkdir(base, { recursive: true });
  const S = new Set(opts.steps);
  const c = {
    opts,
    base,
    dataRoot: join(base, opts.small ? 'data-small' : 'data'),
    deepRoot: join(base, opts.small ? 'deep-small' : 'deep'),
    scaleRoot: join(base, 'scale'),
    tools: createTools({ root, base, measure: measurer(base), forgetByRm: opts.forgetByRm }),
    runner: createRunner(opts.runs),
    drop: opts.dropCaches ? dropCaches : () => {},
    handles: {},
    sizes: {},
    stateReset: new Set(),
    verified: [],
    notes: [],
    active: [],
  };
  const header = [];
  const started = performance.now();

  // Data sets: built once (marker files), the bench set again after a run changed it.
  const benchNeeded = ['first', 'no-change', 'change', 'restore', 'ls', 'maintenance'].some((s) => S.has(s));
  if (benchNeeded) {
    // Before the `.changed` flag, a run marked the data as used with `.pristine-ok` in the work directory.
    if (existsSync(join(base, '.pristine-ok'))) {
      await rm(join(base, 'data'), { recursive: true, force: true });
      await rm(join(base, '.pristine-ok'), { force: true });
    }
    log(`data set in ${c.dataRoot} (built once)...`);
    await freshDataset(c.dataRoot, { small: opts.small });
    header.push(`Bench data set${opts.small ? ' (--small)' : ''}: ${(duBytes(c.dataRoot) / 2 ** 30).toFixed(2)} GiB in ${countFiles(c.dataRoot)} files.`);
  }
  if (S.has('deep')) {
    log(`deep tree in ${c.deepRoot} (built once)...`);
    const d = ensureDeepTree(c.deepRoot, opts.small ? DEEP_SMALL : DEEP_FULL);
    header.push(`Deep tree${opts.small ? ' (--small)' : ''}: ${d.entries} entries (${d.dirs} directories up to ${d.maxDepth} deep, ${d.files} files of 0–4 KiB, ${d.symlinks} symlinks), ${(d.bytes / 2 ** 20).toFixed(0)} MiB.`);
  }
  if (S.has('scale')) {
    log(`scale tree of ${opts.scaleFiles} files in ${c.scaleRoot} (built once; a million files take minutes)...`);
    const t0 = performance.now();
    const s = ensureScaleTree(c.scaleRoot, { files: opts.scaleFiles });
    log(`scale tree ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    header.push(`Scale tree: ${s.files} files of 0–4 KiB in ${s.dirs} directories, ${(s.bytes / 2 ** 30).toFixed(2)} GiB.`);
  }

  c.active = opts.tools.filter((t) => c.tools[t].available());
  for (const t of opts.tools) if (!c.active.includes(t)) log(`skipping ${t}: not installed`);
  for (const t of c.active) await c.tools[t].setup?.();
  try {
    if (benchNeeded) await benchTreeSteps(c);
    if (S.has('deep')) await deepTreeSteps(c);
    if (S.has('maintenance')) await maintenanceSteps(c);
    if (S.has('scale')) await scaleSteps(c);
  } finally {
    // The servers' stop() awaits the child's exit with the child unref'd: without a timer of our own the
    // event loop can run dry first, and the benchmark would end silently without its table.
    const keepAlive = setInterval(() => {}, 1000);
    for (const t of c.active) await c.tools[t].teardown?.();
    clearInterval(keepAlive);
  }

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  header.push(`Machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}.`);
  const versions = [];
  if (c.active.includes('restic')) versions.push(execFileSync('restic', ['version'], { encoding: 'utf8' }).trim().split(' compiled')[0]);
  if (c.active.includes('borg')) versions.push(execFileSync('borg', ['--version'], { encoding: 'utf8' }).trim());
  if (versions.length > 0) header.push(`Compared with: ${versions.join(', ')}.`);
  if (c.active.includes('kiwi-sftp')) header.push(`ssh2's native crypto binding (scripts/build-ssh2-binding.mjs): ${ssh2BindingBuilt(root) ? 'built' : 'NOT built'}.`);
  header.push(`Steps: ${opts.steps.join(', ')}. Repeated steps (no-change backups, restores, snapshots, ls): median of ${opts.runs} run${opts.runs > 1 ? 's' : ''} per tool, the tools taking turns (snapshots and ls after one uncounted warm-up run each); the other steps run once.${opts.dropCaches ? '' : ' Page cache not dropped (--no-drop-caches).'}`);
  const notes = [...c.notes];
  if (c.verified.length > 0) notes.push(`Restores checked against the data set (bytes, modes, mtimes to the ns, symlinks): ${c.verified.join(', ')}.`);
  notes.push(`Benchmark wall time: ${((performance.now() - started) / 60000).toFixed(1)} min.`);
  const table = formatReport({ rows: c.runner.rows, header, sizes: c.sizes, notes });
  process.stdout.write(`${table}\n`);
  await writeFile(join(base, 'last-result.md'), `${table}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err}\n`);
  process.exit(1);
});
