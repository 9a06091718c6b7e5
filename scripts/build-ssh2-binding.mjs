#!/usr/bin/env node
/**
 * `pnpm install` hook (the root package's postinstall): build ssh2's optional native crypto
 * binding, which @kiwi-backup/storage-sftp uses through ssh2-sftp-client.
 *
 * Without the binding ssh2 decrypts every incoming SSH packet (at most 32 KiB) with a new
 * `crypto.createDecipheriv` and extra copies; with it, an SFTP restore of ~600 MiB costs about
 * 0.5 CPU-s less in Kiwi's main thread (docs/benchmarks.md). ssh2 works either way.
 *
 * pnpm does not run ssh2's own install script (pnpm-workspace.yaml, allowBuilds), because it
 * calls node-gyp with `--target`, which downloads Node's headers. This builds against the
 * headers of the running Node when they are installed next to it (as Node's official builds
 * and Debian's nodejs package do) and never downloads anything. Any failure is reported and
 * ignored: the install goes on and SFTP still works.
 *
 * Users who install @kiwi-backup/storage-sftp with npm get the binding from ssh2's own install
 * script; with pnpm they can allow it (`allowBuilds: { ssh2: true }`) where downloads work.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const say = (msg) => process.stdout.write(`ssh2 crypto binding: ${msg}\n`);

function findSsh2() {
  try {
    const req = createRequire(join(root, 'packages', 'storage-sftp', 'package.json'));
    return dirname(req.resolve('ssh2/package.json'));
  } catch {
    return undefined;
  }
}

function loads(file) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: 'ignore' });
  return r.status === 0;
}

function nodeGyp() {
  // The package manager puts node-gyp on PATH for install scripts; else npm's bundled copy.
  const onPath = spawnSync('node-gyp', ['--version'], { stdio: 'ignore' });
  if (!onPath.error && onPath.status === 0) return ['node-gyp', []];
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return [process.execPath, [bundled]];
  return undefined;
}

function main() {
  if (process.platform === 'win32') return;
  const ssh2 = findSsh2();
  if (!ssh2) return; // storage-sftp not installed (a filtered install)
  const dir = join(ssh2, 'lib', 'protocol', 'crypto');
  const built = join(dir, 'build', 'Release', 'sshcrypto.node');
  if (existsSync(built) && loads(built)) return; // already built for this Node

  const prefix = dirname(dirname(process.execPath));
  if (!existsSync(join(prefix, 'include', 'node', 'node.h'))) {
    say(`not built (no Node headers under ${join(prefix, 'include', 'node')}); SFTP works, with more CPU per byte`);
    return;
  }
  const gyp = nodeGyp();
  if (!gyp) {
    say('not built (node-gyp not found); SFTP works, with more CPU per byte');
    return;
  }
  const opensslMajor = /^\d+/.exec(process.versions.openssl)?.[0] ?? '3';
  const r = spawnSync(gyp[0], [...gyp[1], 'rebuild', `--nodedir=${prefix}`, `--real_openssl_major=${opensslMajor}`], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, npm_config_nodedir: prefix },
  });
  if (r.status === 0 && existsSync(built) && loads(built)) {
    say('built');
    return;
  }
  const why = r.error ? r.error.message : `node-gyp exit ${r.status}`;
  say(`not built (${why}); SFTP works, with more CPU per byte. Needs python3, make and a C++ compiler.`);
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-8).join('\n');
  if (tail) process.stdout.write(`${tail}\n`);
}

try {
  main();
} catch (err) {
  say(`not built (${err instanceof Error ? err.message : String(err)})`);
}
