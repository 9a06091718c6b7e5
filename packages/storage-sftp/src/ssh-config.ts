/**
 * `~/.ssh/config` for the SFTP adapter. Parsing and the `Host`/`Match` evaluation are the
 * `ssh-config` package's; Kiwi keeps, on top: following `Include` (ssh-config parses but does
 * not follow it), the `Host` pattern matcher (ssh-config's is case-sensitive and lets `?` match no
 * character, unlike OpenSSH: `Host web?` would match `web`, `Host MyBox` would miss `mybox`; the
 * tests pin OpenSSH's behaviour), `%` token expansion, and `Match exec` switched off.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, isAbsolute, join, basename } from 'node:path';
import SSHConfig from 'ssh-config';
import { StorageError } from '@kiwi-backup/core';

/** What Kiwi takes from `~/.ssh/config` for one host. Unset fields were not given. */
export interface SshHostConfig {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  userKnownHostsFiles?: string[];
  /** `yes`, `no`, `accept-new`, `ask`, `off`. Only `accept-new` changes Kiwi's behaviour (accept unknown keys). */
  strictHostKeyChecking?: string;
  identitiesOnly?: boolean;
  hostKeyAlias?: string;
  connectTimeoutSeconds?: number;
}

/** `*` and `?` wildcard match, case-insensitive (ssh_config / known_hosts patterns). */
export function wildcardMatch(pattern: string, text: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .split('')
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
        .join('') +
      '$',
    'i',
  );
  return re.test(text);
}

/** True if `host` matches a comma/space list of patterns, none of them negated-and-matching. */
export function matchPatternList(patterns: string[], host: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (wildcardMatch(p.slice(1), host)) return false;
    } else if (wildcardMatch(p, host)) {
      matched = true;
    }
  }
  return matched;
}

export function expandTilde(p: string, home = homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return join(home, p.slice(2));
  return p;
}

/** Expand `%h %p %r %u %d %n %%` and `~` in a path from ssh_config. */
function expandTokens(p: string, v: { host: string; alias: string; port: number; user: string; home: string }): string {
  const s = p.replace(/%([%hprudn])/g, (_, t: string) => {
    switch (t) {
      case '%':
        return '%';
      case 'h':
        return v.host;
      case 'p':
        return String(v.port);
      case 'r':
        return v.user;
      case 'u':
        return userInfo().username;
      case 'd':
        return v.home;
      default:
        return v.alias;
    }
  });
  return expandTilde(s, v.home);
}

function includeFiles(pattern: string, sshDir: string, home: string): string[] {
  const p = expandTilde(pattern, home);
  const abs = isAbsolute(p) ? p : join(sshDir, p);
  const base = basename(abs);
  if (!/[*?]/.test(base)) return existsSync(abs) ? [abs] : [];
  const dir = dirname(abs);
  try {
    return readdirSync(dir)
      .filter((f) => wildcardMatch(base, f))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

const INCLUDE = /^\s*include(?:\s*=\s*|\s+)(.*)$/i;
const SECTION = /^\s*(?:host|match)(?:\s*=\s*|\s+)/i;
/** Include depth, as OpenSSH's limit. */
const MAX_INCLUDE_DEPTH = 16;

/**
 * The config text with every `Include` replaced by the files it names (ssh-config parses an
 * Include line but does not follow it). An Include inside a `Host`/`Match` block is followed by
 * that block's header again, so the block's later lines stay in it; a `Host` line inside the
 * included file starts a block of its own (OpenSSH would also require the outer block to match).
 */
function expandIncludes(file: string, home: string, depth: number): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  const sshDir = join(home, '.ssh');
  const out: string[] = [];
  let section: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const inc = INCLUDE.exec(line);
    if (!inc) {
      if (SECTION.test(line)) section = line;
      out.push(line);
      continue;
    }
    if (depth >= MAX_INCLUDE_DEPTH) continue;
    const patterns = (inc[1] ?? '').match(/"[^"]*"|\S+/g) ?? [];
    for (const pat of patterns) {
      for (const f of includeFiles(pat.replace(/^"|"$/g, ''), sshDir, home)) out.push(expandIncludes(f, home, depth + 1));
    }
    if (section !== undefined) out.push(section);
  }
  return out.join('\n');
}

