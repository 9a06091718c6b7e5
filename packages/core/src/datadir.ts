import { homedir } from 'node:os';
import { join, posix, win32 } from 'node:path';

/**
 * Kiwi's data directory: the default repository, its generated key file, the
 * config file and the `plugins/` folder live here.
 *
 * - `KIWI_DATA_DIR` if set (non-empty);
 * - Linux and other Unixes: `$XDG_DATA_HOME/kiwi` (when absolute), else `~/.local/share/kiwi`;
 * - macOS: `~/Library/Application Support/Kiwi`;
 * - Windows: `%LOCALAPPDATA%\Kiwi`, else `%USERPROFILE%\AppData\Local\Kiwi`.
 */
export function resolveDataDir(
  env: NodeJS.ProcessEnv | Record<string, string | undefined> = process.env,
  platform: NodeJS.Platform | string = process.platform,
): string {
  const explicit = env.KIWI_DATA_DIR;
  if (explicit) return explicit;
  if (platform === 'win32') {
    const local = env.LOCALAPPDATA;
    if (local) return win32.join(local, 'Kiwi');
    const profile = env.USERPROFILE || homeFrom(env);
    return win32.join(profile, 'AppData', 'Local', 'Kiwi');
  }
  const home = homeFrom(env);
  if (platform === 'darwin') return posix.join(home, 'Library', 'Application Support', 'Kiwi');
  const xdg = env.XDG_DATA_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg && posix.isAbsolute(xdg)) return posix.join(xdg, 'kiwi');
  return posix.join(home, '.local', 'share', 'kiwi');
}

function homeFrom(env: Record<string, string | undefined>): string {
  return env.HOME || homedir();
}

/** The default repository: `<dataDir>/repository`. */
export function defaultRepositoryPath(dataDir: string): string {
  return join(dataDir, 'repository');
}

/**
 * The password file the CLI generates for the default repository (mode 0600):
 * `<dataDir>/repository.password`. Users must keep a copy of it elsewhere.
 */
export function defaultPasswordFilePath(dataDir: string): string {
  return join(dataDir, 'repository.password');
}

/** @deprecated The same as {@link defaultPasswordFilePath} (the file holds a password, not a repository key file). */
export function defaultKeyFilePath(dataDir: string): string {
  return defaultPasswordFilePath(dataDir);
}

/** The default config file: `<dataDir>/config.json`. */
export function defaultConfigPath(dataDir: string): string {
  return join(dataDir, 'config.json');
}

/** The folder whose subfolders are plug-ins: `<dataDir>/plugins`. */
export function pluginsDir(dataDir: string): string {
  return join(dataDir, 'plugins');
}

/**
 * Kiwi's cache directory (the local metadata cache of remote repositories lives in
 * `<cacheDir>/<repository id>`):
 *
 * - `KIWI_CACHE_DIR` if set (non-empty);
 * - Linux and other Unixes: `$XDG_CACHE_HOME/kiwi` (when absolute), else `~/.cache/kiwi`;
 * - macOS: `~/Library/Caches/Kiwi`;
 * - Windows: `%LOCALAPPDATA%\Kiwi\Cache`.
 */
export function resolveCacheDir(
  env: NodeJS.ProcessEnv | Record<string, string | undefined> = process.env,
  platform: NodeJS.Platform | string = process.platform,
): string {
  const explicit = env.KIWI_CACHE_DIR;
  if (explicit) return explicit;
  if (platform === 'win32') {
    const local = env.LOCALAPPDATA;
    if (local) return win32.join(local, 'Kiwi', 'Cache');
    return win32.join(env.USERPROFILE || homeFrom(env), 'AppData', 'Local', 'Kiwi', 'Cache');
  }
  const home = homeFrom(env);
  if (platform === 'darwin') return posix.join(home, 'Library', 'Caches', 'Kiwi');
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && posix.isAbsolute(xdg)) return posix.join(xdg, 'kiwi');
  return posix.join(home, '.cache', 'kiwi');
}
