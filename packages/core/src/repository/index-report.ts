/**
 * What {@link Repository.loadIndex} tells its logger about the damage an index load found
 * (see `index-loader.ts`), each with what to run about it; and the small wording helpers.
 */
import { handlePath } from '../storage/types.js';
import type { IndexLoadResult } from './index-loader.js';
import type { RepositoryLogger } from './types.js';

/** Log the damaged index files, missing, wrong-size and unreadable packs, and adopted packs of `r`. */
export function reportIndexLoad(log: RepositoryLogger, r: IndexLoadResult): void {
  for (const d of r.damagedFiles) {
    log.warn(`${d.file} is damaged and was skipped (${d.message}); the packs it lists are read from their own headers. Run \`kiwi repair index\` to replace it.`);
  }
  if (r.missingPacks.length > 0) {
    log.warn(
      `${plural(r.missingPacks.length, 'pack')} named in the index ${r.missingPacks.length === 1 ? 'is' : 'are'} missing (${listSome(r.missingPacks.map((p) => handlePath({ type: 'data', name: p })))}): ` +
        'their blobs are not used; a backup stores them again when it meets them. Run `kiwi check` to see which snapshots are affected.',
    );
  }
  for (const w of r.wrongSizePacks) {
    log.warn(`${handlePath({ type: 'data', name: w.pack })} is ${w.size} bytes but its index entries imply ${w.expected}: the pack is damaged and its blobs are not used. Run \`kiwi check\`.`);
  }
  for (const u of r.unreadablePacks) log.warn(`${u.file} is listed by no index file and its header cannot be read: ${u.message}`);
  if (r.adoptedPacks.length > 0) {
    log.info(
      `found ${plural(r.adoptedPacks.length, 'pack')} that no readable index file lists (left by an interrupted backup, or listed only in a damaged index file); read ${r.adoptedPacks.length === 1 ? 'its header' : 'their headers'}, so ${r.adoptedPacks.length === 1 ? 'its' : 'their'} blobs are used again`,
    );
  }
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The first few items of a list, and how many more. */
function listSome(items: string[], max = 3): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}
