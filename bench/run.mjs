#!/usr/bin/env node
// `pnpm bench`: time Kiwi — and restic and borg when installed — on the same deterministic ~1 GiB data set:
// first backup, no-change backup, backup after a ~1 % change, full restore. Prints wall time, peak RSS and
// repository size per tool, and Kiwi's ratio to restic, and times Kiwi on S3 and SFTP (loopback servers).
// The steps that leave the repository as it was (no-change backup, restore) run `--runs` times (default 5),
// the tools taking turns, and the table shows the median; the first and the after-change backup run once.
//
// Usage: pnpm bench [--tools kiwi,restic,borg,kiwi-s3,kiwi-sftp] [--runs 5] [--keep]
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdir, rm, readFile, writeFile } from 'node:fs/promises';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { ensureDataset, applyChange } from './dataset.mjs';
import { kiwiNodeArgs } from '../scripts/kiwi-node-args.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const toolsWanted = opt('tools', 'kiwi,restic,borg,kiwi-s3,kiwi-sftp').split(',');
const runs = Number(opt('runs', '5'));
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${opt('runs')}`);
const base = process.env.KIWI_BENCH_DIR ?? join(here, '.work');
const dataRoot = join(base, 'data');
const PASSWORD = 'kiwi-bench-password';

function which(bin) {
  try {
    return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

/** Run a command, measuring wall time and peak RSS (via /usr/bin/time when present). */
function measure(label, cmd, argv, opts = {}) {
  const rssFile = join(base, 'rss.txt');
  const start = process.hrtime.bigint();
  const full = timeBin ? [timeBin, ['-f', '%M', '-o', rssFile, cmd, ...argv]] : [cmd, argv];
  const r = spawnSync(full[0], full[1], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0 && !(opts.okCodes ?? []).includes(r.status)) {
    process.stderr.write(`${label} failed (exit ${r.status}):\n${(r.stderr ?? '').slice(-4000)}\n`);
    throw new Error(`${label} failed`);
  }
  let rssKiB = NaN;
  if (timeBin) {
    try {
      rssKiB = Number(execFileSync('tail', ['-n1', rssFile], { encoding: 'utf8' }).trim());
    } catch {}
  }
  return { seconds, rssMiB: rssKiB / 1024 };
}

/**
 * Kiwi's restores are checked against the data set: every entry's type, mode, mtime (to the
 * nanosecond), size and symlink target (find -printf), and every file's bytes (diff -r).
 * Returns undefined when they match, else what differs.
 */
function verifyRestore(restoredRoot) {
  const listing = (dir) =>
    execFileSync('sh', ['-c', `cd ${JSON.stringify(dir)} && find . -printf '%p %y %m %T@ %s %l\\n' | LC_ALL=C sort`], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const a = listing(dataRoot);
  const b = listing(restoredRoot);
  if (a !== b) {
    const al = a.split('\n');
    const bl = b.split('\n');
    const i = al.findIndex((line, k) => line !== bl[k]);
    return `metadata differs at: ${al[i]} / restored: ${bl[i]}`;
  }
  const d = spawnSync('diff', ['-r', '-q', '--no-dereference', dataRoot, restoredRoot], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (d.status !== 0) return `contents differ: ${(d.stdout || d.stderr).split('\n').slice(0, 5).join('; ')}`;
  return undefined;
}

function duBytes(path) {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

const kiwiBin = join(root, 'apps', 'cli', 'dist', 'bin.js');
// Kiwi runs with the Node options its bin's shebang asks for, as an installed `kiwi` does.
const kiwiArgv = (argv) => [...kiwiNodeArgs(kiwiBin), kiwiBin, ...argv];

/** Whether ssh2 (under @kiwi-backup/storage-sftp) has its optional native crypto binding. */
function ssh2BindingBuilt() {
  try {
    const req = createRequire(join(root, 'packages', 'storage-sftp', 'package.json'));
    return existsSync(join(dirname(req.resolve('ssh2/package.json')), 'lib', 'protocol', 'crypto', 'build', 'Release', 'sshcrypto.node'));
  } catch {
    return false;
  }
}

const tools = {
  kiwi: {
    available: () => existsSync(kiwiBin),
    env: (repo) => ({ ...process.env, KIWI_PASSWORD: PASSWORD, KIWI_REPOSITORY: repo, KIWI_DATA_DIR: join(base, 'kiwi-datadir') }),
    init: (repo, env) => measure('kiwi init', process.execPath, kiwiArgv(['init']), { env }),
    backup: (repo, env, label) => measure(label, process.execPath, kiwiArgv(['backup', dataRoot, '--quiet']), { env }),
    restore: (repo, env, target) => measure('kiwi restore', process.execPath, kiwiArgv(['restore', 'latest', '--target', target, '--quiet']), { env }),
  },
  restic: {
    available: () => Boolean(which('restic')),
    env: (repo) => ({ ...process.env, RESTIC_PASSWORD: PASSWORD, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: join(base, 'restic-cache') }),
    init: (repo, env) => measure('restic init', 'restic', ['init', '--repository-version', '2'], { env }),
    backup: (repo, env, label) => measure(label, 'restic', ['backup', '--quiet', dataRoot], { env }),
    restore: (repo, env, target) => measure('restic restore', 'restic', ['restore', 'latest', '--target', target, '--quiet'], { env }),
  },
  borg: {
    available: () => Boolean(which('borg')),
    env: (repo) => ({ ...process.env, BORG_PASSPHRASE: PASSWORD, BORG_REPO: repo, BORG_BASE_DIR: join(base, 'borg-base'), BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' }),
    init: (repo, env) => measure('borg init', 'borg', ['init', '--encryption', 'repokey-blake2'], { env }),
    backup: (repo, env, label) => {
      const n = (tools.borg.n = (tools.borg.n ?? 0) + 1);
      return measure(label, 'borg', ['create', '--compression', 'zstd,3', `::s${n}`, dataRoot], { env });
    },
    restore: (repo, env, target) =>
      measure('borg extract', 'borg', ['extract', `::s${tools.borg.n}`], { env, cwd: target }),
  },
};

/** Kiwi against a loopback S3-compatible server or sshd: the same commands with another --repo. */
function remoteKiwi(kind) {
  const serversDir = join(root, 'packages', 'test-servers', 'dist');
  let server;
  let extraEnv = {};
  let url;
  const env = () => ({ ...process.env, KIWI_PASSWORD: PASSWORD, KIWI_REPOSITORY: url, KIWI_DATA_DIR: join(base, `${kind}-datadir`), ...extraEnv });
  const k = (label, argv, e, cwd) => measure(label, process.execPath, kiwiArgv(argv), { env: e, ...(cwd ? { cwd } : {}) });
  return {
    available: () => existsSync(kiwiBin) && existsSync(join(serversDir, 's3.js')) && (kind === 'kiwi-s3' || existsSync('/usr/sbin/sshd')),
    async setup() {
      if (kind === 'kiwi-s3') {
        const { startS3Server } = await import(join(serversDir, 's3.js'));
        server = await startS3Server();
        url = `s3:${server.endpoint}/${server.bucket}/bench`;
        extraEnv = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
        return server.directory;
      }
      const { startSshd } = await import(join(serversDir, 'sshd.js'));
      server = await startSshd();
      url = `sftp://${server.username}@${server.host}:${server.port}${server.root}/repo`;
      const configFile = join(base, 'sftp-config.json');
      await mkdir(join(base, 'kiwi-sftp-datadir'), { recursive: true });
      await writeFile(configFile, JSON.stringify({ storageOptions: { sftp: { privateKey: server.privateKeyPath, knownHostsFile: server.knownHostsPath } } }));
      tools[kind].configFile = configFile;
      return server.root;
    },
    async teardown() {
      await server?.stop();
    },
    env: () => env(),
    args: () => (tools[kind].configFile ? ['--config', tools[kind].configFile] : []),
    init: (repo, e) => k(`${kind} init`, ['init', ...tools[kind].args()], e),
    backup: (repo, e, label) => k(label, ['backup', dataRoot, '--quiet', ...tools[kind].args()], e),
    restore: (repo, e, target) => k(`${kind} restore`, ['restore', 'latest', '--target', target, '--quiet', ...tools[kind].args()], e),
  };
}
tools['kiwi-s3'] = remoteKiwi('kiwi-s3');
tools['kiwi-sftp'] = remoteKiwi('kiwi-sftp');

