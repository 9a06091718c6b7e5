export * from './storage/types.js';
export * from './storage/errors.js';
export * from './middleware/compose.js';
export * from './plugins/types.js';
export * from './chunker/index.js';
export * from './walker/index.js';
export * from './datadir.js';
export { compareText, compareTimes } from './time-order.js';
export { fixMallocThresholds } from './native/malloc.js';
export { RepositoryCache, MAX_CACHED_PACK } from './cache/repository-cache.js';
export * from './config/index.js';
export * from './log/index.js';
export * from './plugins/index.js';
export * from './storage/retry.js';
export * from './storage/registry.js';
export { maskUrlPassword } from './storage/mask-url.js';
export * from './backup/index.js';
export * from './restore/index.js';
export * from './snapshot-ops/index.js';
export * from './maintenance/index.js';
export { parseReadDataSubset, selectPacks } from './repository/check-data.js';
export * from './retention/index.js';
export * from './stats/snapshot-stats.js';
export * from './repository/types.js';
export * from './repository/errors.js';
export * from './repository/repository.js';
export * from './repository/canonical.js';
export { BlobIndex } from './repository/index-table.js';
export {
  LOCK_REFRESH_MS,
  LOCK_STALE_MS,
  DEFAULT_RETRY_DELAY_MS,
  MAX_RETRY_DELAY_MS,
  readLockFile,
  writeLockFile,
  staleReason,
  listLocks,
  removeLocks,
  parseLockWait,
} from './repository/lock.js';
export type { LockOptions, LockContext, LockWait, LockEntry, UnlockResult } from './repository/lock.js';
export {
  AuthenticationError,
  NONCE_SIZE,
  TAG_SIZE,
  OVERHEAD as AEAD_OVERHEAD,
  encrypt as aeadEncrypt,
  encryptInto as aeadEncryptInto,
  decrypt as aeadDecrypt,
} from './crypto/aead.js';
export { DEFAULT_KDF, KEY_FILE_VERSION, MasterKeys, createKeyFile, openKeyFile, parseKeyFile } from './crypto/keys.js';
export type { KdfParams, KeyFile, CreateKeyFileOptions } from './crypto/keys.js';
export {
  DEFAULT_COMPRESSION_LEVEL,
  compressIfSmaller,
  compress as zstdCompress,
  decompress as zstdDecompress,
} from './compression/zstd.js';
export { makeDirectory, makeDirectorySync, type MakeDirectoryOptions } from './fsutil/make-directory.js';
export { fileKind, MAX_EXCLUDE_FILE, readSmallFile, SmallFileError, type SmallFileOptions } from './fsutil/small-file.js';
export { exitProcessNow } from './native/native-fs.js';
