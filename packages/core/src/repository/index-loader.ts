/**
 * Loading the repository's index into the in-memory {@link BlobIndex}, resilient to damage:
 *
 * - An index file that cannot be read (missing bytes, failed authentication, a malformed body,
 *   more bytes than any index file may have) is reported by name and skipped; the rest of the
 *   index still loads.
 * - With `verifyPacks` (every backup; any command once an index file was found damaged), the
 *   packs are listed and compared with the index: a pack the index names that is missing, or
 *   whose size is not what its entries imply, is marked bad, so its blobs are neither read nor
 *   deduplicated against. Packs that no readable index file covers (left by an interrupted
 *   backup, or covered only by a damaged index file) are read from their own headers and
 *   their blobs added ("adopted"); a backup then writes them into its next index file, which
 *   heals the repository.
 *
 * Index files are listed before the packs: an index file is written only after its packs, so
 * every pack that an index file seen here names was stored before the pack listing started.
 */
import type { RepositoryCache } from '../cache/repository-cache.js';
import type { MasterKeys } from '../crypto/keys.js';
import type { Storage } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { mapLimit, mapLimitBytes } from './blob-reader.js';
import { IntegrityError } from './errors.js';
import { BlobIndex } from './index-table.js';
import { openMetadataFile } from './metadata-file.js';
import { ENTRY_SIZE, packTrailerSize, scanIndexBody, type IndexedPack } from './pack-format.js';
import { readPackHeader } from './pack-reader.js';
import { loadWholeFile } from './whole-file.js';

/** Most stored bytes of index files loaded at once (their bodies, decrypted and decompressed, take a few times that). */
const INDEX_LOAD_BUDGET = 64 * 1024 * 1024;

/** What one {@link IndexLoader.load} found, besides the blobs it added. */
export interface IndexLoadResult {
  /** Index files read in this call. */
  files: number;
  packs: number;
  blobs: number;
  /** Index files that could not be read, skipped (each named, with the reason). */
  damagedFiles: Array<{ file: string; message: string }>;
  /** Packs the index names that the storage does not have. */
  missingPacks: string[];
  /** Packs whose stored size is not what their index entries imply (truncated or damaged). */
  wrongSizePacks: Array<{ pack: string; size: number; expected: number }>;
  /** Packs no readable index file covers, whose headers were read: their blobs are now indexed in memory. */
  adoptedPacks: IndexedPack[];
  /** Packs no readable index file covers whose headers could not be read. */
  unreadablePacks: Array<{ file: string; message: string }>;
}

export interface IndexLoadOptions {
  /** List the packs: mark missing or wrongly sized ones bad and adopt uncovered ones (see the module comment). */
  verifyPacks?: boolean;
}

export class IndexLoader {
  /** Index files whose entries are in the index. */
  readonly loadedFiles = new Set<string>();
  /** Index files found damaged (not read again by this process). */
  private readonly damagedFiles = new Map<string, string>();
  /** Pack numbers named by index files (only these are judged against the listing; our own uploads are not). */
  private readonly fromIndexFiles = new Set<number>();
  /** Packs whose headers were read (adopted or found unreadable): not read again. */
  private readonly headersTried = new Set<string>();

  constructor(
    private readonly storage: Storage,
    private readonly keys: MasterKeys,
    private readonly index: BlobIndex,
    private readonly cache: () => RepositoryCache | undefined = () => undefined,
  ) {}

  /** Index files skipped as damaged so far, by storage path, with the reason. */
  damaged(): Array<{ file: string; message: string }> {
    return [...this.damagedFiles].map(([name, message]) => ({ file: `index/${name}`, message }));
  }

