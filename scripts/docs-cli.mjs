#!/usr/bin/env node
// Writes docs/cli.md and the man pages (apps/cli/man/*.1) from the CLI's command definitions.
// Run after `pnpm build` (it reads apps/cli/dist): `pnpm docs:cli`. `--check` only compares and
// exits 1 when a file is out of date (the CLI's docs test does the same).
import { readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { generatedDocs } = await import(join(root, 'apps/cli/dist/docs.js'));
const files = await generatedDocs();
const check = process.argv.includes('--check');
let stale = 0;
for (const [rel, text] of files) {
  const file = join(root, rel);
  let current;
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === text) continue;
  stale++;
  if (check) process.stderr.write(`out of date: ${rel}\n`);
  else {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    process.stdout.write(`wrote ${rel}\n`);
  }
}
// Man pages of commands that no longer exist.
const manDir = join(root, 'apps/cli/man');
for (const f of readdirSync(manDir)) {
  if (files.has(`apps/cli/man/${f}`)) continue;
  stale++;
  if (check) process.stderr.write(`no longer generated: apps/cli/man/${f}\n`);
  else rmSync(join(manDir, f));
}
if (check && stale) process.exit(1);
