/**
 * The repository engine: keys, config, blobs in packs, the index, trees, snapshots,
 * locks and check. `docs/repository-format.md` describes every byte it writes.
 */
import { hostname as osHostname } from 'node:os';
import { safeUsername, type KdfParams, type MasterKeys } from '../crypto/keys.js';
import type { Storage } from '../storage/types.js';
import { RepositoryCache } from '../cache/repository-cache.js';
import { canonicalJson } from './canonical.js';
import { packTrailerSize } from './pack-format.js';
import { checkRepository } from './check.js';
import { BlobReader, type LoadBlobsOptions } from './blob-reader.js';
import { markDamaged, readBlob, readBlobs, type LoadBlobOptions } from './blob-copies.js';
import { BlobWriter } from './blob-writer.js';
import { parseSnapshot, parseTree } from './decode.js';
import { BlobIndex, isBlobId } from './index-table.js';
import { IndexLoader, type IndexLoadOptions, type IndexLoadResult } from './index-loader.js';
import { plural, reportIndexLoad } from './index-report.js';
import { MAX_TREE_BLOB_SIZE, MAX_TREE_ENTRIES } from './limits.js';
import { acquireLock, type LockContext } from './lock.js';
import { readPackHeader } from './pack-reader.js';
import { openMetadataFile, sealMetadataFile } from './metadata-file.js';
import { addKeyFile, createRepository, listKeyFiles, openRepository, removeKeyFile } from './open.js';
import type { InitOptions, RepositoryOptions } from './options.js';
import { latestSnapshot, listSnapshotFiles, loadSnapshotFile, snapshotByPrefix, type SnapshotFilter } from './snapshots.js';
import type {
  BlobId,
  BlobLocation,
  BlobType,
  CheckOptions,
  CheckReport,
  KeyInfo,
  LockKind,
  RepoLock,
  RepositoryConfig,
  RepositoryLogger,
  SaveBlobResult,
  Snapshot,
  Tree,
} from './types.js';

export { REPOSITORY_VERSION, parseTree } from './decode.js';
export { DEFAULT_INDEX_EVERY } from './blob-writer.js';
export type { IndexLoadOptions, IndexLoadResult } from './index-loader.js';
export { DEFAULT_MAX_READ, DEFAULT_READ_GAP, type LoadBlobsOptions } from './blob-reader.js';
export { DEFAULT_CHUNKER, DEFAULT_PACK_SIZE, type InitOptions, type RepositoryOptions } from './options.js';
export type { LoadBlobOptions } from './blob-copies.js';
export type { SnapshotFilter } from './snapshots.js';

/** @internal See {@link Repository.internals}. */
export interface RepositoryInternals {
  storage: Storage;
  keys: MasterKeys;
  config: RepositoryConfig;
  log: RepositoryLogger;
  index: BlobIndex;
  reader: BlobReader;
  writer: BlobWriter;
  indexLoader: IndexLoader;
}

const defaultLogger: RepositoryLogger = {
  info: (m) => process.stderr.write(`kiwi: ${m}\n`),
  warn: (m) => process.stderr.write(`kiwi: warning: ${m}\n`),
};

/**
 * An open repository. Create one with {@link Repository.init} or {@link Repository.open};
 * call {@link Repository.close} when done.
 *
 * Writing: `saveBlob`/`saveTree` (any number, 2 in flight is best), then `flush()`,
 * then `saveSnapshot()`. This order — packs, then index files, then the snapshot — keeps
 * the repository valid if the process dies at any moment.
 */
export class Repository {
  readonly storage: Storage;
  readonly id: string;
  readonly config: RepositoryConfig;
  /** The storage's printable location. */
  get location(): string {
    return this.storage.location;
  }
  private readonly keys: MasterKeys;
  private readonly keyId: string;
  private readonly opts: RepositoryOptions;
  private readonly log: RepositoryLogger;
  private readonly index = new BlobIndex();
  private indexLoading: Promise<unknown> | undefined;
  private readonly indexLoader: IndexLoader;
  private readonly reader: BlobReader;
  private readonly writer: BlobWriter;
  private readonly locks = new Set<RepoLock>();
  private indexLoaded = false;
  private closed = false;
  private replacedReported = 0;

