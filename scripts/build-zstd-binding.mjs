#!/usr/bin/env node
/**
 * `pnpm install` hook (the root package's postinstall): build zstd-napi's native binding, which
 * @kiwi-backup/core uses to decompress with a hard output bound (packages/core/src/compression).
 *
 * pnpm does not run zstd-napi's own install script (pnpm-workspace.yaml, allowBuilds): it first
 * tries to download a prebuilt binary, and its node-gyp fallback may download Node's headers.
 * This builds the binding from the zstd sources bundled in the npm package, against the headers
 * of the running Node (installed next to it by Node's official builds and Debian's nodejs
 * package), and never downloads anything. It takes about a minute on two cores, once.
 *
 * Unlike the optional ssh2 binding, Kiwi cannot read a repository without it: a failed build
 * fails the install with the reason. Users who install @kiwi-backup/core with npm get the binding
 * from zstd-napi's own install script (a prebuilt binary, or a build from source).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const say = (msg) => process.stdout.write(`zstd-napi binding: ${msg}\n`);

function findPackage() {
  try {
    const req = createRequire(join(root, 'packages', 'core', 'package.json'));
    return dirname(req.resolve('zstd-napi/package.json'));
  } catch {
    return undefined;
  }
}

function loads(dir) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(dir, 'binding.js'))})`], { stdio: 'ignore' });
  return r.status === 0;
}

function nodeGyp() {
  const onPath = spawnSync('node-gyp', ['--version'], { stdio: 'ignore' });
  if (!onPath.error && onPath.status === 0) return ['node-gyp', []];
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return [process.execPath, [bundled]];
  return undefined;
}

function main() {
  const dir = findPackage();
  if (!dir) return 0; // core not installed (a filtered install)
  if (loads(dir)) return 0; // already built for this Node
  const prefix = dirname(dirname(process.execPath));
  const args = ['rebuild'];
  const env = { ...process.env };
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${prefix}`);
    env.npm_config_nodedir = prefix;
  }
  const gyp = nodeGyp();
  if (!gyp) {
    say('NOT BUILT: node-gyp not found. Kiwi cannot decompress without it. Install npm (it bundles node-gyp), python3, make and a C++ compiler, then run `pnpm install` again.');
    return 1;
  }
  say('building from the bundled zstd sources (about a minute)…');
  const r = spawnSync(gyp[0], [...gyp[1], ...args], { cwd: dir, encoding: 'utf8', env });
  if (r.status === 0 && loads(dir)) {
    say('built');
    return 0;
  }
  const why = r.error ? r.error.message : `node-gyp exit ${r.status}`;
  say(`NOT BUILT (${why}). Kiwi cannot decompress without it. Needs python3, make and a C++ compiler.`);
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-12).join('\n');
  if (tail) process.stdout.write(`${tail}\n`);
  return 1;
}

let code = 1;
try {
  code = main();
} catch (err) {
  say(`NOT BUILT (${err instanceof Error ? err.message : String(err)})`);
}
process.exit(code);
