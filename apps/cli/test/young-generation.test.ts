import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

// prune and forget --prune keep V8's young generation at its starting size (young-generation.ts).
// Each run is a fresh Node process (this one's young generation has long grown): the module,
// transpiled as it is, then a workload whose survivors would grow the semi-spaces to their maximum.
const dir = mkdtempSync(join(tmpdir(), 'kiwi-young-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const source = readFileSync(new URL('../src/young-generation.ts', import.meta.url), 'utf8');
writeFileSync(join(dir, 'young-generation.mjs'), ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText);
writeFileSync(
  join(dir, 'workload.mjs'),
  `import { getHeapSpaceStatistics } from 'node:v8';
import { keepYoungGenerationSmall } from './young-generation.mjs';
if (process.argv[2] === 'small') { keepYoungGenerationSmall(); keepYoungGenerationSmall(); }
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

const newSpace = (mode: string): number => Number(execFileSync(process.execPath, ['--single-threaded-gc', join(dir, 'workload.mjs'), mode], { encoding: 'utf8' }));

describe('keepYoungGenerationSmall', () => {
  it('keeps the semi-spaces at their starting size where they would otherwise grow', () => {
    const grown = newSpace('default');
    const kept = newSpace('small');
    expect(kept).toBeLessThanOrEqual(4 << 20);
    expect(grown).toBeGreaterThan(kept);
  });
});
