import { createHmac } from 'node:crypto';
import { CHUNKER_SEED_LENGTH } from './params.js';

/** Domain-separation label of the gear-table derivation (part of the repository format). */
export const GEAR_TABLE_LABEL = 'kiwi-chunker-gear-v1';

const cache = new Map<string, Int32Array>();
const CACHE_LIMIT = 8;

/**
 * Derives the 256-entry gear table from a 32-byte secret seed:
 * block `i` (0 ≤ i < 32) = HMAC-SHA-256(key = seed, msg = "kiwi-chunker-gear-v1" ‖ u32be(i));
 * the 32 blocks concatenated (1024 bytes) are read as 256 little-endian uint32 values,
 * stored as int32 (same bits) for fast `| 0` arithmetic. Tables are memoised per seed.
 */
export function deriveGearTable(seed: Uint8Array): Int32Array {
  if (!(seed instanceof Uint8Array) || seed.length !== CHUNKER_SEED_LENGTH) {
    throw new RangeError(`chunker seed must be a ${CHUNKER_SEED_LENGTH}-byte Uint8Array`);
  }
  const key = Buffer.from(seed.buffer, seed.byteOffset, seed.byteLength).toString('hex');
  const hit = cache.get(key);
  if (hit) return hit;
  const bytes = Buffer.alloc(1024);
  const counter = Buffer.alloc(4);
  for (let i = 0; i < 32; i++) {
    counter.writeUInt32BE(i, 0);
    createHmac('sha256', seed).update(GEAR_TABLE_LABEL).update(counter).digest().copy(bytes, i * 32);
  }
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) table[i] = bytes.readInt32LE(i * 4);
  if (cache.size >= CACHE_LIMIT) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(key, table);
  return table;
}
