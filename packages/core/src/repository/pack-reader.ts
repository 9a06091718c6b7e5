/**
 * Reading a pack's own header (docs/repository-format.md §6) without reading its blobs:
 * what `repair index`, prune and the index loader use for packs no index file covers.
 */
import { OVERHEAD } from '../crypto/aead.js';
import type { MasterKeys } from '../crypto/keys.js';
import type { Storage } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { IntegrityError } from './errors.js';
import { decodePackHeader, type PackEntry } from './pack-format.js';

/** The first read takes this much of a pack's tail, which holds the whole header of most packs. */
const TAIL_GUESS = 64 * 1024;

/**
 * Read and authenticate the header of pack `packId` (`size` bytes, from a listing or a stat)
 * and check that its entries tile the pack's data exactly (contiguous from offset 0 up to the
 * header). Damage fails with an {@link IntegrityError} naming the pack.
 */
export async function readPackHeader(storage: Storage, keys: MasterKeys, packId: string, size: number): Promise<PackEntry[]> {
  const file = handlePath({ type: 'data', name: packId });
  const bad = (what: string, cause?: unknown) => new IntegrityError(`${file}: ${what}`, { file, ...(cause !== undefined ? { cause } : {}) });
  if (!Number.isSafeInteger(size) || size < 4 + OVERHEAD + 1) throw bad(`too short (${size} bytes) to hold a pack header`);
  const tailLength = Math.min(size, TAIL_GUESS);
  const tail = await storage.load({ type: 'data', name: packId }, { offset: size - tailLength, length: tailLength });
  if (tail.byteLength !== tailLength) throw bad(`read ${tail.byteLength} bytes of its last ${tailLength}: the pack changed or is truncated`);
  const hlen = tail.readUInt32LE(tailLength - 4);
  if (hlen < OVERHEAD + 1 || hlen > size - 4) throw bad(`header length ${hlen} is impossible for a ${size}-byte pack`);
  const sealed =
    hlen + 4 <= tailLength
      ? tail.subarray(tailLength - 4 - hlen, tailLength - 4)
      : await storage.load({ type: 'data', name: packId }, { offset: size - 4 - hlen, length: hlen });
  if (sealed.byteLength !== hlen) throw bad(`read ${sealed.byteLength} bytes of its ${hlen}-byte header`);
  let entries: PackEntry[];
  try {
    entries = decodePackHeader(keys.decrypt(sealed));
  } catch (err) {
    throw bad(err instanceof Error && err.name === 'AuthenticationError' ? 'header authentication failed (the pack is damaged)' : `header: ${(err as Error).message}`, err);
  }
  const dataEnd = size - 4 - hlen;
  let pos = 0;
  for (const e of entries) {
    if (e.offset !== pos || e.length < OVERHEAD) throw bad(`header entry at offset ${e.offset} (${e.length} bytes) does not follow the previous blob (expected offset ${pos})`);
    pos += e.length;
  }
  if (pos !== dataEnd) throw bad(`header lists ${pos} bytes of blobs, the pack holds ${dataEnd}`);
  return entries;
}
