/**
 * Which paths of a snapshot a restore brings back: `include` / `exclude`
 * (and their case-insensitive twins), in Kiwi's pattern language
 * (docs/patterns.md, walker/patterns.ts).
 */
import { PathPatterns } from '../walker/patterns.js';

export interface SelectOptions {
  include?: readonly string[];
  exclude?: readonly string[];
  /** `include`, matched case-insensitively. */
  iinclude?: readonly string[];
  /** `exclude`, matched case-insensitively. */
  iexclude?: readonly string[];
}

/** What the traversal does with an entry. */
export type Selection =
  /** Restore it (and, for a directory, everything below it that is not excluded). */
  | 'include'
  /** A directory that is not included itself but may hold included paths: enter it. */
  | 'descend'
  /** Leave it out (excluded, or not included and nothing below can be). */
  | 'skip';

/** A pattern that matched nothing in the snapshot, and the option it came from. */
export interface UnmatchedPattern {
  option: 'include' | 'exclude' | 'iinclude' | 'iexclude';
  pattern: string;
}

export class RestoreSelector {
  readonly #lists: Array<{ option: UnmatchedPattern['option']; patterns: PathPatterns }>;
  readonly #include: PathPatterns[];
  readonly #exclude: PathPatterns[];

  /** `roots`: the snapshot's source paths (patterns with a slash are anchored at each). */
  constructor(options: SelectOptions, roots: readonly string[]) {
    const make = (option: UnmatchedPattern['option'], list: readonly string[] | undefined, ignoreCase: boolean) => {
      const patterns = new PathPatterns(list ?? [], roots, { ignoreCase });
      return patterns.empty ? undefined : { option, patterns };
    };
    const inc = [make('include', options.include, false), make('iinclude', options.iinclude, true)].filter((x) => x !== undefined);
    const exc = [make('exclude', options.exclude, false), make('iexclude', options.iexclude, true)].filter((x) => x !== undefined);
    this.#lists = [...inc, ...exc];
    this.#include = inc.map((l) => l.patterns);
    this.#exclude = exc.map((l) => l.patterns);
  }

  /** Whether any pattern was given (without, everything is restored and no selector is needed). */
  get active(): boolean {
    return this.#lists.length > 0;
  }

  /** Whether include patterns restrict the restore (then directories are entered only where they can match). */
  get restricts(): boolean {
    return this.#include.length > 0;
  }

  /** True when an exclude pattern matches `path` (or a directory above it). */
  excluded(path: string, isDir: boolean): boolean {
    for (const p of this.#exclude) if (p.matches(path, isDir)) return true;
    return false;
  }

  /**
   * The decision for an entry at absolute snapshot path `path`, whose parent
   * directory is included as a whole (`parentIncluded`) or not.
   */
  select(path: string, isDir: boolean, parentIncluded: boolean): Selection {
    for (const l of this.#lists) l.patterns.note(path, isDir);
    if (this.excluded(path, isDir)) return 'skip';
    if (parentIncluded || this.#include.length === 0) return 'include';
    for (const p of this.#include) if (p.matches(path, isDir)) return 'include';
    if (isDir && this.#include.some((p) => p.mayContain(path))) return 'descend';
    return 'skip';
  }

  /** False when nothing at or below directory `path` can be included (its tree need not be loaded). */
  mayContain(path: string): boolean {
    return this.#include.length === 0 || this.#include.some((p) => p.mayContain(path) || p.matches(path, true));
  }

  /** Patterns that matched no entry the restore looked at. */
  unmatched(): UnmatchedPattern[] {
    return this.#lists.flatMap((l) => l.patterns.unmatched().map((pattern) => ({ option: l.option, pattern })));
  }
}
