'use strict';
/**
 * Install step: builds the addon with node-gyp against the local Node headers
 * (never downloads them when the running Node ships its headers). A failed
 * build does not fail the install: Kiwi then restores mtimes to the
 * microsecond only, does not back up or restore extended attributes and ACLs,
 * and does not recreate FIFOs, devices and sockets, and says so (its tests
 * fail under CI=true).
 */
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

if (process.platform === 'win32') {
  console.log('@kiwi-backup/native-fs: not built on Windows (Kiwi uses Node\'s utimes there).');
  process.exit(0);
}

const args = ['rebuild'];
const env = { ...process.env };
if (!env.npm_config_nodedir) {
  // The prefix of the running Node, when its headers are installed there.
  const prefix = path.dirname(path.dirname(process.execPath));
  if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
}

function tryRun(cmd, argv) {
  return spawnSync(cmd, argv, { stdio: 'inherit', env, cwd: __dirname });
}

// node-gyp as the package manager puts it on PATH for install scripts; else npm's bundled copy.
let r = tryRun('node-gyp', args);
if (r.error && r.error.code === 'ENOENT') {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const found = candidates.find((c) => existsSync(c));
  if (found) r = tryRun(process.execPath, [found, ...args]);
}
const built = existsSync(path.join(__dirname, 'build', 'Release', 'native_fs.node'));
if (r.status !== 0 || !built) {
  console.warn(
    '\n@kiwi-backup/native-fs: WARNING: the native addon was not built' +
      (r.error ? ` (${r.error.message})` : ` (node-gyp exit ${r.status})`) +
      '.\nKiwi still works, but restored mtimes are exact only to the microsecond, extended attributes\n' +
      'and ACLs are not backed up or restored, FIFOs, devices and sockets are not recreated (each is reported),\n' +
      'and blobs are decrypted and verified on the main thread.\n' +
      'Install python3, make and a C compiler, then run `pnpm --filter @kiwi-backup/native-fs run install`.\n',
  );
}
process.exit(0);
