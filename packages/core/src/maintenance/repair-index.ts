/**
 * `kiwi repair index`: rebuild the index from the packs themselves, so that every intact pack
 * is reachable again. Damaged or missing index files are replaced; packs the index names that
 * no longer exist are dropped from it; packs no readable index file lists are read from their
 * headers (only the headers) and indexed. A pack whose header cannot be read keeps the
 * entries a readable index file has for it when its size matches them (`repair packs` then
 * salvages it); otherwise its blobs are lost and reported.
 *
 * By default the entries of a readable index file are trusted for a pack whose stored size
 * matches them (as restic does); `readAllPacks` reads every pack header and rebuilds the whole
 * index from them.
 *
 * Runs under an exclusive lock, in the order of `index-files.ts`: new index files first, then
 * the old ones are removed. A crash in between leaves both, which is harmless.
 */
import type { Repository } from '../repository/repository.js';
import { mapLimit } from '../repository/blob-reader.js';
import { packTrailerSize } from '../repository/pack-format.js';
import { readPackHeader } from '../repository/pack-reader.js';
import { handlePath } from '../storage/types.js';
import { rawCount, rawEnd, rawFromEntries, readIndexFiles, removeIndexFiles, writeIndexFiles, type RawPack } from './index-files.js';

export interface RepairIndexOptions {
  /** Read every pack's header, not only those no readable index file lists correctly. */
  readAllPacks?: boolean;
  /** Work out what would change, write and remove nothing. */
  dryRun?: boolean;
  onProgress?: (p: { phase: 'index' | 'headers' | 'write'; done: number; total: number }) => void;
}

export interface RepairIndexResult {
  /** Index files read (readable ones). */
  indexFilesRead: number;
  /** Index files that could not be read (replaced). */
  damagedIndexFiles: Array<{ file: string; message: string }>;
  /** Packs in the new index, and their blobs. */
  packs: number;
  blobs: number;
  /** Pack headers read. */
  headersRead: number;
  /** Packs the old index listed that are not in storage (dropped from the index). */
  droppedPacks: string[];
  /** Packs in storage that no readable index file listed (now indexed). */
  addedPacks: string[];
  /** Packs whose index entries differed from their own header (the header wins). */
  correctedPacks: string[];
  /** Packs whose header cannot be read but whose index entries match their size: kept (salvage them with `repair packs`). */
  keptFromIndex: Array<{ file: string; message: string }>;
  /** Packs whose header cannot be read and no index lists usably: their blobs are lost. */
  unreadablePacks: Array<{ file: string; message: string }>;
  /** Whether the index was rewritten (false when nothing needed repair, or for a dry run). */
  rewritten: boolean;
  newIndexFiles: string[];
  removedIndexFiles: string[];
}

export async function repairIndex(repo: Repository, opts: RepairIndexOptions = {}): Promise<RepairIndexResult> {
  const lock = await repo.lock('exclusive');
  try {
    return await repairIndexLocked(repo, opts);
  } finally {
    await lock.release();
  }
}

async function repairIndexLocked(repo: Repository, opts: RepairIndexOptions): Promise<RepairIndexResult> {
  const { storage, keys, config } = repo.internals();
  const progress = opts.onProgress ?? (() => undefined);
  const result: RepairIndexResult = {
    indexFilesRead: 0,
    damagedIndexFiles: [],
    packs: 0,
    blobs: 0,
    headersRead: 0,
    droppedPacks: [],
    addedPacks: [],
    correctedPacks: [],
    keptFromIndex: [],
    unreadablePacks: [],
    rewritten: false,
    newIndexFiles: [],
    removedIndexFiles: [],
  };

  const oldNames: string[] = [];
  for await (const f of storage.list('index')) oldNames.push(f.name);
  const files = await readIndexFiles(storage, keys, (file, err) => result.damagedIndexFiles.push({ file, message: err.message }));
  result.indexFilesRead = files.length;
  progress({ phase: 'index', done: files.length, total: oldNames.length });
  const fromIndex = new Map<string, RawPack>();
  for (const f of files) for (const p of f.packs) if (!fromIndex.has(p.id)) fromIndex.set(p.id, p);

  const sizes = new Map<string, number>();
  for await (const f of storage.list('data')) sizes.set(f.name, f.size);
  for (const id of fromIndex.keys()) if (!sizes.has(id)) result.droppedPacks.push(id);

  const matches = (p: RawPack, size: number) => rawEnd(p) + packTrailerSize(rawCount(p)) === size;
  const final: RawPack[] = [];
  const toRead: Array<[string, number]> = [];
  for (const [id, size] of sizes) {
    const listed = fromIndex.get(id);
    if (listed && !opts.readAllPacks && matches(listed, size)) final.push(listed);
    else toRead.push([id, size]);
  }
  let done = 0;
  const read = await mapLimit(toRead, 8, async ([id, size]): Promise<RawPack | undefined> => {
    const listed = fromIndex.get(id);
    try {
      const raw = rawFromEntries(await readPackHeader(storage, keys, id, size));
      result.headersRead++;
      if (!listed) result.addedPacks.push(id);
      else if (!listed.raw.equals(raw)) result.correctedPacks.push(id);
      return { id, raw };
    } catch (err) {
      if (storage.isNotFound(err)) return undefined; // removed meanwhile
      if ((err as Error).name !== 'IntegrityError') throw err;
      const file = handlePath({ type: 'data', name: id });
      if (listed && matches(listed, size)) {
        result.keptFromIndex.push({ file, message: (err as Error).message });
        return listed;
      }
      result.unreadablePacks.push({ file, message: (err as Error).message });
      return undefined;
    } finally {
      progress({ phase: 'headers', done: ++done, total: toRead.length });
    }
  });
  for (const p of read) if (p) final.push(p);
  final.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  result.packs = final.length;
  result.blobs = final.reduce((n, p) => n + rawCount(p), 0);

  const needed =
    result.damagedIndexFiles.length > 0 ||
    result.droppedPacks.length > 0 ||
    result.addedPacks.length > 0 ||
    result.correctedPacks.length > 0 ||
    result.unreadablePacks.length > 0;
  if (!needed || opts.dryRun) return result;

  progress({ phase: 'write', done: 0, total: 1 });
  result.newIndexFiles = await writeIndexFiles(storage, keys, config.compression.level, final, oldNames);
  const fresh = new Set(result.newIndexFiles);
  result.removedIndexFiles = oldNames.filter((n) => !fresh.has(n));
  await removeIndexFiles(storage, result.removedIndexFiles);
  result.rewritten = true;
  progress({ phase: 'write', done: 1, total: 1 });
  return result;
}
