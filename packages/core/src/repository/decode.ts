/**
 * Decoders for the repository's JSON structures: the config here; snapshots and trees in
 * validate.ts (re-exported).
 * Everything here reads untrusted bytes (see docs/security.md) and fails with an
 * {@link IntegrityError} naming the object.
 */
import { IntegrityError } from './errors.js';
import { MAX_CHUNK_SIZE, MAX_PACK_TARGET, MIN_CHUNK_SIZE, MIN_PACK_TARGET } from './limits.js';
import type { RepositoryConfig } from './types.js';

export const REPOSITORY_VERSION = 1;

/**
 * Check a decrypted, parsed `config` file: the version; a 64-hex id; chunk sizes integers with
 * {@link MIN_CHUNK_SIZE} ≤ min ≤ avg ≤ max ≤ {@link MAX_CHUNK_SIZE} and avg a power of two; a
 * seed of 32 bytes of base64; zstd at a level in −7…22; a pack size in
 * {@link MIN_PACK_TARGET}…{@link MAX_PACK_TARGET}.
 */
export function validateConfig(c: unknown): RepositoryConfig {
  const cfg = c as RepositoryConfig;
  const bad = (what: string) => new IntegrityError(`config: ${what}`, { file: 'config' });
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw bad('not a JSON object');
  if (cfg.version !== REPOSITORY_VERSION) throw bad(`unsupported repository version ${String(cfg.version).slice(0, 40)} (this Kiwi reads version ${REPOSITORY_VERSION})`);
  if (typeof cfg.id !== 'string' || !/^[0-9a-f]{64}$/.test(cfg.id)) throw bad('missing or invalid id (expected 64 hex digits)');
  const ch = cfg.chunker;
  const size = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= MIN_CHUNK_SIZE && (n as number) <= MAX_CHUNK_SIZE;
  if (
    typeof ch !== 'object' ||
    ch === null ||
    typeof ch.seed !== 'string' ||
    Buffer.from(ch.seed, 'base64').byteLength !== 32 ||
    ![ch.minSize, ch.avgSize, ch.maxSize].every(size) ||
    !(ch.minSize <= ch.avgSize && ch.avgSize <= ch.maxSize) ||
    (ch.avgSize & (ch.avgSize - 1)) !== 0
  ) {
    throw bad(`invalid chunker parameters (need ${MIN_CHUNK_SIZE} ≤ minSize ≤ avgSize ≤ maxSize ≤ ${MAX_CHUNK_SIZE}, avgSize a power of two, a 32-byte seed)`);
  }
  const level = cfg.compression?.level;
  if (cfg.compression?.algorithm !== 'zstd' || !Number.isInteger(level) || level < -7 || level > 22) throw bad('invalid compression parameters');
  if (!Number.isSafeInteger(cfg.packSize) || cfg.packSize < MIN_PACK_TARGET || cfg.packSize > MAX_PACK_TARGET) {
    throw bad(`invalid packSize (need ${MIN_PACK_TARGET} to ${MAX_PACK_TARGET})`);
  }
  return cfg;
}

export { parseTree, parseSnapshot, validateTree, validateSnapshot, invalidNodes, invalidNodeCount, type InvalidNode } from './validate.js';
