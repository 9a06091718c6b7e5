import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError, ExitCode } from '../exit-codes.js';

/** `<datadir>/daemon.token`: the API's bearer token. */
export function tokenPath(dataDir: string): string {
  return join(dataDir, 'daemon.token');
}

/**
 * Make sure the data directory exists and can be written: the daemon keeps its token, run history and the
 * recovery journal there. A clear error (exit 2) at start instead of failed runs at 2:00.
 */
export async function ensureWritableDataDir(dataDir: string): Promise<void> {
  const probe = join(dataDir, 'daemon', `.write-test-${process.pid}`);
  try {
    await mkdir(join(dataDir, 'daemon'), { recursive: true, mode: 0o700 });
    const fh = await open(probe, 'w', 0o600);
    await fh.close();
    await rm(probe, { force: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code === 'EROFS' ? 'read-only file system' : e.code === 'ENOTDIR' ? 'a part of the path is not a directory' : e.message;
    throw new CliError(
      `the data directory ${dataDir} is not writable (${why}): the daemon keeps its API token, run history and recovery journal there; ` +
        'fix its owner or permissions, or choose another with KIWI_DATA_DIR',
      ExitCode.Usage,
      { cause: err },
    );
  }
}

/**
 * The API token: read from `<datadir>/daemon.token`, or created there at first start (32 random bytes,
 * base64url, mode 0600). A token file that group or others could read or write is not used: whoever could
 * read it may have, and whoever could write it may have put in a token of theirs. A new token replaces it,
 * and `replaced` says why (the daemon logs it as a warning: clients need the new token).
 */
export async function loadOrCreateToken(dataDir: string): Promise<{ token: string; created: boolean; path: string; replaced?: string }> {
  const path = tokenPath(dataDir);
  let replaced: string | undefined;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new CliError(`${path} is not a file`, ExitCode.Usage);
    if ((st.mode & 0o077) !== 0 && process.platform !== 'win32') {
      const mode = `0${(st.mode & 0o777).toString(8).padStart(3, '0')}`;
      replaced = `the API token file ${path} could be read or changed by other users (mode ${mode}), so its token may be known: it was replaced by a new one (mode 0600); give the new token to the API's clients`;
    } else {
      if (st.size > 4096) throw new CliError(`${path} is too large to be a daemon token (${st.size} bytes)`, ExitCode.Usage);
      const token = (await readFile(path, 'utf8')).trim();
      if (token.length < 16 || !/^[\x21-\x7e]+$/.test(token)) {
        throw new CliError(`${path} does not hold a usable token (at least 16 printable characters); delete it to get a new one`, ExitCode.Usage);
      }
      return { token, created: false, path };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  // A new file (0600 from its creation, never readable by others), renamed over the old one if there is one.
  const tmp = `${path}.${process.pid}.tmp`;
  await rm(tmp, { force: true });
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(`${token}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return { token, created: replaced === undefined, path, ...(replaced !== undefined ? { replaced } : {}) };
}

/** Compare an `Authorization` header with the token in constant time. */
export function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}
