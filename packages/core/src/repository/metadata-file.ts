/**
 * Metadata files (index files, snapshots): zstd-compressed, encrypted, named by the SHA-256
 * of their stored bytes (docs/repository-format.md §1, §7, §8).
 */
import { compress, decompress } from '../compression/zstd.js';
import { sha256Hex, type MasterKeys } from '../crypto/keys.js';
import { IntegrityError } from './errors.js';
import { MAX_SNAPSHOT_SIZE, indexBodyLimit } from './limits.js';
import { assertFileSize } from './whole-file.js';

/**
 * The largest decompressed body a metadata file may have: a snapshot {@link MAX_SNAPSHOT_SIZE};
 * an index file {@link indexBodyLimit} of its stored size. `file` is the storage path
 * (`index/…`, `snapshots/…`).
 */
export function metadataBodyLimit(file: string, storedSize: number): number {
  return file.startsWith('index/') ? indexBodyLimit(storedSize) : MAX_SNAPSHOT_SIZE;
}

/**
 * Verify a metadata file's size and name, then decrypt and decompress it, within `maxBody` bytes
 * (default {@link metadataBodyLimit}). Damage fails with {@link IntegrityError} naming `file`.
 */
export async function openMetadataFile(
  keys: MasterKeys,
  bytes: Buffer,
  file: string,
  name: string,
  maxBody = metadataBodyLimit(file, bytes.byteLength),
): Promise<Buffer> {
  // (Callers check the size before they load the file: see whole-file.ts. This guards bytes from elsewhere.)
  assertFileSize({ type: file.startsWith('index/') ? 'index' : 'snapshot', name }, bytes.byteLength);
  if (sha256Hex(bytes) !== name) {
    throw new IntegrityError(`${file}: content does not match its name (SHA-256 of the ${bytes.byteLength} bytes differs); the file is damaged`, { file });
  }
  let plain: Buffer;
  try {
    plain = keys.decrypt(bytes);
  } catch (err) {
    throw new IntegrityError(`${file}: authentication failed (damaged or foreign file)`, { file, cause: err });
  }
  try {
    return await decompress(plain, { max: maxBody, here: true });
  } catch (err) {
    throw new IntegrityError(`${file}: ${(err as Error).message}`, { file, cause: err });
  }
}

/** Compress and encrypt a metadata body; returns the stored bytes and their name. */
export async function sealMetadataFile(keys: MasterKeys, body: Uint8Array, level: number): Promise<{ name: string; bytes: Buffer }> {
  const bytes = keys.encrypt(await compress(body, level));
  return { name: sha256Hex(bytes), bytes };
}
