import { createRequire } from 'node:module';

export type NativeFs = typeof import('../index.cjs');

let loaded: NativeFs | undefined;
let loadError: string | undefined;
try {
  loaded = createRequire(import.meta.url)('../index.cjs') as NativeFs;
} catch (err) {
  loadError = (err as Error).message;
}

/** The addon, or undefined; outside CI a missing build skips the tests with a warning, under CI=true they fail. */
export const nfs = loaded;
export const nfsLoadError = loadError;
export const skipNative = (!loaded && process.env.CI !== 'true') || process.platform === 'win32';
if (!loaded && skipNative && process.platform !== 'win32') {
  console.warn(`\n*** native-fs addon not built (${loadError}); run \`pnpm --filter @kiwi-backup/native-fs run install\`. Tests skipped. ***\n`);
}
