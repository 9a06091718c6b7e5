import type { Ignore } from 'ignore';
import { ignoreFactory } from '../lazy-modules.js';
import { sep } from 'node:path';

/** Tests per matcher before its result cache is dropped (the `ignore` package caches every path it sees). */
const CACHE_BUDGET = 20_000;

/**
 * A set of gitignore rules rooted at one directory (`base`, relative to the
 * source root, '' for the root itself, with '/' separators).
 */
export class Matcher {
  private ig: Ignore;
  private uses = 0;
  constructor(
    readonly base: string,
    private readonly patterns: readonly string[],
  ) {
    this.ig = this.build();
  }

  private build(): Ignore {
    return ignoreFactory()({ ignorecase: false }).add(this.patterns as string[]);
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /**
   * This matcher's verdict on `rel` (relative to the source root, '/'-separated,
   * ending in '/' for a directory): true = excluded, false = re-included, undefined = no opinion.
   * A verdict inherited from an excluded parent is ignored: the walk only gets
   * here when the parent was included overall (a deeper matcher re-included it).
   */
  verdict(rel: string, parentRel: string): boolean | undefined {
    if (++this.uses > CACHE_BUDGET) {
      this.ig = this.build();
      this.uses = 0;
    }
    const local = this.base === '' ? rel : rel.slice(this.base.length + 1);
    const r = this.ig.test(local);
    if (r.ignored) {
      const localParent = this.base === '' ? parentRel : parentRel.slice(this.base.length + 1);
      if (localParent !== '' && this.ig.test(localParent + '/').ignored) return undefined;
      return true;
    }
    return r.unignored ? false : undefined;
  }
}

/** Splits the text of an ignore file into pattern lines (comments and blanks are handled by `ignore`). */
export function splitPatterns(text: string): string[] {
  return text.split(/\r?\n/);
}

/**
 * The exclude patterns that apply to one source (see `WalkOptions.exclude`):
 * absolute patterns inside this source are rebased onto it, those inside
 * another source are dropped, the rest stay as they are. Returns `excludeRoot`
 * when a plain (non-negated) absolute pattern names the source or an ancestor.
 */
export function patternsForSource(
  patterns: readonly string[],
  source: string,
  allSources: readonly string[],
): { patterns: string[]; excludeRoot: boolean } {
  const out: string[] = [];
  let excludeRoot = false;
  const inside = (p: string, root: string): string | undefined => {
    if (p === root) return '';
    const prefix = root.endsWith(sep) ? root : root + sep;
    return p.startsWith(prefix) ? p.slice(prefix.length) : undefined;
  };
  for (const raw of patterns) {
    let p = raw.replace(/\s+$/, '');
    const neg = p.startsWith('!');
    if (neg) p = p.slice(1);
    if (!p.startsWith('/') || p === '/') {
      out.push(raw);
      continue;
    }
    const dirOnly = p.length > 1 && p.endsWith('/');
    const abs = dirOnly ? p.slice(0, -1) : p;
    const rel = inside(abs, source);
    if (rel !== undefined) {
      if (rel === '') {
        if (!neg) excludeRoot = true;
        continue;
      }
      out.push(`${neg ? '!' : ''}/${rel.split(sep).join('/')}${dirOnly ? '/' : ''}`);
      continue;
    }
    if (inside(source, abs) !== undefined) {
      // An ancestor of the source: the whole source is excluded.
      if (!neg) excludeRoot = true;
      continue;
    }
    if (allSources.some((s) => s !== source && inside(abs, s) !== undefined)) continue;
    out.push(raw);
  }
  return { patterns: out, excludeRoot };
}
