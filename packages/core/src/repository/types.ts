/**
 * The repository engine's public shapes: snapshots, trees and nodes, as stored
 * (JSON, encrypted) in the repository. `docs/repository-format.md` is the
 * normative description; keep the two in step.
 */

/** A blob id: lowercase hex of HMAC-SHA-256(plaintext) under the repository's id key. 64 chars. */
export type BlobId = string;
/** `data` blobs hold file content; `tree` blobs hold a directory listing (a {@link Tree}). */
export type BlobType = 'data' | 'tree';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

/** One entry of a directory, as stored in a tree blob. */
export interface Node {
  /** The entry name, when it is valid UTF-8. */
  name: string;
  /** The raw name bytes, base64, when the name is not valid UTF-8 (then `name` is a lossy display form). */
  nameRaw?: string;
  type: NodeType;
  /** Permission bits and setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  /** Modification time, nanoseconds since the epoch, as a decimal string. */
  mtimeNs: string;
  /** Status-change time, nanoseconds since the epoch (change detection only). */
  ctimeNs: string;
  /** Inode and device (change detection; with `links`, hard links on restore). */
  inode: string;
  dev: string;
  /** Number of names of a file with more than one (hard links); absent otherwise. */
  links?: number;
  /** Bytes of content (files), 0 otherwise. */
  size: number;
  /** Content blob ids in order (files). An empty file has `[]`. */
  content?: BlobId[];
  /** The tree blob of the directory's entries (dirs). */
  subtree?: BlobId;
  /** Symlink target (raw bytes base64 in `linkTargetRaw` when not UTF-8). */
  linkTarget?: string;
  linkTargetRaw?: string;
  /** Device number for chardev/blockdev (recorded, never opened). */
  rdev?: string;
  /**
   * Extended attributes (POSIX ACLs included, as `system.posix_acl_access` and
   * `system.posix_acl_default`), sorted by the raw bytes of their names; absent when none.
   */
  xattrs?: NodeXattr[];
  /**
   * Files: true when the file had holes at backup time (at least 4 KiB fewer
   * bytes allocated than its size). The restore writes its zero blocks as holes.
   */
  sparse?: boolean;
  /** Data attached by plug-ins in `onFile`. */
  metadata?: Record<string, unknown>;
}

/** One extended attribute of a node. */
export interface NodeXattr {
  /** The attribute name (`user.comment`), when it is valid UTF-8 (else a lossy display form). */
  name: string;
  /** The raw name bytes, base64, when the name is not valid UTF-8. */
  nameRaw?: string;
  /** The value, base64 (at most 64 KiB decoded). */
  value: string;
}

/** A directory listing; nodes are sorted by name bytes. */
export interface Tree {
  nodes: Node[];
  /**
   * Set (non-enumerable, so never stored) on a loaded tree with entries that failed validation:
   * they are not in `nodes`; each is described here (at most 1000; `invalidCount` counts all).
   * Readers report them as errors and go on (see repository/validate.ts).
   */
  readonly invalid?: ReadonlyArray<{ index: number; name?: string; reason: string }>;
  readonly invalidCount?: number;
}

export interface SnapshotSummary {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirsNew: number;
  dirsChanged: number;
  dirsUnmodified: number;
  errors: number;
  bytesRead: number;
  totalFiles: number;
  totalBytes: number;
  blobsNew: number;
  dataAdded: number;
  dataAddedPacked: number;
  startTime: string;
  endTime: string;
}

/** A snapshot, stored as `snapshots/<id>`. */
export interface Snapshot {
  /** ISO 8601 time the backup started. */
  time: string;
  hostname: string;
  username: string;
  uid?: number;
  gid?: number;
  /** Absolute source paths, sorted. */
  paths: string[];
  tags: string[];
  /** Root tree: one node per source path, named by its full path with '/' replaced... see format doc. */
  tree: BlobId;
  /** The snapshot this one was compared with for change detection. */
  parent?: string;
  excludes?: string[];
  summary?: SnapshotSummary;
  programVersion: string;
  /** Per-plug-in metadata (`ctx.backup.metadata`). */
  plugins?: Record<string, unknown>;
  /** true when some sources could not be read. */
  partial?: boolean;
  /** For a snapshot rewritten (by `repair snapshots`, `tag`): the id it was first written under. */
  original?: string;
  /** Set by `repair snapshots`: when, from which snapshot, and which paths were left out (listed up to 1000). */
  repaired?: { time: string; from: string; removed: string[]; removedCount: number };
  /**
   * true when extended attributes were read for every entry (then a node without `xattrs` has
   * none); absent when they were not (no native addon, or an older writer). A backup reuses an
   * unchanged file's attributes from its parent snapshot only when the parent has this flag.
   */
  xattrs?: boolean;
}

/** Content-defined chunking parameters as stored in the repository config (seed base64). */
export interface RepositoryChunkerParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
  /** Secret seed of the boundary function: 32 random bytes, base64. */
  seed: string;
}

