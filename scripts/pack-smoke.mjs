#!/usr/bin/env node
// Packs @kiwi-backup/core and @kiwi-backup/storage-local as they would be published (`pnpm pack`),
// installs the tarballs with npm into an empty folder, and type-checks and runs a small TypeScript
// program against them. Proves the exports map, files list, types and dependencies are right.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'kiwi-pack-'));
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
try {
  const tarballs = [];
  for (const pkg of ['packages/core', 'packages/storage-local']) {
    sh('pnpm', ['pack', '--pack-destination', work], join(root, pkg));
  }
  // Every published package ships its README (and the CLI its man pages).
  for (const pkg of ['packages/core', 'packages/storage-local', 'packages/storage-s3', 'packages/storage-sftp', 'packages/storage-memory', 'packages/storage-testkit', 'plugins/script-launcher', 'plugins/mysql-state', 'apps/cli']) {
    const listed = sh('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], join(root, pkg));
    const files = JSON.parse(listed)[0].files.map((f) => f.path);
    if (!files.includes('README.md')) throw new Error(`${pkg}: README.md is not in the package`);
    if (pkg === 'apps/cli' && !files.includes('man/kiwi-backup.1')) throw new Error(`${pkg}: the man pages are not in the package`);
  }
  for (const f of readdirSync(work)) if (f.endsWith('.tgz')) tarballs.push(join(work, f));
  const app = join(work, 'app');
  sh('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'smoke', private: true, type: 'module' }));
  const tsVersion = JSON.parse(sh('node', ['-p', 'JSON.stringify(require("typescript/package.json").version)'], root));
  sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs, `typescript@${tsVersion}`, '@types/node@20'], app);
  writeFileSync(
    join(app, 'main.ts'),
    `import { Repository, compose, type Storage, type Snapshot } from '@kiwi-backup/core';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const storage: Storage = createLocalStorage(join(mkdtempSync(join(tmpdir(), 'smoke-')), 'repo'));
await storage.create();
const repo = await Repository.init(storage, 'smoke-password');
const reopened = await Repository.open(storage, 'smoke-password');
const snapshots: Array<{ id: string; snapshot: Snapshot }> = await reopened.listSnapshots();
const order: number[] = [];
await compose<{ n: number }>([async (_c, next) => { order.push(1); await next(); order.push(3); }, () => { order.push(2); }])({ n: 0 });
if (order.join() !== '1,2,3' || snapshots.length !== 0 || repo.id !== reopened.id) throw new Error('smoke test failed');
await repo.close();
await reopened.close();
console.log('smoke ok');
`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] } }),
  );
  sh(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], app);
  sh(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.', '--noEmit', 'false', '--outDir', 'out'], app);
  const out = sh('node', [join(app, 'out', 'main.js')], app);
  if (!out.includes('smoke ok')) throw new Error(`unexpected output: ${out}`);
  process.stdout.write('pack smoke test passed: packed core + storage-local install, type-check and run\n');
} finally {
  if (!process.argv.includes('--keep')) rmSync(work, { recursive: true, force: true });
}
