/**
 * Kiwi's one pattern language (docs/patterns.md), for matching the absolute
 * paths of a snapshot: restore's `include`/`exclude`, and any later command
 * that selects paths of a snapshot. The backup walker applies the same rules
 * to the paths it walks (excludes.ts, `patternsForSource`).
 *
 * The matching itself is gitignore's, through the `ignore` package (the
 * library git-style tools use; it handles `*`, `**`, `?`, `[…]`, `!`,
 * trailing `/`, escapes). What this module adds is the anchoring of a
 * snapshot: a pattern with an inner `/` is relative to each backed-up source
 * path (as at backup) and to the snapshot root; a pattern starting with `/`
 * is an absolute path (when it names no path inside or above a source, it is
 * also tried below each source, as at backup); a plain name matches at any
 * depth.
 */
import type { Ignore } from 'ignore';
import { ignoreFactory } from '../lazy-modules.js';

/** Tests per matcher before its result cache is dropped (`ignore` caches every path it sees). */
const CACHE_BUDGET = 20_000;
const GLOB = /[*?[\]\\]/;

export interface PathPatternOptions {
  /** Match case-insensitively (`--iinclude`, `--iexclude`). Default false. */
  ignoreCase?: boolean;
}

/** One pattern as the user wrote it, and what it expands to. */
interface Compiled {
  source: string;
  negative: boolean;
  rules: string[];
  /** Matcher of this pattern alone (for "matched nothing"); dropped once it matched. */
  alone: Ignore | undefined;
  matched: boolean;
}

function escapeGlob(s: string): string {
  return s.replace(/[\\*?[\]]/g, '\\$&');
}

/** `p` is `root` or below it ('/'-separated absolute paths). */
function within(p: string, root: string): boolean {
  if (root === '/') return true;
  return p === root || p.startsWith(root + '/');
}

/** A pattern that cannot mean what it says (an unclosed `[`, a lone trailing `\`): refused, never silently matching nothing. */
export class PatternError extends Error {
  override readonly name = 'PatternError';
}

/**
 * What is wrong with pattern `raw`, or undefined. gitignore matching (the `ignore` package, git
 * itself) takes a `[` whose class is never closed, or a trailing lone `\`, as matching nothing at
 * all: an exclude that excludes nothing, a `find` that finds nothing, without a word.
 */
export function patternProblem(raw: string): string | undefined {
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === '\\') {
      if (i + 1 >= raw.length) return 'it ends with a lone "\\" (write "\\\\" for a backslash)';
      i++;
    } else if (c === '[') {
      let j = i + 1;
      if (raw[j] === '!' || raw[j] === '^') j++;
      if (raw[j] === ']') j++; // a leading "]" is a member
      while (j < raw.length && raw[j] !== ']') j += raw[j] === '\\' ? 2 : 1;
      if (j >= raw.length) return `the "[" at character ${i + 1} opens a character class that is never closed (write "\\[" for a literal "[")`;
      i = j;
    }
  }
  return undefined;
}

/**
 * Throws {@link PatternError} naming `raw` (and `where` it came from) when {@link patternProblem}
 * finds something. Blank lines and `#` comments of a pattern list are no pattern: never refused.
 */
export function assertPattern(raw: string, where = 'pattern'): void {
  if (raw.trim() === '' || raw.startsWith('#')) return;
  const problem = patternProblem(raw);
  if (problem) throw new PatternError(`${where} ${JSON.stringify(raw)}: ${problem}`);
}

/**
 * Expands one pattern into gitignore rules over paths relative to the
 * snapshot root, following the anchoring rules above. Throws {@link PatternError} for a pattern
 * that cannot match what it says.
 */
export function expandPattern(raw: string, roots: readonly string[]): string[] {
  assertPattern(raw);
  let p = raw.replace(/(?<!\\)\s+$/, '');
  if (p === '' || p.startsWith('#')) return [];
  const neg = p.startsWith('!');
  if (neg) p = p.slice(1);
  const bang = neg ? '!' : '';
  const dirOnly = p.length > 1 && p.endsWith('/');
  const body = dirOnly ? p.slice(0, -1) : p;
  const suffix = dirOnly ? '/' : '';
  if (body.startsWith('/')) {
    // An absolute path. Related to a source (inside one, or one of its ancestors): just that.
    const literal = GLOB.test(body) ? undefined : body.replace(/\/+$/, '') || '/';
    if (literal !== undefined && roots.some((r) => within(literal, r) || within(r, literal))) return [`${bang}${body}${suffix}`];
    return [`${bang}${body}${suffix}`, ...roots.filter((r) => r !== '/').map((r) => `${bang}${escapeGlob(r)}${body}${suffix}`)];
  }
  if (!body.includes('/') || body.startsWith('**/')) return [`${bang}${p}`];
  // Relative with a slash: below each source, and below the snapshot root.
  return [`${bang}/${body}${suffix}`, ...roots.filter((r) => r !== '/').map((r) => `${bang}${escapeGlob(r)}/${body}${suffix}`)];
}

