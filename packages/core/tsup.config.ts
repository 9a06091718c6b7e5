import { defineConfig } from 'tsup';

export default defineConfig({
  // saver-worker: the file savers' thread (backup/savers), loaded by path at run time.
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts', 'saver-worker': 'src/backup/savers/saver-worker.ts' },
  format: ['esm'],
  target: 'node20',
  dts: true,
  clean: true,
  sourcemap: true,
});