  async load(opts: IndexLoadOptions = {}): Promise<IndexLoadResult> {
    const result: IndexLoadResult = {
      files: 0,
      packs: 0,
      blobs: 0,
      damagedFiles: [],
      missingPacks: [],
      wrongSizePacks: [],
      adoptedPacks: [],
      unreadablePacks: [],
    };
    const sizes = new Map<string, number>();
    for await (const f of this.storage.list('index')) sizes.set(f.name, f.size);
    const cache = this.cache();
    await cache?.clean('index', new Set(sizes.keys()));
    const fresh = [...sizes.keys()].filter((n) => !this.loadedFiles.has(n) && !this.damagedFiles.has(n));
    // The pack listing runs while the index files load (it is only needed afterwards).
    const listing = opts.verifyPacks ? this.listPacks() : undefined;
    listing?.catch(() => undefined);
    // Eight at a time, and at most INDEX_LOAD_BUDGET of stored bytes at once (a valid index file may
    // have hundreds of MiB; one alone always loads).
    await mapLimitBytes(fresh, 8, INDEX_LOAD_BUDGET, (name) => sizes.get(name) ?? 0, async (name) => {
      let body: Buffer;
      try {
        // (With its listed size: a cached copy of another size is not read, and the load budget above holds.)
        const cached = await cache?.getMetadata('index', name, sizes.get(name));
        const bytes = cached ?? (await loadWholeFile(this.storage, { type: 'index', name }, sizes.get(name)));
        body = await openMetadataFile(this.keys, bytes, `index/${name}`, name);
        if (cache && !cached) await cache.putMetadata('index', name, bytes);
        // Check the whole body before adding anything from it.
        try {
          scanIndexBody(body, () => undefined, () => undefined);
        } catch (err) {
          throw new IntegrityError(`index/${name}: ${(err as Error).message}`, { file: `index/${name}`, cause: err });
        }
      } catch (err) {
        if (this.storage.isNotFound(err)) return; // removed meanwhile (superseded by a prune)
        if (!isDamage(err)) throw err;
        this.damagedFiles.set(name, (err as Error).message);
        result.damagedFiles.push({ file: `index/${name}`, message: (err as Error).message });
        return;
      }
      this.index.reserve(Math.floor(body.byteLength / ENTRY_SIZE));
      let packNo = 0;
      const r = scanIndexBody(
        body,
        (packId) => {
          packNo = this.index.packNumber(packId);
          this.fromIndexFiles.add(packNo);
        },
        (flags, buf, idOff, offset, length, rawLength) => {
          this.index.add(flags, buf, idOff, packNo, offset, length, rawLength);
        },
      );
      result.packs += r.packs;
      result.blobs += r.blobs;
      result.files++;
      this.loadedFiles.add(name);
    });
    if (listing || result.damagedFiles.length > 0 || this.damagedFiles.size > 0) {
      await this.verifyPacks(await (listing ?? this.listPacks()), result);
    }
    // Cached packs the index no longer names (pruned) go.
    await cache?.cleanPacks((pack) => this.index.findPack(pack) >= 0);
    return result;
  }

  /**
   * List the packs and read the headers of those no index file covers (as a load with
   * `verifyPacks` does): for a reader that met a blob no index lists, as after an index file was
   * deleted. Packs whose headers were read before are not read again.
   */
  async adoptUnlisted(): Promise<IndexLoadResult> {
    const result: IndexLoadResult = { files: 0, packs: 0, blobs: 0, damagedFiles: [], missingPacks: [], wrongSizePacks: [], adoptedPacks: [], unreadablePacks: [] };
    await this.verifyPacks(await this.listPacks(), result);
    return result;
  }

  /** The pack listing of the last load that listed the packs (name → size), for maintenance. */
  lastPackListing: ReadonlyMap<string, number> | undefined;

  private async listPacks(): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    for await (const f of this.storage.list('data')) sizes.set(f.name, f.size);
    this.lastPackListing = sizes;
    return sizes;
  }

  /** Compare the index with the pack listing; adopt uncovered packs from their headers. */
  private async verifyPacks(sizes: Map<string, number>, result: IndexLoadResult): Promise<void> {
    for (const no of this.fromIndexFiles) {
      const info = this.index.packInfo(no);
      if (info.bad) continue;
      const pack = this.index.packId(no);
      const size = sizes.get(pack);
      if (size === undefined) {
        this.index.markPackBad(no);
        result.missingPacks.push(pack);
        continue;
      }
      const expected = info.end + packTrailerSize(info.blobs);
      if (size !== expected) {
        this.index.markPackBad(no);
        result.wrongSizePacks.push({ pack, size, expected });
      }
    }
    const uncovered = [...sizes].filter(([pack]) => this.index.findPack(pack) < 0 && !this.headersTried.has(pack));
    await mapLimit(uncovered, 8, async ([pack, size]) => {
      this.headersTried.add(pack);
      try {
        const entries = await readPackHeader(this.storage, this.keys, pack, size);
        const no = this.index.packNumber(pack);
        for (const e of entries) this.index.add(e.flags, e.id, 0, no, e.offset, e.length, e.rawLength);
        result.adoptedPacks.push({ id: pack, entries });
      } catch (err) {
        if (this.storage.isNotFound(err)) return; // removed meanwhile
        if (!isDamage(err)) throw err;
        result.unreadablePacks.push({ file: handlePath({ type: 'data', name: pack }), message: (err as Error).message });
      }
    });
  }
}

/** True for damage to stored bytes (as opposed to a storage that failed or cannot be reached). */
function isDamage(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'IntegrityError';
}