/** The decrypted `config` file. */
export interface RepositoryConfig {
  /** Format version (1). */
  version: 1;
  /** Repository id: 32 random bytes, lowercase hex. */
  id: string;
  chunker: RepositoryChunkerParams;
  compression: { algorithm: 'zstd'; level: number };
  /** Target pack size in bytes. */
  packSize: number;
}

/** Where a blob is stored: one entry of an index or pack header. */
export interface BlobLocation {
  type: BlobType;
  id: BlobId;
  /** Pack id (SHA-256 of the pack file, hex). */
  pack: string;
  /** Byte offset of the encrypted blob in the pack. */
  offset: number;
  /** Stored (encrypted, maybe compressed) length in bytes. */
  length: number;
  /** Plaintext length in bytes. */
  rawLength: number;
  compressed: boolean;
}

/** Result of {@link Repository.saveBlob}. */
export interface SaveBlobResult {
  id: BlobId;
  /** true when the blob was already stored (or pending) and nothing was added. */
  known: boolean;
  /** Bytes added to the repository for this blob (encrypted size), 0 when known. */
  storedSize: number;
  /** true when the blob was indexed but every stored copy of it is missing or damaged: this is a fresh copy. */
  replaced?: boolean;
}

/** One problem found by `check`, named by its storage path (e.g. `data/ab/ab12…`, `index/…`, `snapshots/…`). */
export interface CheckProblem {
  file: string;
  message: string;
  /** The command that repairs it, when there is one (e.g. `kiwi repair index`). */
  hint?: string;
}

/** Snapshots and files whose data is lost with a damaged or missing pack. */
export interface CheckAffected {
  /** The pack (`data/…`), or `index` for blobs no index lists. */
  file: string;
  snapshots: Array<{ id: string; paths: string[]; /** Affected paths not listed (the list is capped). */ more: number }>;
}

export interface CheckProgress {
  phase: 'keys' | 'index' | 'packs' | 'snapshots' | 'trees' | 'data';
  done: number;
  total: number;
}

/**
 * Which packs `check --read-data-subset` reads: `n/m` the n-th of m deterministic groups (by pack
 * id, so m runs with n = 1…m read every pack once); `x%` a random share of the packs; a size
 * (`500M`, `2G`) random packs up to that many bytes. See `parseReadDataSubset`.
 */
export type ReadDataSubset = { kind: 'group'; n: number; m: number } | { kind: 'percent'; value: number } | { kind: 'bytes'; value: number };

export interface CheckOptions {
  /** Download every pack: verify its name, header, and decrypt + verify every blob. */
  readData?: boolean;
  onProgress?: (progress: CheckProgress) => void;
  /** Read only some packs (implies reading data); see `parseReadDataSubset`. */
  readDataSubset?: ReadDataSubset;
  /** Do not take the shared lock (the caller holds a lock already). */
  noLock?: boolean;
}

export interface CheckReport {
  /** Errors found, in order (at most the first 10,000; `counts.errors` has them all). */
  errors: CheckProblem[];
  /** Warnings (e.g. packs no index lists, which `prune` reclaims), capped likewise. */
  warnings: CheckProblem[];
  counts: { errors: number; warnings: number };
  /** For damaged or missing packs and lost blobs: the snapshots and files that lose data. */
  affected: CheckAffected[];
  stats: {
    keys: number;
    snapshots: number;
    indexFiles: number;
    packs: number;
    blobs: number;
    trees: number;
    /** Bytes of pack data read and verified (readData). */
    bytesVerified: number;
    /** Packs read (readData: all of them; with a subset, the ones it picked). */
    packsRead?: number;
  };
}

/** A listed key file (`listKeys`). */
export interface KeyInfo {
  id: string;
  created: string;
  hostname: string;
  username: string;
  /** true for the key file this repository was opened with. */
  current: boolean;
  /** Why the key file cannot be read (then `created`, `hostname` and `username` are empty): it opens nothing, and may be removed. */
  damaged?: string;
}

/** The decrypted content of a lock file. */
export interface LockInfo {
  /** ISO 8601 time the lock was written (refreshed). */
  time: string;
  hostname: string;
  pid: number;
  username: string;
  exclusive: boolean;
}

export type LockKind = 'shared' | 'exclusive';

/** A held repository lock. Refreshed automatically until released. */
export interface RepoLock {
  readonly kind: LockKind;
  /** The current lock file name (`locks/<name>`); changes on every refresh. */
  readonly name: string;
  /** Rewrite the lock file with the current time (new file first, then remove the old one). */
  refresh(): Promise<void>;
  /** Remove the lock file and stop refreshing. Idempotent. */
  release(options?: ReleaseOptions): Promise<void>;
}

export interface ReleaseOptions {
  /**
   * Storage attempts for removing the lock file (default: the storage's retry policy). After an
   * operation failed because the storage is unreachable, 1 or 2 attempts spare a long backoff for
   * a lock that, if it stays, goes stale and is taken over later anyway.
   */
  attempts?: number;
}

/** Where the repository engine writes log lines (stale lock take-over, etc.). */
export interface RepositoryLogger {
  info(message: string): void;
  warn(message: string): void;
}
