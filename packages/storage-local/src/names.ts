/**
 * What a local repository's listing may return: only entries that `load` reads under the same
 * name (see {@link listedNameProblem}).
 */
import { assertValidHandle, type FileType } from '@kiwi-backup/core';

/** A pack's name: the SHA-256 of its bytes, 64 lowercase hex digits. */
const PACK_NAME = /^[0-9a-f]{64}$/;
/** The name of a `data/` subdirectory: two lowercase hex digits. */
export const DATA_SUBDIR = /^[0-9a-f]{2}$/;

/**
 * Why the entry `name`, found in the directory of `type`'s files (for packs: in `data/<sub>/`), is
 * not one of them — or `undefined` when it is, i.e. when `load` of that handle reads this very entry.
 *
 * - A pack must be named by 64 lowercase hex digits and sit in the `data/` subdirectory named by its
 *   first two. A copy elsewhere is never the pack: `load` reads only `data/<name[0..2]>/<name>`, so
 *   listing the copy would report the wrong size (`check`, `repair index` drop the real pack; `prune`
 *   deletes it) or a pack that cannot be loaded (a backup would dedup against it).
 * - Other files need a name {@link assertValidHandle} accepts: core refuses any other name it is
 *   handed back, so one file named `a b` would make every command fail.
 */
export function listedNameProblem(type: FileType, name: string, sub?: string): string | undefined {
  if (type === 'data') {
    if (!PACK_NAME.test(name)) return 'not a pack file name (64 lowercase hex digits)';
    if (sub !== name.slice(0, 2)) return `a pack of that name belongs in data/${name.slice(0, 2)}/, where it is loaded from`;
    return undefined;
  }
  try {
    assertValidHandle({ type, name });
    return undefined;
  } catch {
    return `not a valid ${type} file name`;
  }
}
