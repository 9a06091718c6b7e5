/**
 * Byte layouts of pack headers and index files (see docs/repository-format.md).
 *
 * Entry (45 bytes, shared by pack headers and index files):
 *   u8 flags (bit 0: tree blob, bit 1: compressed) ‖ id (32) ‖ u32le offset ‖ u32le length ‖ u32le rawLength
 *
 * Pack file: blob_0 ‖ … ‖ blob_n-1 ‖ AEAD(header) ‖ u32le len(AEAD(header))
 *   header = u8 version (1) ‖ entry × n
 *
 * Index file: AEAD(zstd(body)), body =
 *   "KIDX" ‖ u8 version (1) ‖ 3 zero bytes ‖ u32le supersedeCount ‖ u32le packCount
 *   ‖ supersedes: 32-byte index file ids × supersedeCount
 *   ‖ per pack: pack id (32) ‖ u32le blobCount ‖ entry × blobCount
 */
import { FLAG_COMPRESSED, FLAG_TREE, ID_SIZE } from './index-table.js';
import { OVERHEAD } from '../crypto/aead.js';
import type { BlobLocation, BlobType } from './types.js';

export const ENTRY_SIZE = 45;
export const PACK_HEADER_VERSION = 1;
export const INDEX_MAGIC = 'KIDX';
export const INDEX_VERSION = 1;
const INDEX_PREAMBLE = 16;

/** One blob of a pack, without the pack id. */
export interface PackEntry {
  flags: number;
  /** 32 raw id bytes. */
  id: Uint8Array;
  offset: number;
  length: number;
  rawLength: number;
}

export function writeEntry(out: Uint8Array, pos: number, e: PackEntry): number {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[pos] = e.flags;
  out.set(e.id.subarray(0, ID_SIZE), pos + 1);
  dv.setUint32(pos + 33, e.offset, true);
  dv.setUint32(pos + 37, e.length, true);
  dv.setUint32(pos + 41, e.rawLength, true);
  return pos + ENTRY_SIZE;
}

export function entryType(flags: number): BlobType {
  return flags & FLAG_TREE ? 'tree' : 'data';
}

export function entryToLocation(e: PackEntry, pack: string): BlobLocation {
  return {
    type: entryType(e.flags),
    id: Buffer.from(e.id.buffer, e.id.byteOffset, ID_SIZE).toString('hex'),
    pack,
    offset: e.offset,
    length: e.length,
    rawLength: e.rawLength,
    compressed: (e.flags & FLAG_COMPRESSED) !== 0,
  };
}

/** Bytes the encrypted header and trailer of a pack with `n` blobs take. */
export function packTrailerSize(n: number): number {
  return 1 + n * ENTRY_SIZE + OVERHEAD + 4;
}

/** Plaintext pack header for `entries`. */
export function encodePackHeader(entries: readonly PackEntry[]): Buffer {
  const out = Buffer.allocUnsafe(1 + entries.length * ENTRY_SIZE);
  out[0] = PACK_HEADER_VERSION;
  let pos = 1;
  for (const e of entries) pos = writeEntry(out, pos, e);
  return out;
}

/** Parse a decrypted pack header; throws a descriptive Error when malformed. */
export function decodePackHeader(plain: Uint8Array): PackEntry[] {
  if (plain.byteLength < 1 || plain[0] !== PACK_HEADER_VERSION) throw new Error(`unsupported pack header version ${plain[0]}`);
  if ((plain.byteLength - 1) % ENTRY_SIZE !== 0) throw new Error(`pack header length ${plain.byteLength} is not 1 + n × ${ENTRY_SIZE}`);
  const n = (plain.byteLength - 1) / ENTRY_SIZE;
  const out: PackEntry[] = [];
  const dv = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  for (let i = 0, p = 1; i < n; i++, p += ENTRY_SIZE) {
    out.push({
      flags: plain[p]!,
      id: plain.subarray(p + 1, p + 1 + ID_SIZE),
      offset: dv.getUint32(p + 33, true),
      length: dv.getUint32(p + 37, true),
      rawLength: dv.getUint32(p + 41, true),
    });
  }
  return out;
}

/** A pack and its blobs, as listed in an index file. */
export interface IndexedPack {
  /** Pack id, hex. */
  id: string;
  entries: PackEntry[];
}

/** Encode the plaintext body of an index file (before compression and encryption). */
export function encodeIndexBody(packs: readonly IndexedPack[], supersedes: readonly string[] = []): Buffer {
  let size = INDEX_PREAMBLE + supersedes.length * ID_SIZE;
  for (const p of packs) size += ID_SIZE + 4 + p.entries.length * ENTRY_SIZE;
  const out = Buffer.alloc(size);
  out.write(INDEX_MAGIC, 0, 'latin1');
  out[4] = INDEX_VERSION;
  out.writeUInt32LE(supersedes.length, 8);
  out.writeUInt32LE(packs.length, 12);
  let pos = INDEX_PREAMBLE;
  for (const s of supersedes) pos += out.write(s, pos, ID_SIZE, 'hex');
  for (const p of packs) {
    pos += out.write(p.id, pos, ID_SIZE, 'hex');
    pos = out.writeUInt32LE(p.entries.length, pos);
    for (const e of p.entries) pos = writeEntry(out, pos, e);
  }
  if (pos !== size) throw new Error('index encoding size mismatch');
  return out;
}

/**
 * Walk an index body without allocating per-blob objects: `onPack` gets each pack id and
 * blob count, `onEntry` gets each entry's raw fields (the id as `body[idOff..idOff+32]`).
 */
export function scanIndexBody(
  body: Buffer,
  onPack: (packId: string, blobCount: number) => void,
  onEntry: (flags: number, body: Buffer, idOff: number, offset: number, length: number, rawLength: number) => void,
): { supersedes: string[]; packs: number; blobs: number } {
  if (body.byteLength < INDEX_PREAMBLE || body.toString('latin1', 0, 4) !== INDEX_MAGIC) throw new Error('not an index file (bad magic)');
  if (body[4] !== INDEX_VERSION) throw new Error(`unsupported index version ${body[4]}`);
  const nSup = body.readUInt32LE(8);
  const nPacks = body.readUInt32LE(12);
  let pos = INDEX_PREAMBLE;
  const need = (n: number) => {
    if (pos + n > body.byteLength) throw new Error(`index body truncated at byte ${pos}`);
  };
  const supersedes: string[] = [];
  need(nSup * ID_SIZE);
  for (let i = 0; i < nSup; i++, pos += ID_SIZE) supersedes.push(body.toString('hex', pos, pos + ID_SIZE));
  let blobs = 0;
  for (let i = 0; i < nPacks; i++) {
    need(ID_SIZE + 4);
    const packId = body.toString('hex', pos, pos + ID_SIZE);
    const count = body.readUInt32LE(pos + ID_SIZE);
    pos += ID_SIZE + 4;
    need(count * ENTRY_SIZE);
    onPack(packId, count);
    for (let j = 0; j < count; j++, pos += ENTRY_SIZE) {
      onEntry(
        body[pos]!,
        body,
        pos + 1,
        body.readUInt32LE(pos + 33),
        body.readUInt32LE(pos + 37),
        body.readUInt32LE(pos + 41),
      );
    }
    blobs += count;
  }
  if (pos !== body.byteLength) throw new Error(`index body has ${body.byteLength - pos} trailing bytes`);
  return { supersedes, packs: nPacks, blobs };
}
