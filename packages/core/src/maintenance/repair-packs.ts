/**
 * `kiwi repair packs <id…>`: salvage damaged packs. Every blob of the pack that still
 * verifies (authenticates, decompresses to its length, has its HMAC id) is stored again in
 * new packs; then the damaged pack is deleted and the index files that listed it are
 * rewritten without it. Blobs that do not verify are lost: a later backup stores them again
 * if the source still has them, and `repair snapshots` removes the files that used them from
 * older snapshots.
 *
 * Crash-safe order, under an exclusive lock: salvaged blobs → new packs and their index
 * file; then the damaged pack is deleted (an index entry pointing at a missing pack only makes
 * its blobs unusable, which they are); then the index files that listed it are replaced
 * (new files superseding them, then the old ones removed). Deleting the pack before the index
 * rewrite means a crash can never leave the damaged pack unindexed, where a backup could
 * adopt it from its (intact) header and deduplicate against its damaged blobs.
 */
import type { Repository } from '../repository/repository.js';
import { entryToLocation, type PackEntry } from '../repository/pack-format.js';
import { packReads, readPackHeader } from '../repository/pack-reader.js';
import { handlePath, removeFiles } from '../storage/types.js';
import { readIndexFiles, removeIndexFiles, writeIndexFiles } from './index-files.js';

export interface RepairPacksResult {
  packs: Array<{
    pack: string;
    /** Blobs stored again (or already stored intact elsewhere). */
    salvaged: number;
    /** Blobs that do not verify: lost. */
    lost: Array<{ type: 'data' | 'tree'; id: string; message: string }>;
    /** Why the pack's own header could not be used (its index entries were). */
    headerProblem?: string;
  }>;
  newIndexFiles: string[];
  removedIndexFiles: string[];
}

export interface RepairPacksOptions {
  onProgress?: (p: { pack: string; done: number; total: number }) => void;
}

/** Resolve pack id prefixes against the packs in storage and in the index. */
export async function resolvePackIds(repo: Repository, refs: readonly string[]): Promise<string[]> {
  const { storage, index } = repo.internals();
  const known = new Set<string>(index.packList());
  for await (const f of storage.list('data')) known.add(f.name);
  const out: string[] = [];
  for (const ref of refs) {
    const prefix = ref.toLowerCase().replace(/^data\/[0-9a-f]{2}\//, '');
    if (!/^[0-9a-f]{4,64}$/.test(prefix)) throw new Error(`"${ref}" is not a pack id (4 to 64 hex digits)`);
    const matches = [...known].filter((p) => p.startsWith(prefix));
    if (matches.length === 0) throw new Error(`no pack matches "${ref}"`);
    if (matches.length > 1) throw new Error(`pack id prefix "${ref}" is ambiguous: ${matches.slice(0, 5).join(', ')}${matches.length > 5 ? ', …' : ''}`);
    if (!out.includes(matches[0]!)) out.push(matches[0]!);
  }
  return out;
}

export async function repairPacks(repo: Repository, packIds: readonly string[], opts: RepairPacksOptions = {}): Promise<RepairPacksResult> {
  const lock = await repo.lock('exclusive');
  try {
    return await repairPacksLocked(repo, packIds, opts);
  } finally {
    await lock.release();
  }
}

async function repairPacksLocked(repo: Repository, packIds: readonly string[], opts: RepairPacksOptions): Promise<RepairPacksResult> {
  const { storage, keys, config, index, reader } = repo.internals();
  await repo.loadIndex({ verifyPacks: true });
  const result: RepairPacksResult = { packs: [], newIndexFiles: [], removedIndexFiles: [] };
  const targets = new Set(packIds);
  let done = 0;
  for (const pack of packIds) {
    const entry: RepairPacksResult['packs'][number] = { pack, salvaged: 0, lost: [] };
    result.packs.push(entry);
    const file = handlePath({ type: 'data', name: pack });
    // Its blobs must not count as stored while we salvage them (saveBlob would deduplicate against them).
    const no = index.packNumber(pack);
    const listed: PackEntry[] = index.entriesOfPack(no).map((e) => {
      const loc = index.get(e);
      return { flags: (loc.type === 'tree' ? 1 : 0) | (loc.compressed ? 2 : 0), id: Buffer.from(loc.id, 'hex'), offset: loc.offset, length: loc.length, rawLength: loc.rawLength };
    });
    index.markPackBad(no);
    const size = await packSize(repo, pack);
    let entries: PackEntry[] = listed;
    if (size === undefined) {
      entry.headerProblem = `${file} is missing`;
    } else {
      try {
        entries = await readPackHeader(storage, keys, pack, size);
      } catch (err) {
        entry.headerProblem = (err as Error).message;
      }
    }
    // The blobs the pack holds are read in pieces (a damaged pack may be of any size), the others are lost.
    const held: PackEntry[] = [];
    for (const e of entries) {
      if (size !== undefined && e.offset + e.length <= size) held.push(e);
      else entry.lost.push({ ...blobOf(e, pack), message: `${file} does not hold the blob (offset ${e.offset}, ${e.length} bytes)` });
    }
    held.sort((a, b) => a.offset - b.offset);
    for (const read of packReads(held, 0 /* the blobs only, not the header */)) {
      const bytes = await storage.load({ type: 'data', name: pack }, { offset: read.start, length: read.end - read.start });
      for (const e of read.blobs) {
        const loc = entryToLocation(e, pack);
        try {
          const plain = await reader.open(loc, bytes.subarray(e.offset - read.start, e.offset - read.start + e.length));
          await repo.saveBlob(loc.type, Buffer.from(plain), loc.id);
          entry.salvaged++;
        } catch (err) {
          if ((err as Error).name !== 'IntegrityError') throw err;
          entry.lost.push({ ...blobOf(e, pack), message: (err as Error).message });
        }
      }
    }
    opts.onProgress?.({ pack, done: ++done, total: packIds.length });
  }
  // 1. the salvaged blobs are stored and indexed
  await repo.flush();
  // 2. the damaged packs go
  await removeFiles(storage, [...targets].map((name) => ({ type: 'data' as const, name })));
  // 3. the index files that listed them are replaced by files that do not
  const files = await readIndexFiles(storage, keys, () => undefined);
  const affected = files.filter((f) => f.packs.some((p) => targets.has(p.id)));
  if (affected.length > 0) {
    const keep = affected.flatMap((f) => f.packs.filter((p) => !targets.has(p.id)));
    const old = affected.map((f) => f.name);
    result.newIndexFiles = await writeIndexFiles(storage, keys, config.compression.level, keep, old);
    result.removedIndexFiles = old;
    await removeIndexFiles(storage, old);
  }
  return result;
}

/** A pack's size in storage, or undefined when it is missing. */
async function packSize(repo: Repository, pack: string): Promise<number | undefined> {
  const { storage } = repo.internals();
  try {
    return (await storage.stat({ type: 'data', name: pack })).size;
  } catch (err) {
    if (storage.isNotFound(err)) return undefined;
    throw err;
  }
}

function blobOf(e: PackEntry, pack: string): { type: 'data' | 'tree'; id: string } {
  const { type, id } = entryToLocation(e, pack);
  return { type, id };
}
