// Walker speed. Run after a build: `cd packages/core && npx tsup && node bench/walker.mjs [path]`
// (or set KIWI_CORE to another module path exporting the same API).
// Without a path, builds a synthetic tree of ~50k entries (500 dirs × 100 files) in the temp dir.
// Walks it several times (warm dentry cache) at different lstat concurrencies and prints entries/s.
import { mkdir, writeFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const mod = await import(process.env.KIWI_CORE ?? new URL('../dist/index.js', import.meta.url).href);
const { walk } = mod;

let target = process.argv[2];
let cleanup;
if (!target) {
  target = await mkdtemp(join(tmpdir(), 'kiwi-walk-bench-'));
  cleanup = target;
  for (let a = 0; a < 20; a++) {
    for (let b = 0; b < 25; b++) {
      const d = join(target, `dir${a}`, `sub${b}`);
      await mkdir(d, { recursive: true });
      await Promise.all(Array.from({ length: 100 }, (_, i) => writeFile(join(d, `file-${i}.txt`), '')));
    }
  }
}
try {
  for (const [statMode, concurrency] of [['auto', 32], ['sync', 32], ['async', 8], ['async', 32], ['async', 64], ['auto', 32]]) {
    let best = Infinity;
    let n = 0;
    let errors = 0;
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      n = 0;
      errors = 0;
      for await (const e of walk([target], { concurrency, statMode })) {
        if (e.kind === 'error') errors++;
        else if (e.kind !== 'leave') n++;
      }
      best = Math.min(best, performance.now() - t0);
    }
    console.log(
      `${statMode.padEnd(5)} concurrency ${String(concurrency).padStart(2)}: ${n} entries (${errors} errors) in ${best.toFixed(0)} ms = ${Math.round((n / best) * 1000)} entries/s`,
    );
  }
} finally {
  if (cleanup) await rm(cleanup, { recursive: true, force: true });
}
