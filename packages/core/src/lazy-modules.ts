/**
 * Dependencies loaded on first use, not at start-up: `kiwi snapshots` needs neither a JSON-with-
 * comments parser (there may be no config file) nor gitignore matching (only backups and pattern
 * options do). Both packages are CommonJS, so a synchronous `require` on first use keeps the callers
 * synchronous. Types come from the packages as usual.
 */
import { createRequire } from 'node:module';
import type * as JsoncParser from 'jsonc-parser';
import type IgnoreFactory from 'ignore';

const require = createRequire(import.meta.url);

let jsonc: typeof JsoncParser | undefined;
/** The `jsonc-parser` package. */
export function jsoncParser(): typeof JsoncParser {
  return (jsonc ??= require('jsonc-parser') as typeof JsoncParser);
}

let ignoreFn: typeof IgnoreFactory | undefined;
/** The `ignore` package's factory (gitignore rule sets). */
export function ignoreFactory(): typeof IgnoreFactory {
  if (!ignoreFn) {
    const m = require('ignore') as unknown as { default?: typeof IgnoreFactory };
    ignoreFn = typeof m === 'function' ? (m as typeof IgnoreFactory) : m.default!;
  }
  return ignoreFn;
}
