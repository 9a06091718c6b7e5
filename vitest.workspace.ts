/**
 * The one list of the workspace's test projects. The root `vitest.config.ts`
 * reads it (Vitest 4 takes `test.projects`), so adding a package here is all
 * it takes for `pnpm test` to run its tests.
 */
export default [
  'packages/*',
  'plugins/*',
  'apps/*',
];