/** The literal leading directories of an anchored rule (up to the first glob), or undefined when it matches at any depth. */
function staticPrefix(rule: string): string[] | undefined {
  if (!rule.startsWith('/')) return undefined;
  const parts = rule.replace(/\/+$/, '').split('/').slice(1);
  const out: string[] = [];
  for (const part of parts) {
    if (GLOB.test(part)) break;
    out.push(part);
  }
  return out;
}

/**
 * A list of patterns over the absolute paths of a snapshot. `roots` are the
 * snapshot's source paths.
 */
export class PathPatterns {
  readonly #compiled: Compiled[];
  readonly #rules: string[];
  readonly #ignoreCase: boolean;
  #ig: Ignore;
  #uses = 0;
  #unmatched: number;
  /** Static prefixes of the positive rules, or undefined when one matches at any depth. */
  readonly #prefixes: string[][] | undefined;

  constructor(patterns: readonly string[], roots: readonly string[], options: PathPatternOptions = {}) {
    this.#ignoreCase = options.ignoreCase === true;
    this.#compiled = [];
    for (const source of patterns) {
      const rules = expandPattern(source, roots);
      if (rules.length === 0) continue;
      const negative = rules[0]!.startsWith('!');
      this.#compiled.push({ source, negative, rules, alone: undefined, matched: negative });
    }
    this.#rules = this.#compiled.flatMap((c) => c.rules);
    this.#ig = this.#build(this.#rules);
    this.#unmatched = this.#compiled.filter((c) => !c.matched).length;
    let prefixes: string[][] | undefined = [];
    for (const c of this.#compiled) {
      if (c.negative) continue;
      for (const r of c.rules) {
        const pre = staticPrefix(r);
        if (pre === undefined) {
          prefixes = undefined;
          break;
        }
        prefixes.push(this.#ignoreCase ? pre.map((s) => s.toLowerCase()) : pre);
      }
      if (prefixes === undefined) break;
    }
    this.#prefixes = prefixes;
  }

  #build(rules: string[]): Ignore {
    return ignoreFactory()({ ignorecase: this.#ignoreCase }).add(rules);
  }

  /** No (usable) patterns. */
  get empty(): boolean {
    return this.#compiled.length === 0;
  }

  /**
   * Whether the absolute path `path` (a directory when `isDir`), or one of its
   * directories, matches (gitignore semantics: the last matching rule decides,
   * `!` re-includes). The snapshot root `/` never matches.
   */
  matches(path: string, isDir: boolean): boolean {
    if (path === '/' || path === '') return false;
    if (++this.#uses > CACHE_BUDGET) {
      this.#ig = this.#build(this.#rules);
      this.#uses = 0;
    }
    const rel = path.slice(1) + (isDir ? '/' : '');
    try {
      return this.#ig.ignores(rel);
    } catch {
      return false; // a path `ignore` refuses (cannot come from a validated tree)
    }
  }

  /**
   * Notes that `path` was seen, for {@link unmatched}: each positive pattern
   * that matches it counts as used. Costs nothing once every pattern has matched.
   */
  note(path: string, isDir: boolean): void {
    if (this.#unmatched === 0 || path === '/' || path === '') return;
    const rel = path.slice(1) + (isDir ? '/' : '');
    for (const c of this.#compiled) {
      if (c.matched) continue;
      c.alone ??= this.#build(c.rules);
      let hit = false;
      try {
        hit = c.alone.ignores(rel);
      } catch {
        hit = false;
      }
      if (hit) {
        c.matched = true;
        c.alone = undefined;
        this.#unmatched--;
      }
    }
  }

  /** The positive patterns (as written) that matched no path passed to {@link note}. */
  unmatched(): string[] {
    return this.#compiled.filter((c) => !c.matched).map((c) => c.source);
  }

  /**
   * False only when nothing at or below directory `dir` can match (lets a
   * traversal skip loading it): every positive rule is anchored, and none
   * leads into or through `dir`.
   */
  mayContain(dir: string): boolean {
    if (this.#prefixes === undefined) return true;
    if (dir === '/' || dir === '') return true;
    const parts = dir.split('/').slice(1);
    const d = this.#ignoreCase ? parts.map((s) => s.toLowerCase()) : parts;
    return this.#prefixes.some((pre) => {
      const n = Math.min(pre.length, d.length);
      for (let i = 0; i < n; i++) if (pre[i] !== d[i]) return false;
      return true;
    });
  }
}
