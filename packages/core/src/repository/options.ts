/**
 * Options for opening and creating a repository ({@link RepositoryOptions}, {@link InitOptions})
 * and the defaults of the parameters `init` fixes.
 */
import type { KdfParams } from '../crypto/keys.js';
import type { LockOptions } from './lock.js';
import type { Repository } from './repository.js';
import type { RepositoryChunkerParams, RepositoryLogger } from './types.js';

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
export const DEFAULT_CHUNKER: Readonly<Omit<RepositoryChunkerParams, 'seed'>> = Object.freeze({
  minSize: 512 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
});

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
