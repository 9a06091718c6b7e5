/**
 * Decoders for the repository's JSON structures: the config, snapshots and trees.
 * Everything here reads untrusted bytes (see docs/security.md) and fails with an
 * {@link IntegrityError} naming the object.
 */
import { IntegrityError } from './errors.js';
import type { RepositoryConfig, Snapshot, Tree } from './types.js';

export const REPOSITORY_VERSION = 1;

/** Check a decrypted, parsed `config` file. */
export function validateConfig(c: unknown): RepositoryConfig {
  const cfg = c as RepositoryConfig;
  const bad = (what: string) => new IntegrityError(`config: ${what}`, { file: 'config' });
  if (typeof cfg !== 'object' || cfg === null) throw bad('not a JSON object');
  if (cfg.version !== REPOSITORY_VERSION) throw bad(`unsupported repository version ${String(cfg.version)} (this Kiwi reads version ${REPOSITORY_VERSION})`);
  if (typeof cfg.id !== 'string') throw bad('missing id');
  const ch = cfg.chunker;
  if (!ch || typeof ch.seed !== 'string' || ![ch.minSize, ch.avgSize, ch.maxSize].every((n) => Number.isInteger(n) && n > 0)) {
    throw bad('invalid chunker parameters');
  }
  if (cfg.compression?.algorithm !== 'zstd' || !Number.isInteger(cfg.compression.level)) throw bad('invalid compression parameters');
  if (!Number.isInteger(cfg.packSize) || cfg.packSize < 1024) throw bad('invalid packSize');
  return cfg;
}

/** Parse a tree blob's plaintext; throws {@link IntegrityError} when it is not a tree. */
export function parseTree(bytes: Uint8Array, id: string): Tree {
  let t: Tree;
  try {
    t = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as Tree;
  } catch (err) {
    throw new IntegrityError(`tree blob ${id} is not valid JSON`, { blobId: id, cause: err });
  }
  if (typeof t !== 'object' || t === null || !Array.isArray(t.nodes)) throw new IntegrityError(`tree blob ${id} has no nodes array`, { blobId: id });
  return t;
}

/** Parse a snapshot file's decrypted, decompressed body. */
export function parseSnapshot(body: Buffer, file: string): Snapshot {
  let s: Snapshot;
  try {
    s = JSON.parse(body.toString('utf8')) as Snapshot;
  } catch (err) {
    throw new IntegrityError(`${file}: not valid JSON`, { file, cause: err });
  }
  if (typeof s !== 'object' || s === null || typeof s.time !== 'string' || typeof s.tree !== 'string' || !Array.isArray(s.paths)) {
    throw new IntegrityError(`${file}: not a snapshot (missing time, tree or paths)`, { file });
  }
  return s;
}