  private cache: RepositoryCache | undefined;
  private openedKdf: { salt: string; N: number; r: number; p: number } | undefined;

  private constructor(storage: Storage, config: RepositoryConfig, keys: MasterKeys, keyId: string, opts: RepositoryOptions) {
    this.storage = storage;
    this.config = config;
    this.id = config.id;
    this.keys = keys;
    this.keyId = keyId;
    this.opts = opts;
    this.log = opts.logger ?? defaultLogger;
    this.reader = new BlobReader(storage, keys, (loc, scope) => markDamaged(this.index, loc, scope), {
      get: () => this.cache,
      packSize: (pack) => {
        const no = this.index.findPack(pack);
        if (no < 0) return undefined;
        const info = this.index.packInfo(no);
        return info.end + packTrailerSize(info.blobs);
      },
    });
    this.indexLoader = new IndexLoader(storage, keys, this.index, () => this.cache);
    this.writer = new BlobWriter({
      storage,
      keys,
      config,
      index: this.index,
      ...(opts.uploadConcurrency !== undefined ? { uploadConcurrency: opts.uploadConcurrency } : {}),
      ...(opts.indexEvery !== undefined ? { indexEvery: opts.indexEvery } : {}),
      ...(opts.indexBlobs !== undefined ? { indexBlobs: opts.indexBlobs } : {}),
      ...(opts.spillPacks ? { spillPacksTo: typeof opts.spillPacks === 'string' ? opts.spillPacks : '' } : {}),
      saveIndexFile: (body) => this.saveMetadata('index', body),
    });
  }

  /** Create a new repository. Fails with {@link RepositoryExistsError} when `config` exists. */
  static async init(storage: Storage, password: string | Uint8Array, opts: InitOptions = {}): Promise<Repository> {
    const from = opts.sameChunkerAs;
    // A closed repository's keys are zeroed: its id key would be all zeros.
    if (from?.closed) throw new Error(`init: the repository to take the chunker parameters from (${from.location}) is closed`);
    const { config, keys, keyId } = await createRepository(storage, password, opts, from && { config: from.config, idKey: from.keys.idKey });
    const repo = new Repository(storage, config, keys, keyId, opts);
    repo.indexLoaded = true; // a new repository has an empty index
    return repo;
  }

  /**
   * Open an existing repository: {@link RepositoryNotFoundError} when there is no `config`,
   * {@link WrongPasswordError} when the password opens no key file. Call {@link loadIndex} before
   * deduplicating against existing data.
   */
  static async open(storage: Storage, password: string | Uint8Array, opts: RepositoryOptions = {}): Promise<Repository> {
    const log = opts.logger ?? defaultLogger;
    const { config, keys, keyId, kdf } = await openRepository(storage, password, log);
    const repo = new Repository(storage, config, keys, keyId, opts);
    repo.openedKdf = kdf;
    if (opts.cacheDir) repo.cache = await RepositoryCache.open(opts.cacheDir, config.id, (m) => log.warn(m));
    return repo;
  }

  /**
   * The scrypt salt and parameters of the key file this repository was opened with (nothing
   * secret: they are in the key file as stored). The CLI keeps them in its cache so that the next
   * command on a remote repository can begin deriving the key before it has read the key file.
   */
  get keyKdf(): { salt: string; N: number; r: number; p: number } | undefined {
    return this.openedKdf;
  }

  /** Where this repository's metadata cache is, when it has one. */
  get cacheLocation(): string | undefined {
    return this.cache?.dir;
  }

  // ---------------------------------------------------------------- keys

  /** Add a key file for another password. Returns its id (`keys/<id>`). */
  async addKey(password: string | Uint8Array, opts: { kdf?: KdfParams } = {}): Promise<string> {
    this.assertOpen();
    return addKeyFile(this.storage, this.keys, password, { ...this.opts, ...opts });
  }

  /** The repository's key files. */
  async listKeys(): Promise<KeyInfo[]> {
    this.assertOpen();
    return listKeyFiles(this.storage, this.keyId);
  }