const steps = ['first backup', 'no-change backup', 'backup after ~1 % change', 'full restore'];

async function main() {
  await mkdir(base, { recursive: true });
  process.stderr.write(`building the data set in ${dataRoot} (once)...\n`);
  await ensureDataset(dataRoot);
  // Start from the unchanged data set every run.
  const pristine = join(base, '.pristine-ok');
  if (existsSync(pristine)) {
    await rm(dataRoot, { recursive: true, force: true });
    await ensureDataset(dataRoot);
  }
  await writeFile(pristine, '1');
  const dataSize = duBytes(dataRoot);
  const fileCount = Number(execFileSync('sh', ['-c', `find ${JSON.stringify(dataRoot)} -type f | wc -l`], { encoding: 'utf8' }).trim());

  const active = toolsWanted.filter((t) => tools[t]?.available());
  for (const t of toolsWanted) if (!active.includes(t)) process.stderr.write(`skipping ${t}: not installed\n`);
  const results = {};
  const repos = {};
  const verified = [];
  for (const t of active) {
    repos[t] = join(base, `repo-${t}`);
    if (tools[t].setup) repos[t] = await tools[t].setup();
    else await rm(repos[t], { recursive: true, force: true });
    await rm(join(base, `${t}-datadir`), { recursive: true, force: true });
    if (t === 'restic') await rm(join(base, 'restic-cache'), { recursive: true, force: true });
    if (t === 'borg') await rm(join(base, 'borg-base'), { recursive: true, force: true });
    results[t] = {};
    tools[t].init(repos[t], tools[t].env(repos[t]));
  }
  const dropCaches = () => spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
  for (const t of active) {
    dropCaches();
    process.stderr.write(`${t}: first backup...\n`);
    results[t]['first backup'] = tools[t].backup(repos[t], tools[t].env(repos[t]), `${t} first backup`);
    results[t]['first backup'].repo = duBytes(repos[t]);
  }
  // Repeated steps: every run of every tool, the tools taking turns so that drift on the machine hits all alike.
  const repeated = (step, once) => {
    const all = Object.fromEntries(active.map((t) => [t, []]));
    for (let run = 1; run <= runs; run++) {
      for (const t of active) {
        process.stderr.write(`${t}: ${step}${runs > 1 ? ` (run ${run} of ${runs})` : ''}...\n`);
        all[t].push(once(t));
      }
    }
    for (const t of active) {
      const sorted = [...all[t]].sort((a, b) => a.seconds - b.seconds);
      results[t][step] = {
        seconds: sorted[Math.floor((sorted.length - 1) / 2)].seconds,
        all: all[t].map((r) => r.seconds),
        rssMiB: Math.max(...all[t].map((r) => r.rssMiB)),
        repo: duBytes(repos[t]),
      };
    }
  };
  repeated('no-change backup', (t) => tools[t].backup(repos[t], tools[t].env(repos[t]), `${t} no-change backup`));
  await applyChange(dataRoot);
  for (const t of active) {
    process.stderr.write(`${t}: backup after change...\n`);
    results[t]['backup after ~1 % change'] = tools[t].backup(repos[t], tools[t].env(repos[t]), `${t} changed backup`);
    results[t]['backup after ~1 % change'].repo = duBytes(repos[t]);
  }
  repeated('full restore', (t) => {
    const target = join(base, `restore-${t}`);
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    dropCaches();
    const r = tools[t].restore(repos[t], tools[t].env(repos[t]), target);
    if (t.startsWith('kiwi')) {
      const problem = verifyRestore(join(target, dataRoot));
      if (problem) throw new Error(`${t}: the restored tree is not the data set: ${problem}`);
      process.stderr.write(`${t}: restore verified (bytes, modes, mtimes, symlinks)\n`);
      if (!verified.includes(t)) verified.push(t);
    }
    if (!args.includes('--keep')) rmSync(target, { recursive: true, force: true });
    return r;
  });
  for (const t of active) await tools[t].teardown?.();

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const lines = [];
  lines.push(`Data set: ${(dataSize / 2 ** 30).toFixed(2)} GiB in ${fileCount} files. Machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}.`);
  if (active.includes('kiwi-sftp')) lines.push(`ssh2's native crypto binding (scripts/build-ssh2-binding.mjs): ${ssh2BindingBuilt() ? 'built' : 'NOT built'}.`);
  lines.push(`No-change backups and restores: median of ${runs} run${runs > 1 ? 's' : ''} per tool, the tools taking turns; the other steps run once.`);
  lines.push('');
  lines.push(`| step | tool | wall time (s) | runs (s) | peak RSS (MiB) | repository size (MiB) | Kiwi ÷ restic (time); remote ÷ local |`);
  lines.push('| --- | --- | ---: | --- | ---: | ---: | ---: |');
  for (const step of steps) {
    for (const t of active) {
      const r = results[t][step];
      const ratio =
        t === 'kiwi' && results.restic
          ? (r.seconds / results.restic[step].seconds).toFixed(2)
          : t.startsWith('kiwi-') && results.kiwi
            ? `${(r.seconds / results.kiwi[step].seconds).toFixed(2)} of local`
            : '';
      const spread = r.all && r.all.length > 1 ? r.all.map((x) => x.toFixed(2)).join(', ') : '';
      lines.push(`| ${step} | ${t} | ${r.seconds.toFixed(2)} | ${spread} | ${Number.isFinite(r.rssMiB) ? r.rssMiB.toFixed(0) : '?'} | ${(r.repo / 2 ** 20).toFixed(1)} | ${ratio} |`);
    }
  }
  if (results.kiwi && results.restic) {
    const k = results.kiwi['backup after ~1 % change'].repo;
    const rr = results.restic['backup after ~1 % change'].repo;
    lines.push('');
    lines.push(`Final repository size, Kiwi ÷ restic: ${(k / rr).toFixed(3)}`);
  }
  if (verified.length > 0) {
    lines.push('');
    lines.push(`Restores checked against the data set (bytes, modes, mtimes to the ns, symlinks): ${verified.join(', ')}.`);
  }
  const table = lines.join('\n');
  process.stdout.write(`${table}\n`);
  await writeFile(join(base, 'last-result.md'), `${table}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err}\n`);
  process.exit(1);
});
