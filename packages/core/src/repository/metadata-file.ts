/**
 * Metadata files (index files, snapshots): zstd-compressed, encrypted, named by the SHA-256
 * of their stored bytes (docs/repository-format.md §1, §7, §8).
 */
import { compress, decompress } from '../compression/zstd.js';
import { sha256Hex, type MasterKeys } from '../crypto/keys.js';
import { IntegrityError } from './errors.js';

/** Verify a metadata file's name, then decrypt and decompress it. Damage fails with {@link IntegrityError} naming `file`. */
export async function openMetadataFile(keys: MasterKeys, bytes: Buffer, file: string, name: string): Promise<Buffer> {
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
    return await decompress(plain);
  } catch (err) {
    throw new IntegrityError(`${file}: ${(err as Error).message}`, { file, cause: err });
  }
}

/** Compress and encrypt a metadata body; returns the stored bytes and their name. */
export async function sealMetadataFile(keys: MasterKeys, body: Uint8Array, level: number): Promise<{ name: string; bytes: Buffer }> {
  const bytes = keys.encrypt(await compress(body, level));
  return { name: sha256Hex(bytes), bytes };
}