type Computed = Record<string, string | string[] | undefined>;

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/**
 * Look up `alias` in an OpenSSH client config file (default `~/.ssh/config`) with the `ssh-config`
 * package: `Host` and `Match` blocks (`Match host|originalhost|user|localuser|all|final`), first
 * value wins, `IdentityFile` accumulates. Kiwi adds `Include` (followed, with globs, relative to
 * `~/.ssh`) and decides `Host` patterns itself: ssh-config's matcher compares case-sensitively and
 * lets `?` match no character (`Host web?` would match `web`), where OpenSSH compares host names
 * case-insensitively and `?` is exactly one character (the tests check both). `Match exec` is
 * never run (the block does not apply): opening a repository must not run commands from a file.
 * Understands HostName, User, Port, IdentityFile, UserKnownHostsFile, StrictHostKeyChecking,
 * IdentitiesOnly, HostKeyAlias and ConnectTimeout.
 * @throws StorageError (kind `config`) when the file cannot be parsed.
 */
export function readSshConfig(alias: string, options: { file?: string; home?: string } = {}): SshHostConfig {
  const home = options.home ?? homedir();
  const file = options.file ?? join(home, '.ssh', 'config');
  const result: SshHostConfig = { identityFiles: [] };
  if (!existsSync(file)) return result;
  let config: SSHConfig;
  try {
    config = SSHConfig.parse(expandIncludes(file, home, 0));
  } catch (err) {
    throw new StorageError(`cannot read the SSH config ${file}: ${(err as Error).message}`, { kind: 'config' });
  }
  const host = alias.toLowerCase();
  for (const line of config) {
    if (line.type !== SSHConfig.DIRECTIVE || !/^host$/i.test(line.param)) continue;
    const patterns = typeof line.value === 'string' ? line.value.split(/[\s,]+/) : line.value.map((v) => v.val);
    // Kiwi's verdict, in a form ssh-config's matcher reads the same way: the host itself, or never.
    line.value = matchPatternList(patterns.filter(Boolean), host) ? host : '!*';
  }
  const values = config.compute(host, { ignoreCase: true, matchExec: false }) as Computed;

  const hostNameRaw = first(values.hostname);
  const hostName = hostNameRaw?.replace(/%h/g, alias).replace(/%%/g, '%');
  if (hostName) result.hostName = hostName;
  const user = first(values.user);
  if (user) result.user = user;
  const port = first(values.port);
  if (port && /^\d+$/.test(port)) result.port = Number(port);
  const tokens = {
    host: hostName ?? alias,
    alias,
    port: result.port ?? 22,
    user: user ?? userInfo().username,
    home,
  };
  result.identityFiles = list(values.identityfile)
    .filter((f) => f.toLowerCase() !== 'none')
    .map((f) => expandTokens(f, tokens));
  const ukh = list(values.userknownhostsfile);
  if (ukh.length) result.userKnownHostsFiles = ukh.filter((f) => f.toLowerCase() !== 'none').map((f) => expandTokens(f, tokens));
  const shk = first(values.stricthostkeychecking);
  if (shk) result.strictHostKeyChecking = shk.toLowerCase();
  const io = first(values.identitiesonly);
  if (io) result.identitiesOnly = io.toLowerCase() === 'yes';
  const hka = first(values.hostkeyalias);
  if (hka) result.hostKeyAlias = hka;
  const ct = first(values.connecttimeout);
  if (ct && /^\d+$/.test(ct)) result.connectTimeoutSeconds = Number(ct);
  return result;
}
