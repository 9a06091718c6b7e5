import { readFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { defineConfig } from 'tsup';

/** `import text from './file?raw'`: the file's contents as a string (the daemon's page), as Vite does it. */
const rawText = {
  name: 'raw-text',
  setup(build: {
    onResolve(o: { filter: RegExp }, cb: (args: { path: string; resolveDir: string }) => { path: string; namespace: string }): void;
    onLoad(o: { filter: RegExp; namespace: string }, cb: (args: { path: string }) => Promise<{ contents: string; loader: 'text' }>): void;
  }) {
    // The path keeps its `?raw`, so tsup's own CSS handling (which matches `.css$`) leaves it alone.
    // Relative to the package, so no build machine's path ends up in dist/.
    build.onResolve({ filter: /\?raw$/ }, (args) => ({ path: relative(import.meta.dirname, resolve(args.resolveDir, args.path)), namespace: 'raw-text' }));
    build.onLoad({ filter: /.*/, namespace: 'raw-text' }, async (args) => ({
      contents: await readFile(resolve(import.meta.dirname, args.path.slice(0, -'?raw'.length)), 'utf8'),
      loader: 'text',
    }));
  },
};

/**
 * citty is bundled (`noExternal`) with `consola` and `consola/utils` replaced by src/consola-stub.ts:
 * citty imports consola at its top level but only uses it in `showUsage` and `runMain`, which Kiwi
 * does not call, and loading consola cost ~70 ms at every start of every command.
 */
const consolaStub = {
  name: 'consola-stub',
  setup(build: { onResolve(o: { filter: RegExp }, cb: () => { path: string }): void }) {
    build.onResolve({ filter: /^consola(\/utils)?$/ }, () => ({ path: resolve(import.meta.dirname, 'src/consola-stub.ts') }));
  },
};

export default defineConfig({
  entry: ['src/bin.ts', 'src/index.ts', 'src/docs.ts', 'src/commands/*.ts'],
  format: ['esm'],
  target: 'node20',
  dts: { entry: ['src/index.ts'] },
  clean: true,
  sourcemap: true,
  splitting: true,
  noExternal: ['citty'],
  esbuildPlugins: [rawText, consolaStub],
});