  /** Remove a key file. Refuses to remove the last one. `id` may be a unique prefix. */
  async removeKey(id: string): Promise<void> {
    this.assertOpen();
    return removeKeyFile(this.storage, id);
  }

  // ---------------------------------------------------------------- index

  /**
   * Read every index file not read yet into the in-memory index. A damaged index file is
   * reported (through the logger, and in the result) and skipped. With `verifyPacks` (every
   * backup calls it so), and on its own once an index file was found damaged, the packs are
   * listed too: packs the index names that are missing or of the wrong size are marked bad
   * (never read, never deduplicated against), and packs no readable index file covers are read
   * from their headers and their blobs indexed (a later `flush` writes them into an index file).
   * See `index-loader.ts`. `loadBlob`/`loadTree` call it on first use.
   */
  loadIndex(opts: IndexLoadOptions = {}): Promise<IndexLoadResult> {
    // Serialized: a second call waits for the first, then picks up files written since.
    const run = (this.indexLoading ?? Promise.resolve()).catch(() => undefined).then(() => this.loadIndexNow(opts));
    this.indexLoading = run;
    return run;
  }

  private async loadIndexNow(opts: IndexLoadOptions): Promise<IndexLoadResult> {
    this.assertOpen();
    const r = await this.indexLoader.load(opts);
    this.indexLoaded = true;
    reportIndexLoad(this.log, r);
    if (r.adoptedPacks.length > 0) this.writer.adopt(r.adoptedPacks);
    return r;
  }

  /** Numbers about the in-memory index. */
  indexStats(): { blobs: number; packs: number; bytes: number; loaded: boolean } {
    return { blobs: this.index.size, packs: this.index.packCount, bytes: this.index.byteSize(), loaded: this.indexLoaded };
  }

  /** Write-side numbers: packs uploading or queued, pack buffer memory, packs not yet in an index file. */
  writeStats(): { packsInFlight: number; bufferBytes: number; unindexedPacks: number; pendingBlobs: number } {
    return this.writer.stats();
  }

  /** Set once this process listed the packs to adopt those no index file lists (see {@link adoptUnlistedPacks}). */
  private unlistedAdoption: Promise<void> | undefined;

  /**
   * A blob no index lists was asked for: maybe an index file was deleted. The packs are listed
   * and those no index file covers are read from their headers, once per process (backups and
   * prune do this at every index load); blobs found there can then be looked up. Loads call it
   * for a blob the index lacks, and so does the restore, before it fails a file. Resolves when done.
   */
  adoptUnlistedPacks(): Promise<void> {
    this.unlistedAdoption ??= (async () => {
      const r = await this.indexLoader.adoptUnlisted();
      reportIndexLoad(this.log, r);
      if (r.adoptedPacks.length > 0) {
        this.writer.adopt(r.adoptedPacks);
        this.log.warn(
          `${r.adoptedPacks.length} pack${r.adoptedPacks.length === 1 ? '' : 's'} that no index file lists ${r.adoptedPacks.length === 1 ? 'was' : 'were'} read from ${r.adoptedPacks.length === 1 ? 'its header' : 'their headers'} (an index file is missing?): run \`kiwi repair index\``,
        );
      }
    })();
    return this.unlistedAdoption;
  }

  /** Where a blob is stored, or undefined when it is not indexed. */
  lookupBlob(type: BlobType, id: BlobId): BlobLocation | undefined {
    return this.index.lookup(type, id);
  }

  // ---------------------------------------------------------------- blobs

  /** The blob id of `data`: HMAC-SHA-256 under the repository's id key, lowercase hex. */
  blobId(data: Uint8Array): BlobId {
    return this.keys.blobId(data);
  }

  /** True when the blob is indexed or pending in a pack being written. */
  hasBlob(type: BlobType, id: BlobId): boolean {
    return this.index.has(type, id) || this.writer.isPending(type, id);
  }

