import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

// prune and forget --prune keep V8's young generation at its starting size, and its old generation
// growing by small steps (small-heap.ts).
// Each run is a fresh Node process (this one's young generation has long grown): the module,
// transpiled as it is, then a workload whose survivors would grow the semi-spaces to their maximum.
const dir = mkdtempSync(join(tmpdir(), 'kiwi-small-heap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const source = readFileSync(new URL('../src/small-heap.ts', import.meta.url), 'utf8');
writeFileSync(join(dir, 'small-heap.mjs'), ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText);
writeFileSync(
  join(dir, 'workload.mjs'),
  `import { getHeapSpaceStatistics } from 'node:v8';
import { keepHeapSmall } from './small-heap.mjs';
if (process.argv[2] === 'small') { keepHeapSmall(); keepHeapSmall(); }
const keep = [];
for (let round = 0; round < 2; round++) {
  for (let i = 0; i < 300000; i++) {
    const o = { i, s: 'x' + i, a: [i, i + 1] };
    if (i % 3 === 0) keep.push(o);
    if (keep.length > 50000) keep.length = 0;
  }
  await new Promise((r) => setTimeout(r, 5));
}
process.stdout.write(String(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));
`,
);
// Waves of objects that live a few milliseconds each (20 × 100,000 of them, as a prune's per-blob
// objects): the largest the old generation grew to. 'young' keeps only the young generation small
// (which alone shrinks the old generation too: fewer objects are promoted).
writeFileSync(
  join(dir, 'old-generation.mjs'),
  `import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { keepHeapSmall } from './small-heap.mjs';
if (process.argv[2] === 'small') keepHeapSmall();
if (process.argv[2] === 'young') setFlagsFromString('--semi-space-growth-factor=1');
let max = 0;
for (let round = 0; round < 20; round++) {
  const keep = [];
  for (let i = 0; i < 100000; i++) keep.push({ i, s: 'x' + i + round });
  await new Promise((r) => setTimeout(r, 1));
  max = Math.max(max, getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_size);
}
process.stdout.write(String(max));
`,
);
const largestOldSpace = (mode: string): number => Number(execFileSync(process.execPath, ['--single-threaded-gc', join(dir, 'old-generation.mjs'), mode], { encoding: 'utf8' }));

const newSpace = (mode: string): number => Number(execFileSync(process.execPath, ['--single-threaded-gc', join(dir, 'workload.mjs'), mode], { encoding: 'utf8' }));

describe('keepHeapSmall', () => {
  it('keeps the semi-spaces at their starting size where they would otherwise grow', () => {
    const grown = newSpace('default');
    const kept = newSpace('small');
    expect(kept).toBeLessThanOrEqual(4 << 20);
    expect(grown).toBeGreaterThan(kept);
  });

  it('lets the old generation grow by smaller steps (measured: half of what it grows to with the young generation kept small alone)', () => {
    const grown = largestOldSpace('young');
    const kept = largestOldSpace('small');
    expect(kept).toBeLessThan(grown * 0.75);
  });
});
