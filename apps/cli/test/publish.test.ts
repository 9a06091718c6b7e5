import { it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

it('packed @kiwi-backup/core and storage-local install with npm, type-check and run', () => {
  const out = execFileSync(process.execPath, [join(root, 'scripts', 'pack-smoke.mjs')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  expect(out).toContain('pack smoke test passed');
}, 300_000);
