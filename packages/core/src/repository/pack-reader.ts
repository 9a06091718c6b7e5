/**
 * Reading a pack's own header (docs/repository-format.md §6) without reading its blobs: what
 * `repair index`, prune, check and the index loader use for packs no index file covers. And
 * reading a whole pack (`check --read-data`, `repair packs`) in bounded pieces, never at once.
 */
import { OVERHEAD } from '../crypto/aead.js';
import type { MasterKeys } from '../crypto/keys.js';
import type { Storage } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { IntegrityError } from './errors.js';
import { MAX_PACK_HEADER_SIZE, MAX_PACK_SIZE } from './limits.js';
import { decodePackHeader, packHeaderLength, type PackEntry } from './pack-format.js';

/** The first read takes this much of a pack's tail, which holds the whole header of most packs. */
const TAIL_GUESS = 64 * 1024;

/**
 * A pack read whole is read in pieces of at most this many bytes (a larger blob alone): with up
 * to 4 GiB per pack, one read could take more memory than the machine has.
 */
export const PACK_READ_SIZE = 4 * 1024 * 1024;

/**
 * The encrypted header of pack `packId` (`size` bytes, from a listing or a stat), found from its
 * trailer (docs/repository-format.md §6): one read of the pack's tail, and a second when the header
 * is longer. A pack larger than any pack may be, one too short to hold a header, or a trailer whose
 * length cannot fit the pack or is beyond {@link MAX_PACK_HEADER_SIZE} fails with an
 * {@link IntegrityError} naming the pack, before that length is read.
 */
export async function readSealedHeader(storage: Storage, packId: string, size: number): Promise<Buffer> {
  const file = handlePath({ type: 'data', name: packId });
  const bad = (what: string, cause?: unknown) => new IntegrityError(`${file}: ${what}`, { file, ...(cause !== undefined ? { cause } : {}) });
  if (!Number.isSafeInteger(size) || size > MAX_PACK_SIZE) throw bad(`${size} bytes, larger than any pack may be (${MAX_PACK_SIZE})`);
  if (size < 4 + OVERHEAD + 1) throw bad(`too short (${size} bytes) to hold a pack header`);
  const tailLength = Math.min(size, TAIL_GUESS);
  const tail = await storage.load({ type: 'data', name: packId }, { offset: size - tailLength, length: tailLength });
  if (tail.byteLength !== tailLength) throw bad(`read ${tail.byteLength} bytes of its last ${tailLength}: the pack changed or is truncated`);
  let hlen: number;
  try {
    hlen = packHeaderLength(size, tail.subarray(tailLength - 4));
  } catch (err) {
    throw bad((err as Error).message, err);
  }
  const sealed =
    hlen + 4 <= tailLength
      ? tail.subarray(tailLength - 4 - hlen, tailLength - 4)
      : await storage.load({ type: 'data', name: packId }, { offset: size - 4 - hlen, length: hlen });
  if (sealed.byteLength !== hlen) throw bad(`read ${sealed.byteLength} bytes of its ${hlen}-byte header`);
  return sealed;
}

/**
 * Read and authenticate the header of pack `packId` (`size` bytes, from a listing or a stat)
 * and check that its entries tile the pack's data exactly (contiguous from offset 0 up to the
 * header). Damage fails with an {@link IntegrityError} naming the pack.
 */
export async function readPackHeader(storage: Storage, keys: MasterKeys, packId: string, size: number): Promise<PackEntry[]> {
  const file = handlePath({ type: 'data', name: packId });
  const bad = (what: string, cause?: unknown) => new IntegrityError(`${file}: ${what}`, { file, ...(cause !== undefined ? { cause } : {}) });
  const sealed = await readSealedHeader(storage, packId, size);
  let entries: PackEntry[];
  try {
    entries = decodePackHeader(keys.decrypt(sealed));
  } catch (err) {
    throw bad(err instanceof Error && err.name === 'AuthenticationError' ? 'header authentication failed (the pack is damaged)' : `header: ${(err as Error).message}`, err);
  }
  const dataEnd = size - 4 - sealed.byteLength;
  let pos = 0;
  for (const e of entries) {
    if (e.offset !== pos || e.length < OVERHEAD) throw bad(`header entry at offset ${e.offset} (${e.length} bytes) does not follow the previous blob (expected offset ${pos})`);
    pos += e.length;
  }
  if (pos !== dataEnd) throw bad(`header lists ${pos} bytes of blobs, the pack holds ${dataEnd}`);
  return entries;
}

/**
 * The reads that cover a pack of `size` bytes once, in order: runs of whole blobs of at most
 * {@link PACK_READ_SIZE} bytes (a larger blob alone), then the rest (the header and trailer, or
 * what no entry covers) in pieces of that size. `entries`: in offset order, within `size`, not
 * overlapping (the header and index decoders make them contiguous from offset 0).
 */
export function packReads(entries: readonly PackEntry[], size: number): Array<{ start: number; end: number; blobs: PackEntry[] }> {
  const reads: Array<{ start: number; end: number; blobs: PackEntry[] }> = [];
  let run: { start: number; end: number; blobs: PackEntry[] } | undefined;
  let pos = 0;
  for (const e of entries) {
    if (run && e.offset + e.length - run.start > PACK_READ_SIZE) {
      reads.push(run);
      run = undefined;
    }
    run ??= { start: pos, end: pos, blobs: [] };
    run.end = pos = e.offset + e.length;
    run.blobs.push(e);
  }
  if (run) reads.push(run);
  for (; pos < size; pos += PACK_READ_SIZE) reads.push({ start: pos, end: Math.min(size, pos + PACK_READ_SIZE), blobs: [] });
  return reads;
}
