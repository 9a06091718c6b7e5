import { StorageError, maskUrlPassword } from '@kiwi-backup/core';

/** The parts of an `sftp:` repository URL. */
export interface SftpUrl {
  /** Host name, IP address or `~/.ssh/config` Host alias (IPv6 without brackets). */
  host: string;
  username?: string;
  port?: number;
  /**
   * Repository directory on the server. Absolute (`/srv/kiwi`), or relative to the
   * login directory (`kiwi`, from `sftp:host:kiwi`, `sftp:host:~/kiwi` or `sftp://host/~/kiwi`).
   */
  path: string;
}

function configError(url: string, why: string): StorageError {
  return new StorageError(`invalid SFTP repository URL ${JSON.stringify(redactUrl(url))}: ${why}`, {
    kind: 'config',
  });
}

const PASSWORD_REFUSED =
  'a password in the URL is not accepted: put it in the KIWI_SFTP_PASSWORD environment variable or the `password` option (better: use a key)';

/**
 * Remove a password from an SFTP URL, for messages: `sftp://user:***@host/path`, `sftp:user:***@host:path`
 * (core's `maskUrlPassword`: the password runs to the LAST "@", it may hold "@", "/" or ":" itself).
 */
export function redactUrl(url: string): string {
  return maskUrlPassword(url);
}

function parsePort(url: string, s: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw configError(url, `bad port ${JSON.stringify(s)}`);
  return Number(s);
}

function parseUser(url: string, s: string): string {
  if (s.includes(':')) throw configError(url, PASSWORD_REFUSED);
  if (s.length === 0) throw configError(url, 'empty user name before "@"');
  return decodeURIComponent(s);
}

/** Split `[user@]host` / `[user@][v6]` at the last '@' (user names may contain '@' in rare setups). */
function splitUserHost(url: string, s: string): { username?: string; hostPart: string } {
  const at = s.lastIndexOf('@');
  if (at < 0) return { hostPart: s };
  return { username: parseUser(url, s.slice(0, at)), hostPart: s.slice(at + 1) };
}

/**
 * Parse an SFTP repository URL (see {@link parseUrl}). A URL that may hold a password (a ":" before its last
 * "@") and does not parse is refused for that, whatever else is wrong with it: the other messages quote
 * parts of the URL (`bad port "pa"` of `sftp://user:pa/ssw0rd@host/path`), and a password may hold "/".
 *
 * One that does parse is refused too: then the "@" fell into the path, and what came before it may be
 * a password with a "/" in it. `sftp:me:pa/ss@nas:/srv` reads as host `me` and path `pa/ss@nas:/srv`,
 * `sftp://me:1234/ss@nas/srv` as host `me`, port 1234 and path `/ss@nas/srv`: the password would be
 * in the location, in every message naming a file, and in the requests sent to a host named `me`.
 * A path that really holds an "@" is written `%40` in the `sftp://` form.
 */
export function parseSftpUrl(url: string): SftpUrl {
  let parsed: SftpUrl;
  try {
    parsed = parseUrl(url);
  } catch (err) {
    if (url.startsWith('sftp:') && redactUrl(url) !== url) throw configError(url, PASSWORD_REFUSED);
    if (err instanceof URIError) throw configError(url, 'a %-escape is not valid');
    throw err;
  }
  if (redactUrl(url) !== url) {
    throw configError(
      url,
      `${PASSWORD_REFUSED}; if the "@" after the ":" belongs to the path, write it as %40 in the sftp://[user@]host[:port]/path form`,
    );
  }
  return parsed;
}

/**
 * Parse an SFTP repository URL. Two forms:
 *
 * - scp-like: `sftp:[user@]host:/abs/path` or `sftp:[user@]host:rel/path` (relative to the login
 *   directory; `~/` is accepted too). IPv6: `sftp:user@[::1]:/path`. No port in this form: give it
 *   with the `port` option or in `~/.ssh/config`.
 * - URL: `sftp://[user@]host[:port]/abs/path`. `sftp://host:port//abs/path` (restic's form) is the
 *   same absolute path; `sftp://host/~/rel` is relative to the login directory. An empty port
 *   (`sftp://user@host:/abs/path`) means the default one, as in any URL.
 *
 * A password in the URL is refused (it would end up in shell history and process lists).
 */
function parseUrl(url: string): SftpUrl {
  if (!url.startsWith('sftp:')) throw configError(url, 'must start with "sftp:"');
  const rest = url.slice('sftp:'.length);
  if (rest.startsWith('//')) {
    const body = rest.slice(2);
    const slash = body.indexOf('/');
    if (slash < 0) throw configError(url, 'missing the repository path after the host (sftp://host[:port]/path)');
    const authority = body.slice(0, slash);
    let path = decodeURIComponent(body.slice(slash));
    const { username, hostPart } = splitUserHost(url, authority);
    let host: string;
    let port: number | undefined;
    const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(hostPart);
    if (v6) {
      host = v6[1]!;
      if (v6[2] !== undefined && v6[2] !== '') port = parsePort(url, v6[2]);
    } else {
      const colon = hostPart.lastIndexOf(':');
      if (colon >= 0) {
        host = hostPart.slice(0, colon);
        // An empty port (`sftp://user@host:/path`) is the default port, as in any URL.
        if (colon < hostPart.length - 1) port = parsePort(url, hostPart.slice(colon + 1));
      } else {
        host = hostPart;
      }
    }
    if (path.startsWith('//')) path = path.replace(/^\/+/, '/');
    else if (path.startsWith('/~/') || path === '/~') path = path.slice(3);
    if (path.length === 0) throw configError(url, 'empty repository path');
    if (!host) throw configError(url, 'missing host');
    return { host, path: normalizePath(path), ...(username !== undefined && { username }), ...(port !== undefined && { port }) };
  }
  // scp-like form: [user@]host:path, host may be [v6].
  let userHost: string;
  let path: string;
  const v6 = /^(.*?\[[^\]]+\]):(.*)$/.exec(rest);
  if (v6) {
    userHost = v6[1]!;
    path = v6[2]!;
  } else {
    // The '@' that ends the user name is the last one before the path's first '/', if a ':' follows it.
    const firstSlash = rest.indexOf('/');
    let at = rest.lastIndexOf('@', firstSlash < 0 ? rest.length : firstSlash);
    if (at >= 0 && rest.indexOf(':', at + 1) < 0) at = -1;
    const colon = rest.indexOf(':', at + 1);
    if (colon < 0) throw configError(url, 'expected sftp:[user@]host:/path (or sftp://[user@]host[:port]/path)');
    userHost = rest.slice(0, colon);
    path = rest.slice(colon + 1);
  }
  const { username, hostPart } = splitUserHost(url, userHost);
  const host = hostPart.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw configError(url, 'missing host');
  if (/^\d+:/.test(path)) {
    throw configError(url, 'the scp-like form has no port; use sftp://[user@]host:port/path or the `port` option');
  }
  if (path.startsWith('~/') || path === '~') path = path.slice(2);
  if (path.length === 0) throw configError(url, 'empty repository path');
  return { host, path: normalizePath(path), ...(username !== undefined && { username }) };
}

/** Collapse duplicate slashes and drop a trailing one (keeping `/`). */
export function normalizePath(p: string): string {
  let out = p.replace(/\/{2,}/g, '/');
  if (out.length > 1 && out.endsWith('/')) out = out.slice(0, -1);
  return out;
}