  /**
   * Store a blob unless it is already stored or pending. Resolves as soon as `data` is no
   * longer needed (compressed and encrypted into a pack buffer) — not after the upload —
   * so the caller may reuse its buffer. Waits when too many packs are uploading
   * (back-pressure). Safe to call concurrently (2 in flight uses both cores).
   */
  async saveBlob(type: BlobType, data: Uint8Array, id?: BlobId): Promise<SaveBlobResult> {
    this.assertOpen();
    if (type !== 'data' && type !== 'tree') throw new TypeError(`invalid blob type ${JSON.stringify(type)}`);
    return this.writer.saveBlob(type, data, id ?? this.keys.blobId(data));
  }

  /**
   * For the file savers (backup/savers): claim a data or tree blob for storing — true when it is
   * new, and it is then pending until {@link storeSealed} stores it or {@link unclaimBlob} gives it up.
   */
  claimBlob(type: BlobType, id: BlobId): boolean {
    this.assertOpen();
    return this.writer.claim(type, id);
  }

  unclaimBlob(type: BlobType, id: BlobId): void {
    this.writer.unclaim(type, id);
  }

  /** Store a claimed blob sealed by a saver thread (nonce ‖ ciphertext ‖ tag under this repository's key). */
  storeSealed(type: BlobType, id: BlobId, sealed: Uint8Array, rawLength: number, compressed: boolean): Promise<number> {
    this.assertOpen();
    return this.writer.storeSealed(type, id, sealed, rawLength, compressed);
  }

  /**
   * Read a blob: ranged load from its pack, authenticate, decompress, and verify that its
   * HMAC id is `id`. Damage fails with {@link IntegrityError} naming the blob and the pack.
   */
  async loadBlob(type: BlobType, id: BlobId, opts: LoadBlobOptions = {}): Promise<Buffer> {
    this.assertOpen();
    if (this.writer.isPending(type, id)) await this.flush();
    if (!this.indexLoaded) await (this.indexLoading ?? this.loadIndex());
    if (!this.index.has(type, id) && !this.index.known(type, id)) await this.adoptUnlistedPacks();
    return readBlob(this.index, this.reader, type, id, opts.buffer);
  }

  /**
   * Load several blobs with few storage reads: the blobs are grouped by pack, and blobs of
   * one pack whose stored bytes lie close together (gaps up to `maxGap`) are fetched with one
   * ranged load of at most `maxRead` bytes (a bigger blob is read alone). Each blob is then
   * authenticated, decompressed and checked against its id exactly as {@link loadBlob} does.
   *
   * `onBlob` is called once per distinct id, in pack order (blobs of one read that are decompressed,
   * or decrypted and verified, on the threadpool may come out of turn), with the verified plaintext or
   * with the error for that blob ({@link BlobNotFoundError}, {@link IntegrityError}, or the
   * storage error). Plaintexts may be views of a shared read buffer: keep them only as long as
   * needed. A failed ranged read is retried blob by blob, so one damaged spot fails only the
   * blobs it touches. When `onBlob` returns a promise, the next read waits for it (so a slow
   * consumer holds back the reads, not memory). Resolves when every blob has been handed to
   * `onBlob` and its promises have settled.
   */
  async loadBlobs(
    type: BlobType,
    ids: readonly BlobId[],
    onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void | Promise<void>,
    opts: LoadBlobsOptions = {},
  ): Promise<void> {
    this.assertOpen();
    if (ids.some((id) => this.writer.isPending(type, id))) await this.flush();
    if (!this.indexLoaded) await (this.indexLoading ?? this.loadIndex());
    // (`has` first: it allocates nothing; `known` only for the rare id with no usable copy.)
    if (ids.some((id) => !this.index.has(type, id) && !this.index.known(type, id))) await this.adoptUnlistedPacks();
    await readBlobs(this.index, this.reader, type, ids, onBlob, opts, (id) => this.loadBlob(type, id));
  }

  /** Store a directory listing as a tree blob (canonical JSON, so equal trees dedupe). Returns its id. */
  async saveTree(tree: Tree): Promise<BlobId> {
    this.assertOpen();
    const bytes = Buffer.from(canonicalJson(tree), 'utf8');
    // A tree over the readers' limits would make a snapshot nobody can read: refuse it here.
    if (bytes.byteLength > MAX_TREE_BLOB_SIZE || tree.nodes.length > MAX_TREE_ENTRIES) {
      throw new RangeError(`a directory of ${tree.nodes.length} entries (${bytes.byteLength} bytes of tree) exceeds Kiwi's tree limits (${MAX_TREE_ENTRIES} entries, ${MAX_TREE_BLOB_SIZE} bytes)`);
    }
    return (await this.saveBlob('tree', bytes)).id;
  }

