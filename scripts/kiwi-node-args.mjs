// The Node options the `kiwi` bin asks for in its shebang (`#!/usr/bin/env -S node <options>`), so
// that repository scripts which start the CLI as `node <options> bin.js` (`pnpm kiwi`, `pnpm bench`)
// run it exactly as an installed `kiwi` runs.
import { readFileSync } from 'node:fs';

/** Options between `node` and the script in `bin`'s shebang line; [] when there are none. */
export function kiwiNodeArgs(bin) {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env\s+(?:-S\s+)?node((?:\s+-\S+)*)\s*$/.exec(first);
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}
