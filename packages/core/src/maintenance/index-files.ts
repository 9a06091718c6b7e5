/**
 * Whole index files for maintenance (repair, prune): read every index file with its packs as
 * compact raw entries (45 bytes per blob, no object per blob), and write a new set of index
 * files that supersede old ones (docs/repository-format.md §7).
 *
 * The crash-safe order of an index rewrite: write the new index files (each lists the old
 * files it supersedes) → delete the old index files → only then delete packs. A crash at any
 * point leaves an index that covers every pack still in use (old and new files listing the
 * same packs is harmless: a pack may be listed in several index files).
 */
import type { MasterKeys } from '../crypto/keys.js';
import { removeFiles, type Storage } from '../storage/types.js';
import type { BlobIndex } from '../repository/index-table.js';
import { mapLimit } from '../repository/blob-reader.js';
import { IntegrityError } from '../repository/errors.js';
import { ID_SIZE } from '../repository/index-table.js';
import { openMetadataFile, sealMetadataFile } from '../repository/metadata-file.js';
import { listFiles } from '../repository/open.js';
import { loadWholeFile } from '../repository/whole-file.js';
import { ENTRY_SIZE, INDEX_MAGIC, INDEX_VERSION, scanIndexBody, writeEntry, type PackEntry } from '../repository/pack-format.js';

/** A pack and its blobs as raw 45-byte entries (the index file / pack header layout). */
export interface RawPack {
  id: string;
  /** `n × 45` bytes: the entries, in pack order. */
  raw: Buffer;
}

export interface IndexFileContent {
  name: string;
  packs: RawPack[];
  supersedes: string[];
}

/** Index files of this many blobs at most are written by a rewrite. */
export const MAX_BLOBS_PER_INDEX_FILE = 200_000;

export function rawFromEntries(entries: readonly PackEntry[]): Buffer {
  const raw = Buffer.alloc(entries.length * ENTRY_SIZE);
  let pos = 0;
  for (const e of entries) pos = writeEntry(raw, pos, e);
  return raw;
}

/** The blobs of a raw pack: type, id (hex), and the entry's fields. */
export function* rawEntries(p: RawPack): Generator<{ tree: boolean; compressed: boolean; id: string; offset: number; length: number; rawLength: number }> {
  for (let pos = 0; pos + ENTRY_SIZE <= p.raw.byteLength; pos += ENTRY_SIZE) {
    const flags = p.raw[pos]!;
    yield {
      tree: (flags & 1) !== 0,
      compressed: (flags & 2) !== 0,
      id: p.raw.toString('hex', pos + 1, pos + 1 + ID_SIZE),
      offset: p.raw.readUInt32LE(pos + 33),
      length: p.raw.readUInt32LE(pos + 37),
      rawLength: p.raw.readUInt32LE(pos + 41),
    };
  }
}

/** Number of blobs of a raw pack. */
export function rawCount(p: RawPack): number {
  return p.raw.byteLength / ENTRY_SIZE;
}

/** Where a raw pack's blobs end (its size is this plus the header and trailer). */
export function rawEnd(p: RawPack): number {
  let end = 0;
  for (let pos = 0; pos + ENTRY_SIZE <= p.raw.byteLength; pos += ENTRY_SIZE) {
    end = Math.max(end, p.raw.readUInt32LE(pos + 33) + p.raw.readUInt32LE(pos + 37));
  }
  return end;
}

/**
 * Read every index file. A damaged one (unreadable, larger than any index file may be, failing
 * authentication, malformed) is handed to `onDamaged` and left out.
 */
