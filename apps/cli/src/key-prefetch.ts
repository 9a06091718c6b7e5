/**
 * Begin the repository's key derivation before Kiwi's modules load.
 *
 * scrypt (~80 ms) and loading the modules (about as long) would otherwise run one after the other
 * in every command that opens a repository. This runs first thing in `bin.ts`, imports nothing but
 * Node's built-ins, and only acts when it can tell cheaply and for certain what the ordinary path
 * will do: a repository command, a local repository named by `--repo`/`-r` or `KIWI_REPOSITORY`, and
 * the password from `KIWI_PASSWORD`, `--password-file` or `KIWI_PASSWORD_FILE` (read as the ordinary
 * path reads it: the first line). It starts scrypt on the thread pool for at most two key files with
 * ordinary parameters and leaves the derivations where core's `openKeyFile` looks for them
 * (`packages/core/src/crypto/prederived.ts`), which uses one only when the salt, the parameters and
 * the password are exactly those of the key file it opens. Whatever goes wrong here is ignored:
 * the key is then derived as usual. Nothing is printed.
 *
 * A remote repository's key files cannot be read without loading its storage adapter (the S3 SDK
 * alone takes longer than scrypt). For those, each command that opened the repository leaves a
 * *key hint* in the metadata cache (`<cache>/key-hints/<sha256 of the URL>.json`: the salt and
 * parameters of the key file that opened it, nothing secret), and the next command derives from
 * the hint while the adapter loads and the key file is fetched. A stale hint costs a wasted
 * derivation on the thread pool, nothing else: the key file as read decides.
 */
import { createHash, scrypt } from 'node:crypto';
import { closeSync, constants, fstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

const PREDERIVED_KEYS = Symbol.for('kiwi.prederivedKeys');
/** Commands that open an existing repository first thing. */
const REPOSITORY_COMMANDS = new Set(['backup', 'snapshots', 'ls', 'restore', 'diff', 'dump', 'find', 'tag', 'check', 'forget', 'prune', 'stats', 'copy', 'key', 'unlock', 'repair']);
const KEY_LENGTH = 32;
/** Key files are small; anything larger is left to the ordinary path (which refuses it). */
const MAX_KEY_FILE = 64 * 1024;
/** Only ordinary scrypt parameters (up to 64 MiB of memory); hostile ones are the ordinary path's to refuse. */
const MAX_SCRYPT_BYTES = 64 * 1024 * 1024;

/**
 * A regular file of at most `max` bytes, else undefined. Anything else is not even opened: opening a named
 * pipe (`--password-file /run/pw.fifo`) would wait for its writer and then take, and lose, what the
 * ordinary path must read.
 */
function readSmall(path: string, max: number): Buffer | undefined {
  if (!statSync(path).isFile()) return undefined;
  // Non-blocking, and checked again once open: a FIFO put in the file's place after the stat above
  // must not hold up Kiwi's start until a writer comes (reads of a regular file do not change).
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    const size = st.size;
    if (size > max) return undefined;
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** The value of `--name`/`-short` in argv (`--name v`, `--name=v`, `-s v`), the last one given. */
function option(argv: readonly string[], name: string, short?: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === `--${name}` || (short && a === `-${short}`)) value = argv[++i];
    else if (a.startsWith(`--${name}=`)) value = a.slice(name.length + 3);
  }
  return value;
}

/** The scrypt parameters of a key file, as it (or a key hint) states them; checked before use. */
interface KdfGuess {
  kdf?: unknown;
  N?: unknown;
  r?: unknown;
  p?: unknown;
  salt?: unknown;
}

/** A URL with a scheme other than `local:` (a bare path, `local:` and Windows drive letters are local). */
function isRemote(repo: string): boolean {
  return /^[a-z][a-z0-9+.-]+:/i.test(repo) && !/^local:/i.test(repo);
}

/**
 * A password inside the URL (`scheme://user:password@host`, `s3:https://…`, `sftp:user:password@host:path`):
 * no hint is kept for it. The password runs to the URL's last "@", since it may hold "@" or "/" itself.
 */
function hasUrlPassword(repo: string): boolean {
  return /^[a-z][a-z0-9+.-]*:(?:[a-z][a-z0-9+.-]*:)?(?:\/\/)?[^/:]*:.*@/is.test(repo);
}

/** Where the hint for repository URL `repo` lives under cache directory `cacheDir`. */
export function keyHintPath(cacheDir: string, repo: string): string {
  return join(cacheDir, 'key-hints', `${createHash('sha256').update(repo, 'utf8').digest('hex')}.json`);
}

/**
 * Record the salt and parameters of the key file that opened remote repository `repo` (see the
 * file's comment), when they differ from the hint there. Never fails.
 */
