import { fileURLToPath } from 'node:url';
import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineProject, type UserWorkspaceConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

// The AWS SDK warns under Node 20 (which Kiwi supports) once per process; keep test output readable.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * Tests run against the TypeScript sources of the workspace packages, not their
 * built `dist/`, so a change is tested without a rebuild. Each workspace
 * package name is aliased to its `src/index.ts` (and subpath exports to their
 * source files).
 */
function workspaceAliases(): Record<string, string> {
  const aliases: Record<string, string> = {};
  for (const group of ['packages', 'plugins', 'apps']) {
    const dir = join(root, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      const pkgFile = join(dir, name, 'package.json');
      if (!existsSync(pkgFile)) continue;
      const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { name: string; kiwiSource?: Record<string, string> };
      const sources = pkg.kiwiSource ?? { '.': './src/index.ts' };
      for (const [sub, file] of Object.entries(sources)) {
        const spec = sub === '.' ? pkg.name : `${pkg.name}/${sub.replace(/^\.\//, '')}`;
        aliases[spec] = join(dir, name, file);
      }
    }
  }
  return aliases;
}

export function kiwiProject(name: string, extra: UserWorkspaceConfig['test'] = {}): UserWorkspaceConfig {
  const aliases = workspaceAliases();
  // Longest specifiers first so '@kiwi-backup/storage-testkit/x' wins over '@kiwi-backup/storage-testkit'.
  const alias = Object.entries(aliases)
    .sort((a, b) => b[0].length - a[0].length)
    .map(([find, replacement]) => ({ find: new RegExp(`^${find.replace(/[/\-]/g, '\\$&')}$`), replacement }));
  return defineProject({
    resolve: { alias },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
      ...extra,
    },
  });
}