export async function readIndexFiles(
  storage: Storage,
  keys: MasterKeys,
  onDamaged: (file: string, err: Error) => void,
): Promise<IndexFileContent[]> {
  const files = await listFiles(storage, 'index');
  const out = await mapLimit(files, 8, async ({ name, size }): Promise<IndexFileContent | undefined> => {
    const file = `index/${name}`;
    try {
      const body = await openMetadataFile(keys, await loadWholeFile(storage, { type: 'index', name }, size), file, name);
      const packs: RawPack[] = [];
      let current: RawPack | undefined;
      let start = 0;
      let r;
      try {
        r = scanIndexBody(
          body,
          (packId, count) => {
            current = { id: packId, raw: Buffer.alloc(count * ENTRY_SIZE) };
            packs.push(current);
            start = -1;
          },
          (_flags, buf, idOff) => {
            if (start < 0) start = idOff - 1;
            const pos = idOff - 1 - start;
            buf.copy(current!.raw, pos, idOff - 1, idOff - 1 + ENTRY_SIZE);
          },
        );
      } catch (err) {
        throw new IntegrityError(`${file}: ${(err as Error).message}`, { file, cause: err });
      }
      return { name, packs, supersedes: r.supersedes };
    } catch (err) {
      if (storage.isNotFound(err)) return undefined; // removed meanwhile
      if ((err as Error).name !== 'IntegrityError') throw err;
      onDamaged(file, err as Error);
      return undefined;
    }
  });
  return out.filter((f): f is IndexFileContent => f !== undefined);
}

/** The plaintext body of an index file listing `packs` and superseding `supersedes`. */
export function encodeRawIndexBody(packs: readonly RawPack[], supersedes: readonly string[]): Buffer {
  let size = 16 + supersedes.length * ID_SIZE;
  for (const p of packs) size += ID_SIZE + 4 + p.raw.byteLength;
  const out = Buffer.alloc(size);
  out.write(INDEX_MAGIC, 0, 'latin1');
  out[4] = INDEX_VERSION;
  out.writeUInt32LE(supersedes.length, 8);
  out.writeUInt32LE(packs.length, 12);
  let pos = 16;
  for (const s of supersedes) pos += out.write(s, pos, ID_SIZE, 'hex');
  for (const p of packs) {
    pos += out.write(p.id, pos, ID_SIZE, 'hex');
    pos = out.writeUInt32LE(p.raw.byteLength / ENTRY_SIZE, pos);
    pos += p.raw.copy(out, pos);
  }
  if (pos !== size) throw new Error('index encoding size mismatch');
  return out;
}

/**
 * Write index files listing `packs` (split so that no file lists more than
 * {@link MAX_BLOBS_PER_INDEX_FILE} blobs), each superseding `supersedes`. Returns their names.
 */
export async function writeIndexFiles(
  storage: Storage,
  keys: MasterKeys,
  level: number,
  packs: readonly RawPack[],
  supersedes: readonly string[],
): Promise<string[]> {
  const groups: RawPack[][] = [];
  let group: RawPack[] = [];
  let blobs = 0;
  for (const p of packs) {
    const n = rawCount(p);
    if (group.length > 0 && blobs + n > MAX_BLOBS_PER_INDEX_FILE) {
      groups.push(group);
      group = [];
      blobs = 0;
    }
    group.push(p);
    blobs += n;
  }
  if (group.length > 0 || supersedes.length > 0) groups.push(group);
  const names: string[] = [];
  for (const g of groups) {
    const { name, bytes } = await sealMetadataFile(keys, encodeRawIndexBody(g, supersedes), level);
    await storage.save({ type: 'index', name }, bytes);
    names.push(name);
  }
  return names;
}

/** Remove index files (already gone is fine; in batches where the storage can). */
export async function removeIndexFiles(storage: Storage, names: Iterable<string>): Promise<void> {
  await removeFiles(storage, [...names].map((name) => ({ type: 'index' as const, name })));
}

/**
 * The packs of the in-memory index whose pack number `keep` accepts, each with all its entries in
 * pack order — an index rewrite's content without reading the index files again.
 */
export function rawPacksFromIndex(index: BlobIndex, keep: (packNo: number) => boolean): RawPack[] {
  const byPack = new Map<number, number[]>();
  for (let e = 0; e < index.size; e++) {
    const no = index.entryPack(e);
    if (!keep(no)) continue;
    const list = byPack.get(no);
    if (list) list.push(e);
    else byPack.set(no, [e]);
  }
  const out: RawPack[] = [];
  for (const [no, entries] of byPack) {
    const locs = entries.map((e) => index.get(e)).sort((a, b) => a.offset - b.offset);
    out.push({
      id: index.packId(no),
      raw: rawFromEntries(
        locs.map((l) => ({ flags: (l.type === 'tree' ? 1 : 0) | (l.compressed ? 2 : 0), id: Buffer.from(l.id, 'hex'), offset: l.offset, length: l.length, rawLength: l.rawLength })),
      ),
    });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
