/**
 * `check --read-data`: every pack is downloaded, in pieces (never whole); its name must equal its
 * SHA-256, its header must decrypt and equal its index entries byte for byte, and every blob in it
 * must decrypt, decompress to its raw length and have the HMAC id it is listed under.
 */
import { createHash } from 'node:crypto';
import { handlePath } from '../storage/types.js';
import type { CheckIndex, PackRef } from './check-index.js';
import { eachLimit, msg, type CheckContext, type CheckReporter } from './check-util.js';
import { MAX_PACK_SIZE } from './limits.js';
import { PACK_HEADER_VERSION, decodePackHeader, entryToLocation, type PackEntry } from './pack-format.js';
import { packReads, readSealedHeader } from './pack-reader.js';
import type { BlobLocation, ReadDataSubset } from './types.js';

export function parseReadDataSubset(text: string): ReadDataSubset {
  const t = text.trim().toLowerCase();
  const group = /^(\d+)\s*\/\s*(\d+)$/.exec(t);
  if (group) {
    const n = Number(group[1]);
    const m = Number(group[2]);
    if (!(m >= 1 && n >= 1 && n <= m && m <= 1_000_000)) throw new RangeError(`--read-data-subset ${text}: n/m needs 1 ≤ n ≤ m`);
    return { kind: 'group', n, m };
  }
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(t);
  if (pct) {
    const value = Number(pct[1]);
    if (!(value > 0 && value <= 100)) throw new RangeError(`--read-data-subset ${text}: a percentage must be above 0 and at most 100`);
    return { kind: 'percent', value };
  }
  const size = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/.exec(t);
  if (size) {
    const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[size[2] as '' | 'k' | 'm' | 'g' | 't'];
    const value = Math.floor(Number(size[1]) * mult);
    if (value <= 0) throw new RangeError(`--read-data-subset ${text}: the size must be above 0`);
    return { kind: 'bytes', value };
  }
  throw new RangeError(`--read-data-subset ${text}: expected n/m (1/30), a percentage (10%) or a size (2G)`);
}

