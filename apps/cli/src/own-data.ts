import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { parseRepositoryUrl, resolveCacheDir } from '@kiwi-backup/core';
import type { Session } from './session.js';

/**
 * What a backup must never store: Kiwi's own data directory (the default repository, its password
 * file, config and plug-ins), its cache directory, and the repository being written to, when it
 * is a local directory.
 * Backing them up copies the repository into itself: `kiwi backup ~` with the default repository
 * under `~` would grow by the repository's size on every run.
 *
 * Returns the paths that lie inside one of the sources (so the walk would reach them), and
 * gitignore patterns that exclude each of them with everything below.
 */
export async function ownDataExcludes(
  session: Session,
  sources: readonly string[],
  cacheDir: string = resolveCacheDir(session.env),
): Promise<{ paths: string[]; patterns: string[] }> {
  const candidates = new Set<string>([resolve(session.dataDir), resolve(cacheDir)]);
  try {
    const { scheme, rest } = parseRepositoryUrl(session.repoUrl);
    if (scheme === 'local') candidates.add(resolve(rest));
  } catch {
    // a URL the storage will reject with a better message
  }
  // Compare real paths (a source given through a symlink, or a data directory behind one).
  const real = async (p: string) => realpath(p).catch(() => p);
  const realSources = await Promise.all(sources.map(real));
  const paths: string[] = [];
  for (const c of candidates) {
    const rc = await real(c);
    const inside = realSources.some((s) => {
      const rel = relative(s, rc);
      return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
    });
    if (inside && !paths.includes(rc)) paths.push(rc);
  }
  // A path inside another one (the default repository inside the data directory) goes with it.
  const outer = paths.filter((p) => !paths.some((q) => q !== p && p.startsWith(q.endsWith(sep) ? q : q + sep)));
  paths.splice(0, paths.length, ...outer);
  // Absolute patterns are rebased onto the source that holds them (see the walker's excludes).
  return { paths, patterns: paths.map((p) => `${escapeGitignore(p.split(sep).join('/'))}/`) };
}

/** Escape the characters gitignore reads as pattern syntax, so a path matches only itself. */
export function escapeGitignore(path: string): string {
  return path.replace(/[\\*?[\]!#]/g, '\\$&').replace(/ $/, '\\ ');
}
