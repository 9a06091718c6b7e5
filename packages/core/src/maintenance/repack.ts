/**
 * Prune's repacking: the used blobs of the packs being repacked, copied into new packs as they are
 * stored (the same key, the same bytes: neither decompressed nor encrypted again), each one verified
 * first — authentic, its plaintext of the indexed length and id — so that a damaged blob stops the
 * prune before anything is deleted.
 *
 * Memory is a few fixed buffers, not a function of how much is repacked: blobs are read in ranged
 * reads of at most {@link MAX_READ} (a larger blob alone), into the blob reader's pooled buffers,
 * {@link READS_AHEAD} reads in flight while the one before is checked and copied; each blob is checked
 * without holding its plaintext (`stored-blob-check.ts`), and the new packs are built in temporary
 * files (the spill packer). Blobs are copied in pack and offset order, one at a time, so the new
 * packs' contents do not depend on timing.
 */
import { IntegrityError } from '../repository/errors.js';
import type { Repository } from '../repository/repository.js';
import type { BlobLocation } from '../repository/types.js';
import { handlePath } from '../storage/types.js';

/** Largest ranged read (a larger blob is read alone). */
export const MAX_READ = 1024 * 1024;
/** Blobs of one pack separated by at most this many bytes are read together. */
const MAX_GAP = 256 * 1024;
/** Reads in flight ahead of the one being copied: remote storage needs a few to keep its speed. */
const READS_AHEAD = 2;
/** Bytes of idle read buffers kept between reads (a large blob's buffer is kept when it fits). */
const IDLE_BYTES = 12 * 1024 * 1024;

/** A pack being repacked: its id and the locations of the blobs to keep (asked for when its turn comes). */
export interface RepackSource {
  pack: string;
  locs: () => BlobLocation[];
}

interface Range {
  pack: string;
  start: number;
  end: number;
  locs: BlobLocation[];
  /** The last range of its pack. */
  last: boolean;
}

/**
 * The ranged reads that cover `sources`' blobs, in pack and offset order; lazily, pack by pack, so
 * that the locations of only the packs being read are held (a large repack's would be many MiB).
 */
export function* repackRanges(sources: Iterable<RepackSource>): Generator<Range> {
  for (const source of sources) {
    const sorted = source.locs().sort((a, b) => a.offset - b.offset);
    let current: Range | undefined;
    for (const loc of sorted) {
      const end = loc.offset + loc.length;
      if (current && loc.offset >= current.end && loc.offset - current.end <= MAX_GAP && end - current.start <= MAX_READ) {
        current.end = end;
        current.locs.push(loc);
        continue;
      }
      if (current) yield current;
      current = { pack: source.pack, start: loc.offset, end, locs: [loc], last: false };
    }
    if (current) {
      current.last = true;
      yield current;
    }
  }
}

type Loaded = { bytes: Buffer; error?: undefined } | { bytes?: undefined; error: unknown };

/**
 * Copy the blobs of `sources` into new packs; `onPackDone` after the last blob of each pack.
 * Returns the stored bytes added (0 for a blob the repository already holds elsewhere).
 */
export async function repackBlobs(repo: Repository, sources: Iterable<RepackSource>, onPackDone: () => void): Promise<number> {
  const { storage, reader } = repo.internals();
  const ranges = repackRanges(sources);
  // Read buffers from the reader's pool (those the tree reads left idle), given back after each range;
  // it keeps as many idle as there are reads (and none once done: what follows needs none).
  const restoreLimits = reader.limitBuffers(READS_AHEAD + 1, IDLE_BYTES);
  const load = (r: Range, into: Buffer): Promise<Loaded> =>
    storage.load({ type: 'data', name: r.pack }, { offset: r.start, length: r.end - r.start, into: into.subarray(0, r.end - r.start) }).then(
      (bytes) => ({ bytes }),
      (error: unknown) => ({ error }),
    );
  const inFlight: Array<{ range: Range; buffer: Buffer; loaded: Promise<Loaded> }> = [];
  let more = true;
  const fill = () => {
    while (more && inFlight.length < READS_AHEAD) {
      const next = ranges.next();
      if (next.done) more = false;
      else {
        const buffer = reader.acquireBuffer(next.value.end - next.value.start);
        inFlight.push({ range: next.value, buffer, loaded: load(next.value, buffer) });
      }
    }
  };
  let added = 0;
  try {
    for (;;) {
      fill();
      const current = inFlight.shift();
      if (!current) break;
      const { range: r, buffer } = current;
      const got = await current.loaded;
      fill(); // the next reads go while this one is copied
      const bytes = got.bytes && got.bytes.byteLength === r.end - r.start ? got.bytes : undefined;
      for (const loc of r.locs) {
        const stored = bytes?.subarray(loc.offset - r.start, loc.offset - r.start + loc.length);
        if (!stored) throw await unreadable(repo, loc, got.error ?? new Error(`short read: ${got.bytes?.byteLength ?? 0} of ${r.end - r.start} bytes`));
        try {
          await reader.checkStored(loc, stored);
        } catch (err) {
          throw err instanceof IntegrityError ? repairFirst(loc, err) : err;
        }
        if (repo.claimBlob(loc.type, loc.id)) added += await repo.storeSealed(loc.type, loc.id, stored, loc.rawLength, loc.compressed);
      }
      reader.releaseBuffer(buffer);
      if (r.last) onPackDone();
    }
  } finally {
    // Reads still in flight settle before their buffers go back (and before this returns).
    for (const f of inFlight) {
      await f.loaded;
      reader.releaseBuffer(f.buffer);
    }
    restoreLimits(true);
  }
  return added;
}

/** The error for a blob whose range could not be read: damage names the repair command, I/O is passed on. */
async function unreadable(repo: Repository, loc: BlobLocation, cause: unknown): Promise<Error> {
  const err = await repo.internals().reader.loadError(loc, cause);
  return err instanceof IntegrityError ? repairFirst(loc, err) : err;
}

/** Damage in a pack being repacked: nothing was deleted; name the pack and the repair command. */
function repairFirst(loc: BlobLocation, err: IntegrityError): IntegrityError {
  const file = handlePath({ type: 'data', name: loc.pack });
  return new IntegrityError(
    `${file}: ${loc.type} blob ${loc.id}, which a snapshot uses, cannot be read (${err.message}); nothing was deleted. Run \`kiwi repair packs ${loc.pack.slice(0, 12)}\` first`,
    { file, blobId: loc.id, cause: err },
  );
}
