#!/usr/bin/env node
// `pnpm test:all`: set up everything the whole test suite needs, then run it.
// The tests start their own servers (OpenSSH sshd, MariaDB, an S3-compatible server from npm) on
// loopback ports in temporary directories, and compare restored extended attributes, ACLs and
// capabilities with Debian's attr, acl and libcap2-bin tools; this script only makes sure the system
// binaries exist, installing Debian's packages when it can (as root, or with passwordless sudo).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const need = [
  { what: 'OpenSSH server (sshd)', bins: ['/usr/sbin/sshd'], packages: ['openssh-server', 'openssh-client'] },
  { what: 'ssh-keygen', bins: ['ssh-keygen'], packages: ['openssh-client'] },
  { what: 'MariaDB server', bins: ['mariadbd', '/usr/sbin/mariadbd'], packages: ['mariadb-server'] },
  { what: 'MariaDB client tools', bins: ['mariadb-dump', 'mariadb'], packages: ['mariadb-client'] },
  { what: 'GNU time (peak memory of the hostile-input suite)', bins: ['/usr/bin/time'], packages: ['time'] },
  { what: 'restic (the retention acceptance test compares forget decisions with it)', bins: ['restic'], packages: ['restic'] },
  // Restore fidelity tests: set and compare extended attributes, POSIX ACLs and file capabilities.
  { what: 'getfattr/setfattr', bins: ['getfattr'], packages: ['attr'] },
  { what: 'getfacl/setfacl', bins: ['getfacl'], packages: ['acl'] },
  { what: 'setcap/getcap', bins: ['setcap', '/usr/sbin/setcap', '/sbin/setcap'], packages: ['libcap2-bin'] },
  // The daemon's page is tested in Debian's headless Chromium (driven by playwright-core, which downloads nothing).
  { what: 'Chromium', bins: ['/usr/bin/chromium'], packages: ['chromium'] },
  // The CLI's tests check that its completion scripts parse in each shell and its man pages render.
  { what: 'zsh', bins: ['zsh'], packages: ['zsh'] },
  { what: 'fish', bins: ['fish'], packages: ['fish'] },
  { what: 'groff', bins: ['groff'], packages: ['groff-base'] },
  { what: 'script (util-linux)', bins: ['script'], packages: ['bsdutils'] },
];

function onPath(bin) {
  if (bin.startsWith('/')) return existsSync(bin);
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(join(dir, bin)));
}

function run(cmd, args, opts = {}) {
  process.stderr.write(`$ ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  return r.status === 0;
}

const missing = need.filter((n) => !n.bins.some(onPath));
if (missing.length > 0) {
  const packages = [...new Set(missing.flatMap((m) => m.packages))];
  process.stderr.write(`test setup: missing ${missing.map((m) => m.what).join(', ')}; installing ${packages.join(' ')}\n`);
  const isRoot = process.getuid?.() === 0;
  const sudo = isRoot ? [] : spawnSync('sudo', ['-n', 'true']).status === 0 ? ['sudo', '-n'] : null;
  if (sudo === null || !onPath('apt-get')) {
    process.stderr.write(
      `test setup: cannot install them here (need root or passwordless sudo, and apt-get).\n` +
        `Install them yourself: apt-get install -y ${packages.join(' ')}\n` +
        `Tests that need them are skipped with a warning (under CI=true they fail).\n`,
    );
  } else {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const prefix = sudo.length ? sudo : [];
    const exec = (args) => run(prefix[0] ?? args[0], prefix.length ? [...prefix.slice(1), ...args] : args.slice(1), { env });
    if (!exec(['apt-get', 'update', '-qq']) || !exec(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages])) {
      process.stderr.write('test setup: apt-get failed\n');
      process.exit(1);
    }
  }
}

// The pnpm running this script (a JS file for some installs, a native executable for others), else the one on PATH.
const execpath = process.env.npm_execpath ?? '';
const pnpm = !execpath.includes('pnpm') ? ['pnpm'] : /\.[cm]?js$/.test(execpath) ? [process.execPath, execpath] : [execpath];
const report = join(mkdtempSync(join(tmpdir(), 'kiwi-test-')), 'vitest.json');
// What `pnpm test` does (build, then vitest), with a JSON report next to the usual output.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const vitest = join(root, 'node_modules', '.bin', 'vitest');
const ok =
  run(pnpm[0], [...pnpm.slice(1), 'run', 'build'], { env: process.env, cwd: root }) &&
  run(vitest, ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`], { env: process.env, cwd: root });
// One plain closing line with the counts, for humans and CI logs.
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  process.stdout.write(`\nTests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + (r.numTodoTests ?? 0)} skipped\n`);
} catch {
  process.stdout.write('\nTests: no report was written (the run failed before the tests)\n');
}
process.exit(ok ? 0 : 1);
