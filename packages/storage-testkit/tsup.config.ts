import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  target: 'node20',
  dts: true,
  clean: true,
  sourcemap: true,
  // vitest is a peer dependency: the adapter author's own copy must be used.
  external: ['vitest', '@kiwi-backup/core'],
  removeNodeProtocol: false,
});