  /** Load and parse a tree blob. */
  async loadTree(id: BlobId): Promise<Tree> {
    const bytes = await this.loadBlob('tree', id);
    return parseTree(bytes, id);
  }

  /**
   * From now on, build new packs in temporary files instead of memory (see
   * {@link RepositoryOptions.spillPacks}): prune and copy call it before they write. Only while
   * nothing is being written. A directory given at open time is kept.
   */
  async spillPacks(): Promise<void> {
    this.assertOpen();
    await this.writer.spillPacks(typeof this.opts.spillPacks === 'string' ? this.opts.spillPacks : undefined);
  }

  /**
   * Finish and upload every open pack, then write index files for all packs not yet
   * indexed. After it resolves, every blob saved so far is stored and indexed.
   */
  async flush(): Promise<void> {
    this.assertOpen();
    await this.writer.flush();
    const replaced = this.writer.replacedBlobs - this.replacedReported;
    if (replaced > 0) {
      this.replacedReported += replaced;
      this.log.warn(`stored ${plural(replaced, 'blob')} again whose earlier stored ${replaced === 1 ? 'copy is' : 'copies are'} missing or damaged`);
    }
  }

  /** zstd + encrypt `body`, save it under its SHA-256. */
  private async saveMetadata(type: 'index' | 'snapshot', body: Uint8Array): Promise<string> {
    const { name, bytes } = await sealMetadataFile(this.keys, body, this.config.compression.level);
    await this.storage.save({ type, name }, bytes);
    if (type === 'index') this.indexLoader.loadedFiles.add(name);
    await this.cache?.putMetadata(type, name, bytes);
    return name;
  }

  // ---------------------------------------------------------------- snapshots

  /** Store a snapshot; returns its id. Call after {@link flush}: everything it references must be stored and indexed. */
  async saveSnapshot(snapshot: Snapshot): Promise<string> {
    this.assertOpen();
    if (this.writer.unstored) {
      throw new Error('saveSnapshot: blobs are not yet stored and indexed; call flush() first');
    }
    // Packs adopted from their headers (see loadIndex) are indexed before a snapshot may use them.
    await this.writer.flush();
    if (!isBlobId(snapshot.tree)) throw new TypeError(`saveSnapshot: invalid root tree id ${JSON.stringify(snapshot.tree)}`);
    if (this.indexLoaded && !this.index.has('tree', snapshot.tree)) {
      throw new Error(`saveSnapshot: root tree ${snapshot.tree} is not in the repository`);
    }
    const body = Buffer.from(JSON.stringify(snapshot), 'utf8');
    // Never a snapshot file that readers refuse (over the size limit, a field out of its bounds): it
    // would not restore, and every listing of the repository would report it as damage.
    try {
      parseSnapshot(body, 'snapshot');
    } catch (err) {
      throw new Error(`refusing to save a snapshot that could not be read back: ${(err as Error).message.replace(/^snapshot: /, '')}`, { cause: err });
    }
    return this.saveMetadata('snapshot', body);
  }

  /** Load one snapshot by its full id. */
  async loadSnapshot(id: string): Promise<Snapshot> {
    return this.loadSnapshotSized(id, undefined);
  }

  /** {@link loadSnapshot} of a file whose size a listing gave (else the storage is asked before it is read). */
  private async loadSnapshotSized(id: string, size: number | undefined): Promise<Snapshot> {
    this.assertOpen();
    return loadSnapshotFile(this.storage, this.keys, this.cache, id, size);
  }

  /**
   * Every snapshot, oldest first. A damaged snapshot file rejects with {@link IntegrityError},
   * unless `onError` is given: then it is reported there and skipped.
   */
  async listSnapshots(opts: { onError?: (file: string, err: Error) => void } = {}): Promise<Array<{ id: string; snapshot: Snapshot }>> {
    this.assertOpen();
    return listSnapshotFiles(this.storage, this.cache, (id, size) => this.loadSnapshotSized(id, size), opts);
  }

