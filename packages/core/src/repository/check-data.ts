/**
 * `check --read-data`: every pack is downloaded; its name must equal its SHA-256, its header
 * must decrypt and equal its index entries byte for byte, and every blob in it must decrypt,
 * decompress to its raw length and have the HMAC id it is listed under.
 */
import { sha256Hex } from '../crypto/keys.js';
import { handlePath } from '../storage/types.js';
import type { CheckIndex, PackRef } from './check-index.js';
import { eachLimit, msg, type CheckContext, type CheckReporter } from './check-util.js';
import type { ReadDataSubset } from './types.js';
import { PACK_HEADER_VERSION, decodePackHeader, entryToLocation, packHeaderLength, type PackEntry } from './pack-format.js';

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
  await eachLimit(packFiles, 2, async ({ name }) => {
    const file = handlePath({ type: 'data', name });
    try {
      await verifyPack(ctx, name, file, index, report);
    } catch (err) {
      report.error(file, msg(err));
    }
    report.progress({ phase: 'data', done: ++done, total: packFiles.length });
  });
}

async function verifyPack(ctx: CheckContext, name: string, file: string, index: CheckIndex, report: CheckReporter): Promise<void> {
  const ref: PackRef | undefined = index.packRefs.get(name);
  const repair = `kiwi repair packs ${name.slice(0, 12)}, then kiwi backup (to store the lost data again while the source still has it), then kiwi repair snapshots`;
  let bytes: Buffer;
  try {
    bytes = await ctx.storage.load({ type: 'data', name });
  } catch (err) {
    report.error(file, `cannot be read: ${msg(err)}`);
    return;
  }
  report.stats.bytesVerified += bytes.byteLength;
  if (sha256Hex(bytes) !== name) {
    report.error(file, `content does not match its name (SHA-256 of its ${bytes.byteLength} bytes differs): the pack is damaged or truncated`, repair);
  }
  // The header, from the pack's own trailer.
  let header: PackEntry[] | undefined;
  let headerPlain: Buffer | undefined;
  let dataEnd = bytes.byteLength;
  try {
    const hlen = packHeaderLength(bytes.byteLength, bytes.subarray(Math.max(0, bytes.byteLength - 4)));
    dataEnd = bytes.byteLength - 4 - hlen;
    try {
      headerPlain = ctx.decrypt(bytes.subarray(dataEnd, bytes.byteLength - 4));
    } catch {
      throw new Error('header authentication failed');
    }
    header = decodePackHeader(headerPlain, dataEnd);
  } catch (err) {
    report.error(file, `pack header: ${msg(err)}`, ref ? repair : undefined);
  }
  if (ref && headerPlain) {
    const fromIndex = Buffer.concat(ref.parts);
    if (!fromIndex.equals(headerPlain.subarray(1))) {
      report.error(file, `pack header lists ${header?.length ?? '?'} blobs that differ from its index entries in ${ref.indexFile} (${ref.count} blobs)`, 'kiwi repair index');
    }
  }
  // Verify each blob, by the header or, if it is unreadable, by the index.
  let entries = header;
  if (!entries && ref) {
    entries = decodePackHeader(Buffer.concat([Buffer.from([PACK_HEADER_VERSION]), ...ref.parts]));
    dataEnd = bytes.byteLength;
  }
  if (!entries) return;
  let blobErrors = 0;
  for (const e of entries) {
    const loc = entryToLocation(e, name);
    let problem: string | undefined;
    if (e.offset + e.length > dataEnd) {
      problem = `${loc.type} blob ${loc.id} (offset ${e.offset}, ${e.length} bytes) lies past the end of the pack data (${dataEnd} bytes)`;
    } else {
      try {
        await ctx.openBlob(loc, bytes.subarray(e.offset, e.offset + e.length));
      } catch (err) {
        problem = msg(err);
      }
    }
    if (problem) {
      blobErrors++;
      index.lose(loc.type, loc.id, file);
      if (blobErrors <= MAX_BLOB_ERRORS_PER_PACK) report.error(file, problem, blobErrors === 1 ? repair : undefined);
    }
  }
  if (blobErrors > MAX_BLOB_ERRORS_PER_PACK) report.error(file, `and ${blobErrors - MAX_BLOB_ERRORS_PER_PACK} more damaged blobs in this pack`);
}
