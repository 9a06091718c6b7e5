import type { ArgsDef } from 'citty';
import { assertPattern } from '@kiwi-backup/core';
import { UsageError } from './exit-codes.js';

/** Options every command accepts. */
export const globalArgs = {
  repo: { type: 'string', alias: 'r', description: 'Repository location (path, local:/path, s3:..., sftp:...); default: $KIWI_REPOSITORY or the default repository in the data directory' },
  'password-file': { type: 'string', description: 'Read the repository password from the first line of this file or pipe (default: $KIWI_PASSWORD, $KIWI_PASSWORD_FILE)' },
  'password-command': { type: 'string', description: 'Run this shell command and use its output as the repository password (default: $KIWI_PASSWORD_COMMAND)' },
  config: { type: 'string', description: 'Config file (default: <datadir>/config.json)' },
  json: { type: 'boolean', description: 'Print JSON lines on stdout (message_type: status, error, summary, ...)' },
  quiet: { type: 'boolean', alias: 'q', description: 'Print only warnings and errors: no results, messages or progress (--json output is unchanged)' },
  verbose: { type: 'boolean', alias: 'v', description: 'Print debug messages' },
  'cache-dir': { type: 'string', description: 'Where the metadata cache of remote repositories lives (default: $KIWI_CACHE_DIR, $XDG_CACHE_HOME/kiwi, ~/.cache/kiwi)' },
  // `--no-cache` (citty reads it as cache=false).
  cache: { type: 'boolean', description: 'Use the local metadata cache of remote repositories (the default); --no-cache to do without' },
} as const satisfies ArgsDef;

export type GlobalArgs = {
  repo?: string;
  'password-file'?: string;
  'password-command'?: string;
  config?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  'cache-dir'?: string;
  cache?: boolean;
};

/** citty accepts any flag; Kiwi refuses unknown ones (exit 2) so a typo never silently changes a backup. */
export function assertKnownArgs(args: Record<string, unknown>, defs: ArgsDef): void {
  const known = new Set<string>(['_']);
  for (const [name, def] of Object.entries(defs)) {
    known.add(name);
    known.add(camel(name));
    const alias = (def as { alias?: string | string[] }).alias;
    for (const a of Array.isArray(alias) ? alias : alias ? [alias] : []) known.add(a);
  }
  for (const key of Object.keys(args)) {
    if (!known.has(key)) {
      throw new UsageError(`unknown option --${key}${suggest(key, [...known])}`);
    }
  }
  // A command that takes no arguments at all refuses them (`kiwi snapshots extra` is a typo, not a filter).
  const extra = Array.isArray(args._) ? (args._ as unknown[]) : [];
  const takesArguments = Object.values(defs).some((d) => (d as { type?: string }).type === 'positional');
  if (!takesArguments && extra.length > 0) {
    throw new UsageError(`unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((a) => JSON.stringify(String(a))).join(' ')}: this command takes options only`);
  }
}

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function suggest(key: string, candidates: string[]): string {
  const best = closestName(key, candidates.filter((c) => c !== '_' && c.length >= 2));
  return best ? ` (did you mean --${best}?)` : '';
}

/**
 * The candidate a mistyped `word` most likely meant: within edit distance 2 (1 for short words),
 * or the only candidate it is a prefix of (`snap` → `snapshots`). Undefined when nothing is close.
 */
export function closestName(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best !== undefined && bestD <= (word.length <= 3 ? 1 : 2)) return best;
  const prefixed = word.length >= 2 ? candidates.filter((c) => c.startsWith(word)) : [];
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** Refuses patterns that cannot match what they say (an unclosed "["): core's `PatternError` (exit 2), naming where each came from. */
export function checkPatterns(patterns: readonly string[], where: string): void {
  for (const p of patterns) assertPattern(p, where);
}

/** A repeated string flag as an array (`--exclude a --exclude b`). */
export function stringList(value: unknown): string[] {
  if (value === undefined || value === null || value === false) return [];
  if (Array.isArray(value)) return value.map(String);
  return [String(value)];
}

/** A single string flag (last one wins if repeated). */
export function stringArg(value: unknown): string | undefined {
  if (value === undefined || value === null || value === false) return undefined;
  if (Array.isArray(value)) return value.length ? String(value[value.length - 1]) : undefined;
  if (value === true) return undefined;
  return String(value);
}

/**
 * `--keep-daily -1`: a negative number after a string option is its value, not a flag
 * (citty would read `-1` as the flag "1"). Joins such pairs into `--keep-daily=-1`.
 */
export function joinNegativeValues(argv: string[], defs: ArgsDef): string[] {
  const stringFlags = new Set<string>();
  for (const [name, def] of Object.entries(defs)) {
    if ((def as { type?: string }).type !== 'string') continue;
    stringFlags.add(`--${name}`);
    const alias = (def as { alias?: string | string[] }).alias;
    for (const a of Array.isArray(alias) ? alias : alias ? [alias] : []) stringFlags.add(a.length === 1 ? `-${a}` : `--${a}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a === '--') {
      for (let k = i; k < argv.length; k++) out.push(argv[k]!);
      break;
    }
    if (stringFlags.has(a) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}
