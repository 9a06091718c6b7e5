/**
 * Reading blobs by id from their stored copies: the first copy that verifies is used, a copy that
 * fails is marked damaged in the index (so it is neither read nor deduplicated against again), and
 * a blob with no usable copy left fails with one error naming its packs. {@link Repository.loadBlob}
 * and {@link Repository.loadBlobs} read through these once the index is loaded.
 */
import { handlePath } from '../storage/types.js';
import type { BlobReader, LoadBlobsOptions } from './blob-reader.js';
import { BlobNotFoundError, IntegrityError } from './errors.js';
import type { BlobIndex } from './index-table.js';
import type { BlobId, BlobLocation, BlobType } from './types.js';

export interface LoadBlobOptions {
  /** Reuse this buffer for the plaintext when it is large enough (the result is then a view of it). */
  buffer?: Uint8Array;
}

/** Mark a location found damaged: its blob (or, for a missing or truncated pack, every blob of its pack) is not used again. */
export function markDamaged(index: BlobIndex, loc: BlobLocation, scope: 'pack' | 'blob'): void {
  const no = index.findPack(loc.pack);
  if (no < 0) return;
  if (scope === 'pack') {
    index.markPackBad(no);
    return;
  }
  for (const e of index.findAll(loc.type, loc.id)) {
    if (index.entryPack(e) === no) index.markDamaged(e);
  }
}

/** The error for a blob with no usable copy: not indexed at all, or every copy is missing or damaged. */
export function blobNotFound(index: BlobIndex, type: BlobType, id: BlobId): Error {
  const copies = index.findAll(type, id);
  if (copies.length === 0) return new BlobNotFoundError(type, id);
  const packs = [...new Set(copies.map((e) => handlePath({ type: 'data', name: index.get(e).pack })))];
  return new IntegrityError(`${type} blob ${id}: every stored copy is missing or damaged (${packs.join(', ')})`, { blobId: id, file: packs[0]! });
}

/** Read one blob from its first usable copy (see {@link Repository.loadBlob}). */
export async function readBlob(index: BlobIndex, reader: BlobReader, type: BlobType, id: BlobId, buffer: Uint8Array | undefined): Promise<Buffer> {
  let loc = index.lookup(type, id);
  if (!loc) throw blobNotFound(index, type, id);
  // A copy that fails to verify is marked damaged (by the reader's onDamage), and the next copy is tried.
  for (;;) {
    try {
      return await reader.readAt(loc, buffer);
    } catch (err) {
      const next = (err as Error).name === 'IntegrityError' ? index.lookup(type, id) : undefined;
      if (!next || (next.pack === loc.pack && next.offset === loc.offset)) throw err;
      loc = next;
    }
  }
}

/**
 * Read several blobs with few storage reads (see {@link Repository.loadBlobs}): each distinct id
 * is handed to `onBlob` once, an unindexed one with its error first; a blob whose copy fails to
 * verify is read once more with `reread`, which tries its other copies.
 */
export async function readBlobs(
  index: BlobIndex,
  reader: BlobReader,
  type: BlobType,
  ids: readonly BlobId[],
  onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void | Promise<void>,
  opts: LoadBlobsOptions,
  reread: (id: BlobId) => Promise<Buffer>,
): Promise<void> {
  const locs: BlobLocation[] = [];
  const seen = new Set<BlobId>();
  for (const id of ids) {
    if (seen.has(id)) continue;
    seen.add(id);
    const loc = index.lookup(type, id);
    if (loc) locs.push(loc);
    else await onBlob(id, undefined, blobNotFound(index, type, id));
  }
  // A blob whose copy fails to verify is read again from its next usable copy, if there is one.
  await reader.readMany(
    locs,
    async (id, data, error) => {
      if (error?.name === 'IntegrityError' && index.has(type, id)) {
        try {
          data = await reread(id);
          error = undefined;
        } catch (err) {
          error = err as Error;
        }
      }
      await onBlob(id, data, error);
    },
    opts,
  );
}