  /**
   * Find a snapshot by id prefix or `latest` (the newest one matching `filter`; damaged
   * snapshot files are skipped with a warning). `filter` applies to `latest` only.
   * An unknown or ambiguous reference fails with {@link SnapshotNotFoundError} (listing candidates).
   */
  async findSnapshot(ref: string, filter: SnapshotFilter = {}): Promise<{ id: string; snapshot: Snapshot }> {
    this.assertOpen();
    if (ref === 'latest') {
      return latestSnapshot(ref, filter, () => this.listSnapshots({ onError: (file, err) => this.log.warn(`skipping damaged snapshot ${file}: ${err.message}`) }));
    }
    return snapshotByPrefix(this.storage, ref, (id, size) => this.loadSnapshotSized(id, size));
  }

  // ---------------------------------------------------------------- locks

  /** Take a shared or exclusive lock; {@link LockHeldError} on conflict. Released by `close()`. */
  async lock(kind: LockKind): Promise<RepoLock> {
    this.assertOpen();
    if (kind !== 'shared' && kind !== 'exclusive') throw new TypeError(`invalid lock kind ${JSON.stringify(kind)}`);
    const inner = await acquireLock(this.lockContext(), kind, this.opts.lockOptions);
    const locks = this.locks;
    const handle: RepoLock = {
      kind,
      get name() {
        return inner.name;
      },
      refresh: () => inner.refresh(),
      release: async (opts) => {
        locks.delete(handle);
        await inner.release(opts);
      },
    };
    locks.add(handle);
    return handle;
  }

  /** @internal The lock machinery's view of this repository (tests use it to plant foreign locks). */
  lockContext(): LockContext {
    return {
      storage: this.storage,
      encrypt: (p) => this.keys.encrypt(p),
      decrypt: (d) => this.keys.decrypt(d),
      log: this.log,
      hostname: this.opts.hostname ?? osHostname(),
      username: this.opts.username ?? safeUsername(),
    };
  }

  // ---------------------------------------------------------------- check

  /**
   * Verify the repository; see docs/repository-format.md ("check") for what is guaranteed.
   * Takes a shared lock (backups may run meanwhile; prune may not) unless `noLock`.
   */
  async check(opts: CheckOptions = {}): Promise<CheckReport> {
    this.assertOpen();
    const lock = opts.noLock ? undefined : await this.lock('shared');
    try {
      return await checkRepository(
        {
          storage: this.storage,
          decrypt: (d) => this.keys.decrypt(d),
          blobIdBytes: (d) => this.keys.blobIdBytes(d),
          openBlob: (loc, bytes) => this.reader.open(loc, bytes),
          openMetadata: (bytes, file, name) => openMetadataFile(this.keys, bytes, file, name),
          readPackHeader: (packId, size) => readPackHeader(this.storage, this.keys, packId, size),
        },
        opts,
      );
    } finally {
      await lock?.release();
    }
  }

  /**
   * @internal The engine's parts, for the maintenance operations in `../maintenance` (repair,
   * prune). Not a stable API.
   */
  internals(): RepositoryInternals {
    this.assertOpen();
    return {
      storage: this.storage,
      keys: this.keys,
      config: this.config,
      log: this.log,
      index: this.index,
      reader: this.reader,
      writer: this.writer,
      indexLoader: this.indexLoader,
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Release locks, stop timers, wait for running uploads, and wipe the keys. Blobs saved
   * but not flushed are discarded (the repository stays valid). Does not close the storage.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const errors: unknown[] = [];
    for (const l of [...this.locks]) await l.release().catch((e: unknown) => errors.push(e));
    await this.writer.close();
    // An index read still running (started ahead, e.g. by restore while it looked up the snapshot)
    // must not see its keys wiped under it: it would call every index file it has yet to read damaged.
    await this.indexLoading?.catch(() => undefined);
    this.keys.zero();
    if (errors.length > 0) throw errors[0];
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the repository is closed');
  }
}