export function writeKeyHint(cacheDir: string, repo: string, kdf: { salt: string; N: number; r: number; p: number }): void {
  try {
    if (!isRemote(repo) || hasUrlPassword(repo)) return;
    const path = keyHintPath(cacheDir, repo);
    const body = JSON.stringify({ version: 1, kdf: [{ kdf: 'scrypt', salt: kdf.salt, N: kdf.N, r: kdf.r, p: kdf.p }] });
    try {
      if (readSmall(path, MAX_KEY_FILE)?.toString('utf8') === body) return;
    } catch {
      // none yet
    }
    mkdirSync(join(cacheDir, 'key-hints'), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, body, { mode: 0o600 });
    renameSync(tmp, path);
  } catch {
    // Only a later command's start-up is slower without it.
  }
}

/** The metadata cache directory as the session picks it (`--no-cache`: none; Windows: not looked for). */
function cacheDirFor(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  if (argv.includes('--no-cache')) return undefined;
  const explicit = option(argv, 'cache-dir');
  if (explicit) return resolve(explicit);
  if (env.KIWI_CACHE_DIR) return env.KIWI_CACHE_DIR;
  if (process.platform === 'win32') return undefined;
  const home = env.HOME || homedir();
  if (process.platform === 'darwin') return join(home, 'Library', 'Caches', 'Kiwi');
  if (env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME)) return join(env.XDG_CACHE_HOME, 'kiwi');
  return join(home, '.cache', 'kiwi');
}

/** The key parameters to derive with: the local repository's key files, or a remote one's key hint. */
function guesses(repo: string, argv: readonly string[], env: NodeJS.ProcessEnv): KdfGuess[] {
  if (isRemote(repo)) {
    if (hasUrlPassword(repo)) return [];
    const cacheDir = cacheDirFor(argv, env);
    if (!cacheDir) return [];
    const raw = readSmall(keyHintPath(cacheDir, repo), MAX_KEY_FILE);
    const hint = raw ? (JSON.parse(raw.toString('utf8')) as { kdf?: unknown }) : undefined;
    return Array.isArray(hint?.kdf) ? (hint.kdf.slice(0, 2) as KdfGuess[]) : [];
  }
  // A local path, or a URL of a scheme that is not a remote one (a Windows drive letter).
  if (/^[a-z][a-z0-9+.-]+:/i.test(repo)) return [];
  const keysDir = join(resolve(repo), 'keys');
  const names = readdirSync(keysDir).filter((n) => /^[0-9a-f]{64}$/.test(n)).slice(0, 2);
  const out: KdfGuess[] = [];
  for (const name of names) {
    const raw = readSmall(join(keysDir, name), MAX_KEY_FILE);
    if (raw) out.push(JSON.parse(raw.toString('utf8')) as KdfGuess);
  }
  return out;
}

export function prefetchKeys(argv: readonly string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): void {
  try {
    const command = argv.find((a) => !a.startsWith('-'));
    if (!command || !REPOSITORY_COMMANDS.has(command) || argv.includes('--help') || argv.includes('-h')) return;
    const repo = option(argv, 'repo', 'r') ?? env.KIWI_REPOSITORY;
    if (!repo) return;
    let password: string | undefined;
    if (env.KIWI_PASSWORD) password = env.KIWI_PASSWORD;
    else {
      const file = option(argv, 'password-file') ?? (option(argv, 'password-command') === undefined ? env.KIWI_PASSWORD_FILE : undefined);
      if (!file) return;
      const text = readSmall(file, 64 * 1024);
      password = text?.toString('utf8').split(/\r?\n/)[0];
    }
    if (!password) return;
    const list: unknown[] = [];
    for (const f of guesses(repo, argv, env)) {
      if (f === null || typeof f !== 'object') continue;
      const { N, r, p, salt } = f;
      if (f.kdf !== 'scrypt' || typeof salt !== 'string' || salt.length > 128) continue;
      if (!Number.isInteger(N) || !Number.isInteger(r) || p !== 1) continue;
      const n = N as number;
      const rr = r as number;
      if (n < 2 || (n & (n - 1)) !== 0 || rr < 1 || rr > 64 || 128 * n * rr > MAX_SCRYPT_BYTES) continue;
      const pw = Buffer.from(password, 'utf8');
      const key = new Promise<Buffer>((res, rej) => {
        scrypt(Buffer.from(pw), Buffer.from(salt, 'base64'), KEY_LENGTH, { N: n, r: rr, p: 1, maxmem: 128 * n * rr + 32 * 1024 * 1024 }, (err, k) => (err ? rej(err) : res(k)));
      });
      key.catch(() => undefined);
      list.push({ salt, N: n, r: rr, p: 1, keyLength: KEY_LENGTH, password: pw, key });
    }
    if (list.length > 0) (globalThis as Record<symbol, unknown>)[PREDERIVED_KEYS] = list;
  } catch {
    // The ordinary path derives the key (and reports whatever is wrong).
  }
}
