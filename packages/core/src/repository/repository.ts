/**
 * The repository engine: keys, config, blobs in packs, the index, trees, snapshots,
 * locks and check. `docs/repository-format.md` describes every byte it writes.
 */
import { randomBytes } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { AuthenticationError } from '../crypto/aead.js';
import {
  DEFAULT_KDF,
  MasterKeys,
  createKeyFile,
  openKeyFile,
  parseKeyFile,
  safeUsername,
  type KdfParams,
} from '../crypto/keys.js';
import { clearPrederived } from '../crypto/prederived.js';
import { DEFAULT_COMPRESSION_LEVEL } from '../compression/zstd.js';
import type { Storage, Handle } from '../storage/types.js';
import { handlePath } from '../storage/types.js';
import { RepositoryCache } from '../cache/repository-cache.js';
import { canonicalJson } from './canonical.js';
import { packTrailerSize } from './pack-format.js';
import { checkRepository } from './check.js';
import { BlobReader, mapLimit, type LoadBlobsOptions } from './blob-reader.js';
import { BlobWriter } from './blob-writer.js';
import { REPOSITORY_VERSION, parseSnapshot, parseTree, validateConfig } from './decode.js';
import {
  BlobNotFoundError,
  IntegrityError,
  RepositoryExistsError,
  RepositoryNotFoundError,
  SnapshotNotFoundError,
  WrongPasswordError,
} from './errors.js';
import { BlobIndex, isBlobId } from './index-table.js';
import { IndexLoader, type IndexLoadOptions, type IndexLoadResult } from './index-loader.js';
import { MAX_CONFIG_FILE_SIZE, MAX_TREE_BLOB_SIZE, MAX_TREE_ENTRIES } from './limits.js';
import { acquireLock, type LockContext, type LockOptions } from './lock.js';
import { openMetadataFile, sealMetadataFile } from './metadata-file.js';
import type {
  BlobId,
  BlobLocation,
  BlobType,
  RepositoryChunkerParams,
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

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_CHUNKER: Readonly<Omit<RepositoryChunkerParams, 'seed'>> = Object.freeze({
  minSize: 512 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
});
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

/** Options for opening (and creating) a repository. */
export interface RepositoryOptions {
  /** Where stale-lock take-overs and similar events are logged (default: stderr). */
  logger?: RepositoryLogger;
  /** Packs uploading in parallel (default 2). */
  uploadConcurrency?: number;
  /** Write an index file after this many new packs during a long write (default 50)... */
  indexEvery?: number;
  /** ...or after this many new blobs, whichever comes first (default 50,000: packs of small files hold thousands). */
  indexBlobs?: number;
  /**
   * Build new packs in temporary files instead of memory (as restic does): `true` for the system's
   * temporary directory, or a directory. Slower, but a pack costs ~1 MiB of memory instead of its
   * size; maintenance (prune, copy) uses it.
   */
  spillPacks?: boolean | string;
  /** scrypt parameters for key files created by `init`/`addKey` (default N=2^15, r=8, p=1). */
  kdf?: KdfParams;
  /** Host and user names recorded in key and lock files (default: the OS values). */
  hostname?: string;
  username?: string;
  /** Lock timings (tests shorten them). */
  lockOptions?: LockOptions;
  /**
   * Keep a local metadata cache (index files, snapshots, tree packs) under
   * `<cacheDir>/<repository id>`; see `cache/repository-cache.ts`. Meant for remote repositories.
   */
  cacheDir?: string;
}

/** Options for `init`: the repository's fixed parameters plus {@link RepositoryOptions}. */
export interface InitOptions extends RepositoryOptions {
  /** Target pack size in bytes (default 16 MiB). */
  packSize?: number;
  /** zstd level (default 3). */
  compressionLevel?: number;
  /** Chunk size bounds (default 512 KiB / 1 MiB / 8 MiB). The seed is always random. */
  chunker?: Partial<Omit<RepositoryChunkerParams, 'seed'>>;
  /**
   * Take the chunker parameters (bounds and seed) and the blob id key of this repository
   * (`init --copy-chunker-params`): the same data then gives the same chunks and blob ids in
   * both, so `copy` deduplicates without reading what the new repository already has. The
   * encryption key stays the new repository's own.
   */
  sameChunkerAs?: Repository;
}

export interface LoadBlobOptions {
  /** Reuse this buffer for the plaintext when it is large enough (the result is then a view of it). */
  buffer?: Uint8Array;
}

export interface SnapshotFilter {
  host?: string;
  /** Match snapshots whose `paths` are exactly these (order-insensitive). */
  paths?: string[];
  /** Match snapshots that have every one of these tags (for `--host`/`--tag`/`--path` selection see `selectSnapshot`). */
  tags?: string[];
}

const defaultLogger: RepositoryLogger = {
  info: (m) => process.stderr.write(`kiwi: ${m}\n`),
  warn: (m) => process.stderr.write(`kiwi: warning: ${m}\n`),
};

const CONFIG_HANDLE: Handle = { type: 'config', name: 'config' };

async function listNames(storage: Storage, type: 'key' | 'snapshot' | 'index' | 'lock' | 'data'): Promise<string[]> {
  const names: string[] = [];
  for await (const f of storage.list(type)) names.push(f.name);
  return names;
}

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
    this.reader = new BlobReader(storage, keys, (loc, scope) => this.markDamaged(loc, scope), {
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
    await storage.create();
    try {
      await storage.stat(CONFIG_HANDLE);
      throw new RepositoryExistsError(storage.location);
    } catch (err) {
      if (!storage.isNotFound(err)) throw err;
    }
    const from = opts.sameChunkerAs;
    const chunker = from ? { minSize: from.config.chunker.minSize, avgSize: from.config.chunker.avgSize, maxSize: from.config.chunker.maxSize } : { ...DEFAULT_CHUNKER, ...opts.chunker };
    if (!(chunker.minSize > 0 && chunker.minSize <= chunker.avgSize && chunker.avgSize <= chunker.maxSize)) {
      throw new RangeError(`invalid chunker sizes: need 0 < minSize <= avgSize <= maxSize (got ${chunker.minSize}/${chunker.avgSize}/${chunker.maxSize})`);
    }
    const packSize = opts.packSize ?? DEFAULT_PACK_SIZE;
    if (!Number.isInteger(packSize) || packSize < 1024 || packSize > 1024 * 1024 * 1024) throw new RangeError(`invalid packSize ${packSize}`);
    const config: RepositoryConfig = {
      version: REPOSITORY_VERSION,
      id: randomBytes(32).toString('hex'),
      chunker: { ...chunker, seed: from ? from.config.chunker.seed : randomBytes(32).toString('base64') },
      compression: { algorithm: 'zstd', level: opts.compressionLevel ?? DEFAULT_COMPRESSION_LEVEL },
      packSize,
    };
    validateConfig(config);
    const generated = MasterKeys.generate();
    const keys = from ? new MasterKeys(generated.encKey, Buffer.from(from.keys.idKey)) : generated;
    if (from) generated.idKey.fill(0);
    const key = await createKeyFile(keys, password, keyFileOptions(opts));
    await storage.save({ type: 'key', name: key.id }, key.bytes);
    // The config is written last: its presence means "a complete repository".
    await storage.save(CONFIG_HANDLE, keys.encrypt(Buffer.from(JSON.stringify(config), 'utf8')));
    const repo = new Repository(storage, config, keys, key.id, opts);
    repo.indexLoaded = true; // a new repository has an empty index
    return repo;
  }

  /**
   * Open an existing repository: {@link RepositoryNotFoundError} when there is no `config`,
   * {@link WrongPasswordError} when the password opens no key file. Call {@link loadIndex} before
   * deduplicating against existing data.
   */
  static async open(storage: Storage, password: string | Uint8Array, opts: RepositoryOptions = {}): Promise<Repository> {
    // The config and the key listing are read at once (one round trip less on remote storage);
    // a missing config still decides the error.
    const namesRead = listNames(storage, 'key');
    namesRead.catch(() => undefined); // awaited below, unless the config fails first
    let configBytes: Buffer;
    try {
      configBytes = await storage.load(CONFIG_HANDLE);
    } catch (err) {
      if (storage.isNotFound(err)) throw new RepositoryNotFoundError(storage.location, { cause: err });
      throw err;
    }
    const log = opts.logger ?? defaultLogger;
    const names = await namesRead;
    if (names.length === 0) throw new IntegrityError(`repository at ${storage.location} has a config but no key files (keys/)`, { file: 'keys/' });
    let keys: MasterKeys | null = null;
    let keyId = '';
    let kdf: Repository['openedKdf'];
    let tried = 0;
    try {
      for (const name of names) {
        let file;
        try {
          file = parseKeyFile(await storage.load({ type: 'key', name }), `keys/${name}`);
        } catch (err) {
          if (storage.isNotFound(err)) continue;
          log.warn(`skipping unreadable key file: ${(err as Error).message}`);
          continue;
        }
        tried++;
        keys = await openKeyFile(file, password);
        if (keys) {
          keyId = name;
          kdf = { salt: file.salt, N: file.N, r: file.r, p: file.p };
          break;
        }
      }
    } finally {
      clearPrederived();
    }
    if (!keys && tried === 0) {
      throw new IntegrityError(`repository at ${storage.location}: ${names.length === 1 ? 'its key file is not readable' : `none of its ${names.length} key files is readable`}`, { file: 'keys/' });
    }
    if (!keys) throw new WrongPasswordError(storage.location, tried);
    let config: RepositoryConfig;
    try {
      if (configBytes.byteLength > MAX_CONFIG_FILE_SIZE) throw new IntegrityError(`config: ${configBytes.byteLength} bytes, more than a config may have`, { file: 'config' });
      const plain = keys.decrypt(configBytes);
      config = validateConfig(JSON.parse(plain.toString('utf8')));
      plain.fill(0);
    } catch (err) {
      keys.zero();
      if (err instanceof IntegrityError) throw err;
      const why = err instanceof AuthenticationError ? 'authentication failed (damaged, or not this repository\'s config)' : (err as Error).message;
      throw new IntegrityError(`config: ${why}`, { file: 'config', cause: err });
    }
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
    const key = await createKeyFile(this.keys, password, keyFileOptions({ ...this.opts, ...opts }));
    await this.storage.save({ type: 'key', name: key.id }, key.bytes);
    return key.id;
  }

  /** The repository's key files. */
  async listKeys(): Promise<KeyInfo[]> {
    const names = await listNames(this.storage, 'key');
    const out: KeyInfo[] = [];
    for (const name of names) {
      try {
        const f = parseKeyFile(await this.storage.load({ type: 'key', name }), `keys/${name}`);
        out.push({ id: name, created: f.created, hostname: f.hostname, username: f.username, current: name === this.keyId });
      } catch (err) {
        if (!this.storage.isNotFound(err)) throw err;
      }
    }
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  /** Remove a key file. Refuses to remove the last one. `id` may be a unique prefix. */
  async removeKey(id: string): Promise<void> {
    const names = await listNames(this.storage, 'key');
    const matches = names.filter((n) => n.startsWith(id));
    if (matches.length === 0) throw new Error(`no key file keys/${id}* in ${this.storage.location}`);
    if (matches.length > 1) throw new Error(`key id prefix ${id} is ambiguous: ${matches.join(', ')}`);
    if (names.length <= 1) throw new Error(`refusing to remove keys/${matches[0]}: it is the repository's only key`);
    await this.storage.remove({ type: 'key', name: matches[0]! });
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
    for (const d of r.damagedFiles) {
      this.log.warn(`${d.file} is damaged and was skipped (${d.message}); the packs it lists are read from their own headers. Run \`kiwi repair index\` to replace it.`);
    }
    if (r.missingPacks.length > 0) {
      this.log.warn(
        `${plural(r.missingPacks.length, 'pack')} named in the index ${r.missingPacks.length === 1 ? 'is' : 'are'} missing (${listSome(r.missingPacks.map((p) => handlePath({ type: 'data', name: p })))}): ` +
          'their blobs are not used; a backup stores them again when it meets them. Run `kiwi check` to see which snapshots are affected.',
      );
    }
    for (const w of r.wrongSizePacks) {
      this.log.warn(`${handlePath({ type: 'data', name: w.pack })} is ${w.size} bytes but its index entries imply ${w.expected}: the pack is damaged and its blobs are not used. Run \`kiwi check\`.`);
    }
    for (const u of r.unreadablePacks) this.log.warn(`${u.file} is listed by no index file and its header cannot be read: ${u.message}`);
    if (r.adoptedPacks.length > 0) {
      this.log.info(
        `found ${plural(r.adoptedPacks.length, 'pack')} that no readable index file lists (left by an interrupted backup, or listed only in a damaged index file); read ${r.adoptedPacks.length === 1 ? 'its header' : 'their headers'}, so ${r.adoptedPacks.length === 1 ? 'its' : 'their'} blobs are used again`,
      );
      this.writer.adopt(r.adoptedPacks);
    }
    return r;
  }

  /** Mark a location found damaged: its blob (or, for a missing or truncated pack, every blob of its pack) is not used again. */
  private markDamaged(loc: BlobLocation, scope: 'pack' | 'blob'): void {
    const no = this.index.findPack(loc.pack);
    if (no < 0) return;
    if (scope === 'pack') {
      this.index.markPackBad(no);
      return;
    }
    for (const e of this.index.findAll(loc.type, loc.id)) {
      if (this.index.entryPack(e) === no) this.index.markDamaged(e);
    }
  }

  /** Numbers about the in-memory index. */
  indexStats(): { blobs: number; packs: number; bytes: number; loaded: boolean } {
    return { blobs: this.index.size, packs: this.index.packCount, bytes: this.index.byteSize(), loaded: this.indexLoaded };
  }

  /** Write-side numbers: packs uploading or queued, pack buffer memory, packs not yet in an index file. */
  writeStats(): { packsInFlight: number; bufferBytes: number; unindexedPacks: number; pendingBlobs: number } {
    return this.writer.stats();
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
    let loc = this.index.lookup(type, id);
    if (!loc) throw this.notFound(type, id);
    // A copy that fails to verify is marked damaged (by the reader's onDamage), and the next copy is tried.
    for (;;) {
      try {
        return await this.reader.readAt(loc, opts.buffer);
      } catch (err) {
        const next = (err as Error).name === 'IntegrityError' ? this.index.lookup(type, id) : undefined;
        if (!next || (next.pack === loc.pack && next.offset === loc.offset)) throw err;
        loc = next;
      }
    }
  }

  /** The error for a blob with no usable copy: not indexed at all, or every copy is missing or damaged. */
  private notFound(type: BlobType, id: BlobId): Error {
    const copies = this.index.findAll(type, id);
    if (copies.length === 0) return new BlobNotFoundError(type, id);
    const packs = [...new Set(copies.map((e) => handlePath({ type: 'data', name: this.index.get(e).pack })))];
    return new IntegrityError(`${type} blob ${id}: every stored copy is missing or damaged (${packs.join(', ')})`, { blobId: id, file: packs[0]! });
  }

  /**
   * Load several blobs with few storage reads: the blobs are grouped by pack, and blobs of
   * one pack whose stored bytes lie close together (gaps up to `maxGap`) are fetched with one
   * ranged load of at most `maxRead` bytes (a bigger blob is read alone). Each blob is then
   * authenticated, decompressed and checked against its id exactly as {@link loadBlob} does.
   *
   * `onBlob` is called once per distinct id, in pack order, with the verified plaintext or
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
    const locs: BlobLocation[] = [];
    const seen = new Set<BlobId>();
    for (const id of ids) {
      if (seen.has(id)) continue;
      seen.add(id);
      const loc = this.index.lookup(type, id);
      if (loc) locs.push(loc);
      else await onBlob(id, undefined, this.notFound(type, id));
    }
    // A blob whose copy fails to verify is read again from its next usable copy, if there is one.
    await this.reader.readMany(
      locs,
      async (id, data, error) => {
        if (error?.name === 'IntegrityError' && this.index.has(type, id)) {
          try {
            data = await this.loadBlob(type, id);
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

  /** Store a directory listing as a tree blob (canonical JSON, so equal trees dedupe). Returns its id. */
  async saveTree(tree: Tree): Promise<BlobId> {
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
    return this.saveMetadata('snapshot', Buffer.from(JSON.stringify(snapshot), 'utf8'));
  }

  /** Load one snapshot by its full id. */
  async loadSnapshot(id: string): Promise<Snapshot> {
    this.assertOpen();
    const file = `snapshots/${id}`;
    const cached = await this.cache?.getMetadata('snapshot', id);
    let bytes: Buffer;
    try {
      bytes = cached ?? (await this.storage.load({ type: 'snapshot', name: id }));
    } catch (err) {
      if (this.storage.isNotFound(err)) throw new SnapshotNotFoundError(id);
      throw err;
    }
    const body = await openMetadataFile(this.keys, bytes, file, id);
    const snapshot = parseSnapshot(body, file);
    if (this.cache && !cached) await this.cache.putMetadata('snapshot', id, bytes);
    return snapshot;
  }

  /**
   * Every snapshot, oldest first. A damaged snapshot file rejects with {@link IntegrityError},
   * unless `onError` is given: then it is reported there and skipped.
   */
  async listSnapshots(opts: { onError?: (file: string, err: Error) => void } = {}): Promise<Array<{ id: string; snapshot: Snapshot }>> {
    this.assertOpen();
    const names = await listNames(this.storage, 'snapshot');
    await this.cache?.clean('snapshot', new Set(names));
    const loaded = await mapLimit(names, 8, async (id) => {
      try {
        return { id, snapshot: await this.loadSnapshot(id) };
      } catch (err) {
        if (!opts.onError || err instanceof SnapshotNotFoundError) {
          if (err instanceof SnapshotNotFoundError) return undefined; // removed meanwhile
          throw err;
        }
        opts.onError(`snapshots/${id}`, err as Error);
        return undefined;
      }
    });
    const out = loaded.filter((x): x is { id: string; snapshot: Snapshot } => x !== undefined);
    return out.sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time) || a.id.localeCompare(b.id));
  }

  /**
   * Find a snapshot by id prefix or `latest` (the newest one matching `filter`; damaged
   * snapshot files are skipped with a warning). `filter` applies to `latest` only.
   * An unknown or ambiguous reference fails with {@link SnapshotNotFoundError} (listing candidates).
   */
  async findSnapshot(ref: string, filter: SnapshotFilter = {}): Promise<{ id: string; snapshot: Snapshot }> {
    this.assertOpen();
    if (ref === 'latest') {
      const want = filter.paths ? [...filter.paths].sort() : undefined;
      const all = (await this.listSnapshots({ onError: (file, err) => this.log.warn(`skipping damaged snapshot ${file}: ${err.message}`) })).filter(
        ({ snapshot: s }) =>
          (filter.host === undefined || s.hostname === filter.host) &&
          (filter.tags === undefined || filter.tags.every((t) => s.tags.includes(t))) &&
          (want === undefined || (s.paths.length === want.length && [...s.paths].sort().every((p, i) => p === want[i]))),
      );
      const last = all[all.length - 1];
      if (!last) {
        const parts = [filter.host !== undefined ? `host ${filter.host}` : '', filter.tags?.length ? `tags ${filter.tags.join(',')}` : '', want ? `paths ${want.join(', ')}` : ''].filter(Boolean);
        throw new SnapshotNotFoundError(ref, [], parts.length ? `(for ${parts.join(' and ')})` : '(the repository has no snapshots)');
      }
      return last;
    }
    const prefix = ref.toLowerCase();
    if (!/^[0-9a-f]+$/.test(prefix)) throw new SnapshotNotFoundError(ref, [], '(expected a hex id prefix or "latest")');
    const matches = (await listNames(this.storage, 'snapshot')).filter((n) => n.startsWith(prefix)).sort();
    if (matches.length === 0) throw new SnapshotNotFoundError(ref);
    if (matches.length > 1) throw new SnapshotNotFoundError(ref, matches);
    return { id: matches[0]!, snapshot: await this.loadSnapshot(matches[0]!) };
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

function keyFileOptions(opts: RepositoryOptions) {
  return {
    kdf: opts.kdf ?? DEFAULT_KDF,
    ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
    ...(opts.username !== undefined ? { username: opts.username } : {}),
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The first few items of a list, and how many more. */
function listSome(items: string[], max = 3): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}
