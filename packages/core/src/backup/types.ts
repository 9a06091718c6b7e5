import type { BackupStats, BackupStatus, Logger } from '../plugins/types.js';
import type { BlobId, BlobType, Node, Snapshot, Tree } from '../repository/types.js';

/**
 * What the backup, restore and snapshot operations need from a repository.
 * `Repository` (src/repository) satisfies it; tests may pass a stand-in.
 */
export interface EngineRepository {
  readonly config: { readonly chunker: { minSize: number; avgSize: number; maxSize: number; seed: Uint8Array | string } };
  /** Printable location (no credentials). */
  readonly location?: string;
  blobId(data: Uint8Array): BlobId;
  hasBlob(type: BlobType, id: BlobId): boolean;
  saveBlob(type: BlobType, data: Uint8Array, id?: BlobId): Promise<{ id: BlobId; known: boolean; storedSize: number }>;
  saveTree(tree: Tree): Promise<BlobId>;
  loadTree(id: BlobId): Promise<Tree>;
  loadBlob(type: BlobType, id: BlobId): Promise<Buffer>;
  /** Batch load (see `Repository.loadBlobs`); with `lookupBlob`, the restore reads file content pack by pack through it. */
  loadBlobs?(
    type: BlobType,
    ids: readonly BlobId[],
    onBlob: (id: BlobId, data: Buffer | undefined, error?: Error) => void | Promise<void>,
    opts?: { maxGap?: number; maxRead?: number; concurrency?: number; transient?: boolean },
  ): Promise<void>;
  /** Where a blob is stored (see `Repository.lookupBlob`): the restore groups reads by pack. */
  lookupBlob?(type: BlobType, id: BlobId): { pack: string; offset: number; length: number; rawLength: number } | undefined;
  /** Read the headers of the packs no index file lists, once (a lost index file): see `Repository.adoptUnlistedPacks`. */
  adoptUnlistedPacks?(): Promise<void>;
  flush(): Promise<void>;
  saveSnapshot(snapshot: Snapshot): Promise<string>;
  loadSnapshot(id: string): Promise<Snapshot>;
  lock(kind: 'shared' | 'exclusive'): Promise<{ release(options?: { attempts?: number }): Promise<void> | void }>;
  /** Reads index files not read yet (the backup calls it after locking; restore when the index is not loaded). */
  loadIndex?(opts?: { verifyPacks?: boolean }): Promise<unknown>;
  indexStats?(): { loaded: boolean };
}

/** One entry that could not be backed up or restored, and why. */
export interface EntryError {
  path: string;
  message: string;
}

/** What is under way when progress is reported. */
export interface LiveProgress {
  /** Files being read right now (up to the backup's concurrency). */
  filesInProgress: readonly string[];
  /** Bytes read so far of those files (not yet in `stats.totalBytes`, which counts finished files). */
  bytesInProgress: number;
}

/**
 * Progress callback: called at most every ~100 ms with live counters, the path the walk is at,
 * and what is being read right now.
 */
export type ProgressFn = (stats: Readonly<BackupStats>, currentPath: string, live: LiveProgress) => void;

export type { Node, Snapshot, Tree, BlobId, Logger, BackupStats, BackupStatus };