/** The packs a subset reads (all of them without a subset). */
export function selectPacks<T extends { name: string; size: number }>(packs: readonly T[], subset: ReadDataSubset | undefined, random: () => number = Math.random): T[] {
  if (!subset) return [...packs];
  switch (subset.kind) {
    case 'group':
      // The first 32 bits of the id (uniform: it is a SHA-256) pick the group.
      return packs.filter((p) => parseInt(p.name.slice(0, 8), 16) % subset.m === subset.n - 1);
    case 'percent': {
      const count = Math.max(1, Math.round((packs.length * subset.value) / 100));
      return shuffled(packs, random).slice(0, Math.min(count, packs.length));
    }
    case 'bytes': {
      const out: T[] = [];
      let bytes = 0;
      for (const p of shuffled(packs, random)) {
        if (bytes >= subset.value) break;
        out.push(p);
        bytes += p.size;
      }
      return out;
    }
  }
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** At most this many blob-level errors are listed per pack. */
const MAX_BLOB_ERRORS_PER_PACK = 20;
export async function verifyPackData(
  ctx: CheckContext,
  allPacks: ReadonlyArray<{ name: string; size: number }>,
  index: CheckIndex,
  report: CheckReporter,
  subset?: ReadDataSubset,
): Promise<void> {
  const packFiles = selectPacks(allPacks, subset);
  report.stats.packsRead = packFiles.length;
  let done = 0;
  await eachLimit(packFiles, 2, async ({ name, size }) => {
    const file = handlePath({ type: 'data', name });
    try {
      await verifyPack(ctx, name, size, index, report);
    } catch (err) {
      // The storage failed (damage is reported as it is found).
      report.error(file, `cannot be read: ${msg(err)}`);
    }
    report.progress({ phase: 'data', done: ++done, total: packFiles.length });
  });
}

/**
 * Verify one pack of `size` bytes (from the listing): its header against its index entries, each
 * blob, and its name against the SHA-256 of its bytes, reading the pack once, piece by piece.
 */
async function verifyPack(ctx: CheckContext, name: string, size: number, index: CheckIndex, report: CheckReporter): Promise<void> {
  const file = handlePath({ type: 'data', name });
  const ref: PackRef | undefined = index.packRefs.get(name);
  const repair = `kiwi repair packs ${name.slice(0, 12)}, then kiwi backup (to store the lost data again while the source still has it), then kiwi repair snapshots`;
  if (size > MAX_PACK_SIZE) {
    // Not a pack: an indexed one of this size was reported by the size check already.
    report.error(file, `is ${size} bytes, larger than any pack may be (${MAX_PACK_SIZE}): not read`, ref ? repair : undefined);
    return;
  }
  // The header, from the pack's own trailer.
  const own = await readOwnHeader(ctx, name, size);
  if ('problem' in own) {
    report.error(file, own.problem, ref ? repair : undefined);
  } else if (ref && !Buffer.concat(ref.parts).equals(own.plain.subarray(1))) {
    report.error(file, `pack header lists ${own.entries.length} blobs that differ from its index entries in ${ref.indexFile} (${ref.count} blobs)`, 'kiwi repair index');
  }
  // Each blob is verified by the header or, if it is unreadable, by the index.
  const { entries, dataEnd } = 'problem' in own ? { entries: ref ? indexEntries(ref) : [], dataEnd: size } : own;
  const blobs = new BlobErrors(file, repair, index, report);
  const inside: PackEntry[] = [];
  for (const e of entries) {
    if (e.offset + e.length <= dataEnd) {
      inside.push(e);
      continue;
    }
    const loc = entryToLocation(e, name);
    blobs.add(loc, `${loc.type} blob ${loc.id} (offset ${e.offset}, ${e.length} bytes) lies past the end of the pack data (${dataEnd} bytes)`);
  }
  // Every byte is read once, in order: the hash of the whole pack grows as its blobs are verified.
  const hash = createHash('sha256');
  for (const read of packReads(inside, size)) {
    const bytes = await ctx.storage.load({ type: 'data', name }, { offset: read.start, length: read.end - read.start });
    hash.update(bytes);
    report.stats.bytesVerified += bytes.byteLength;
    for (const e of read.blobs) {
      const loc = entryToLocation(e, name);
      try {
        await ctx.openBlob(loc, bytes.subarray(e.offset - read.start, e.offset - read.start + e.length));
      } catch (err) {
        blobs.add(loc, msg(err));
      }
    }
  }
  blobs.finish();
  if (hash.digest('hex') !== name) {
    report.error(file, `content does not match its name (SHA-256 of its ${size} bytes differs): the pack is damaged or truncated`, repair);
  }
}

/** A pack's entries as its index file lists them. */
function indexEntries(ref: PackRef): PackEntry[] {
  return decodePackHeader(Buffer.concat([Buffer.from([PACK_HEADER_VERSION]), ...ref.parts]));
}

/** A pack's own header: its plaintext, its entries and where its blobs end, or what is wrong with it. */
type OwnHeader = { plain: Buffer; entries: PackEntry[]; dataEnd: number } | { problem: string };

/** Read and decode a pack's own header (at most its bounded length is read). A storage failure rejects. */
async function readOwnHeader(ctx: CheckContext, name: string, size: number): Promise<OwnHeader> {
  let sealed: Buffer;
  try {
    sealed = await readSealedHeader(ctx.storage, name, size);
  } catch (err) {
    if ((err as Error).name !== 'IntegrityError') throw err;
    return { problem: msg(err) };
  }
  const dataEnd = size - 4 - sealed.byteLength;
  let plain: Buffer;
  try {
    plain = ctx.decrypt(sealed);
  } catch {
    return { problem: 'pack header: header authentication failed' };
  }
  try {
    return { plain, entries: decodePackHeader(plain, dataEnd), dataEnd };
  } catch (err) {
    return { problem: `pack header: ${msg(err)}` };
  }
}

/** The damaged blobs of one pack: each lost, the first {@link MAX_BLOB_ERRORS_PER_PACK} listed (the first with the repair), the rest counted. */
class BlobErrors {
  private count = 0;
  constructor(
    private readonly file: string,
    private readonly repair: string,
    private readonly index: CheckIndex,
    private readonly report: CheckReporter,
  ) {}

  add(loc: BlobLocation, problem: string): void {
    this.count++;
    this.index.lose(loc.type, loc.id, this.file);
    if (this.count <= MAX_BLOB_ERRORS_PER_PACK) this.report.error(this.file, problem, this.count === 1 ? this.repair : undefined);
  }

  finish(): void {
    if (this.count > MAX_BLOB_ERRORS_PER_PACK) this.report.error(this.file, `and ${this.count - MAX_BLOB_ERRORS_PER_PACK} more damaged blobs in this pack`);
  }
}
