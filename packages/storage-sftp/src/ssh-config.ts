import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, isAbsolute, join, basename } from 'node:path';

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

/** Split a config line into words, honouring double quotes; `key=value` is allowed. */
function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '"') {
      inQuote = !inQuote;
      has = true;
    } else if (!inQuote && (c === ' ' || c === '\t' || (c === '=' && out.length === 0 && has))) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  // "Key = value": drop a lone '='.
  return out.filter((w, i) => !(i === 1 && w === '='));
}

interface Ctx {
  alias: string;
  home: string;
  depth: number;
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

function apply(file: string, ctx: Ctx, out: Map<string, string[]>, identity: string[]): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return;
  }
  const sshDir = join(ctx.home, '.ssh');
  let active = true;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const words = tokenize(line);
    const key = words[0]?.toLowerCase();
    const args = words.slice(1);
    if (!key) continue;
    if (key === 'host') {
      active = matchPatternList(args, ctx.alias);
      continue;
    }
    if (key === 'match') {
      // Only "Match all" is understood; other Match blocks are skipped (documented limitation).
      active = args.length === 1 && args[0]!.toLowerCase() === 'all';
      continue;
    }
    if (!active) continue;
    if (key === 'include') {
      if (ctx.depth < 8) {
        for (const pat of args) {
          for (const f of includeFiles(pat, sshDir, ctx.home)) apply(f, { ...ctx, depth: ctx.depth + 1 }, out, identity);
        }
      }
      continue;
    }
    if (key === 'identityfile') {
      if (args[0] !== undefined) identity.push(args[0]);
      continue;
    }
    if (!out.has(key) && args.length > 0) out.set(key, args);
  }
}

/**
 * Look up `alias` in an OpenSSH client config file (default `~/.ssh/config`): the `Host`
 * blocks that match (with `*`/`?`/`!` patterns), first value wins, `Include` followed,
 * `Match` blocks ignored except `Match all`. Understands HostName, User, Port, IdentityFile,
 * UserKnownHostsFile, StrictHostKeyChecking, IdentitiesOnly, HostKeyAlias and ConnectTimeout.
 */
export function readSshConfig(alias: string, options: { file?: string; home?: string } = {}): SshHostConfig {
  const home = options.home ?? homedir();
  const file = options.file ?? join(home, '.ssh', 'config');
  const values = new Map<string, string[]>();
  const identity: string[] = [];
  if (existsSync(file)) apply(file, { alias, home, depth: 0 }, values, identity);

  const first = (k: string) => values.get(k)?.[0];
  const result: SshHostConfig = { identityFiles: [] };
  const hostNameRaw = first('hostname');
  const hostName = hostNameRaw?.replace(/%h/g, alias).replace(/%%/g, '%');
  if (hostName) result.hostName = hostName;
  const user = first('user');
  if (user) result.user = user;
  const port = first('port');
  if (port && /^\d+$/.test(port)) result.port = Number(port);
  const tokens = {
    host: hostName ?? alias,
    alias,
    port: result.port ?? 22,
    user: user ?? userInfo().username,
    home,
  };
  result.identityFiles = identity.filter((f) => f.toLowerCase() !== 'none').map((f) => expandTokens(f, tokens));
  const ukh = values.get('userknownhostsfile');
  if (ukh) result.userKnownHostsFiles = ukh.filter((f) => f.toLowerCase() !== 'none').map((f) => expandTokens(f, tokens));
  const shk = first('stricthostkeychecking');
  if (shk) result.strictHostKeyChecking = shk.toLowerCase();
  const io = first('identitiesonly');
  if (io) result.identitiesOnly = io.toLowerCase() === 'yes';
  const hka = first('hostkeyalias');
  if (hka) result.hostKeyAlias = hka;
  const ct = first('connecttimeout');
  if (ct && /^\d+$/.test(ct)) result.connectTimeoutSeconds = Number(ct);
  return result;
}
