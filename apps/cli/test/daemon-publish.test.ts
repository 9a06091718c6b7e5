import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { removeDir, tempDir } from './helpers.js';

/** The page ships inside the published CLI: `pnpm pack` it and look for the page in the daemon's code. */
it('the packed CLI carries the daemon and its page (no build step or extra file at run time)', async () => {
  const dir = await tempDir('kiwi-cli-pack-');
  try {
    execFileSync('pnpm', ['pack', '--pack-destination', dir], { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir]);
    const files = execFileSync('find', ['.', '-type', 'f'], { cwd: join(dir, 'package'), encoding: 'utf8' }).split('\n');
    expect(files).toContain('./dist/commands/daemon.js');
    const code = files.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(dir, 'package', f), 'utf8')).join('\n');
    expect(code).toContain('<title>Kiwi</title>');
    expect(code).toContain('/api/events');
    expect(code).not.toContain('/work/'); // no build machine's paths
    const pkg = JSON.parse(readFileSync(join(dir, 'package', 'package.json'), 'utf8'));
    expect(pkg.dependencies.croner).toBeTruthy();
    expect(pkg.dependencies['@kiwi-backup/plugin-notify']).toMatch(/^\^?\d/);
    expect(pkg.devDependencies?.['playwright-core']).toBeTruthy();
  } finally {
    await removeDir(dir);
  }
}, 120_000);
