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
import { MAX_DATA_BLOB_SIZE, MAX_PACK_HEADER_SIZE, MAX_PACK_SIZE, MAX_TREE_BLOB_SIZE } from './limits.js';
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

/**
 * What is wrong with one entry (of a pack header or an index file), or undefined when it is
 * sound. `expectedOffset`: where the entry must start (blobs are contiguous from offset 0 in
 * entry order). Checked: known flag bits; stored length at least the cipher overhead; raw length
 * within the cap of its type ({@link MAX_DATA_BLOB_SIZE}, {@link MAX_TREE_BLOB_SIZE}); an
 * uncompressed blob stored at exactly its raw length + overhead, a compressed one smaller than
 * its raw length (format §5); the blob within the largest pack.
 */
export function entryProblem(flags: number, offset: number, length: number, rawLength: number, expectedOffset: number): string | undefined {
  if ((flags & ~(FLAG_TREE | FLAG_COMPRESSED)) !== 0) return `unknown flag bits 0x${flags.toString(16)}`;
  const tree = (flags & FLAG_TREE) !== 0;
  const max = tree ? MAX_TREE_BLOB_SIZE : MAX_DATA_BLOB_SIZE;
  if (rawLength > max) return `raw length ${rawLength} exceeds the ${tree ? 'tree' : 'data'} blob limit of ${max}`;
  if (length < OVERHEAD) return `stored length ${length} is shorter than the cipher overhead`;
  if (flags & FLAG_COMPRESSED) {
    if (length - OVERHEAD >= rawLength) return `compressed payload of ${length - OVERHEAD} bytes is not smaller than its raw length ${rawLength}`;
  } else if (length - OVERHEAD !== rawLength) {
    return `uncompressed blob stored in ${length} bytes, but its raw length is ${rawLength}`;
  }
  if (offset !== expectedOffset) return `offset ${offset}, expected ${expectedOffset} (blobs are contiguous in header order)`;
  if (offset + length > MAX_PACK_SIZE) return `ends at ${offset + length}, past the largest pack`;
  return undefined;
}

/**
 * The length of a pack's encrypted header, from the pack's size and its last 4 bytes; throws a
 * descriptive Error when no header of that length fits the pack, or it is longer than
 * {@link MAX_PACK_HEADER_SIZE} (a pack no index file could list).
 */
export function packHeaderLength(packSize: number, lastFour: Uint8Array): number {
  if (packSize < 4 + OVERHEAD + 1) throw new Error(`too short (${packSize} bytes) to hold a header`);
  if (lastFour.byteLength !== 4) throw new Error('need the last 4 bytes of the pack');
  const hlen = new DataView(lastFour.buffer, lastFour.byteOffset, 4).getUint32(0, true);
  if (hlen < OVERHEAD + 1 || hlen > packSize - 4) throw new Error(`header length ${hlen} is impossible for a ${packSize}-byte pack`);
  if ((hlen - OVERHEAD - 1) % ENTRY_SIZE !== 0) throw new Error(`header length ${hlen} is not ${OVERHEAD} + 1 + n × ${ENTRY_SIZE}`);
  if (hlen > MAX_PACK_HEADER_SIZE) throw new Error(`header length ${hlen} is above the limit of ${MAX_PACK_HEADER_SIZE}`);
  return hlen;
}

/**
 * Parse a decrypted pack header; throws a descriptive Error when malformed. With `dataEnd` (the
 * pack's size minus its header and trailer), the blobs must fill the data exactly.
 */
export function decodePackHeader(plain: Uint8Array, dataEnd?: number): PackEntry[] {
  if (plain.byteLength < 1 || plain[0] !== PACK_HEADER_VERSION) throw new Error(`unsupported pack header version ${plain[0]}`);
  if ((plain.byteLength - 1) % ENTRY_SIZE !== 0) throw new Error(`pack header length ${plain.byteLength} is not 1 + n × ${ENTRY_SIZE}`);
  const n = (plain.byteLength - 1) / ENTRY_SIZE;
  const out: PackEntry[] = [];
  const dv = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  let end = 0;
  for (let i = 0, p = 1; i < n; i++, p += ENTRY_SIZE) {
    const e: PackEntry = {
      flags: plain[p]!,
      id: plain.subarray(p + 1, p + 1 + ID_SIZE),
      offset: dv.getUint32(p + 33, true),
      length: dv.getUint32(p + 37, true),
      rawLength: dv.getUint32(p + 41, true),
    };
    const problem = entryProblem(e.flags, e.offset, e.length, e.rawLength, end);
    if (problem) throw new Error(`pack header entry ${i}: ${problem}`);
    end = e.offset + e.length;
    if (dataEnd !== undefined && end > dataEnd) throw new Error(`pack header entry ${i} ends at ${end}, past the pack data (${dataEnd} bytes)`);
    out.push(e);
  }
  if (dataEnd !== undefined && end !== dataEnd) throw new Error(`pack header lists ${end} bytes of blobs, the pack holds ${dataEnd}`);
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
 * Every count is checked against the bytes left before it is used, and every entry with
 * {@link entryProblem}; a malformed body throws a descriptive Error (part of it may have been
 * handed to the callbacks already: validate first with no-op callbacks to add all or nothing).
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
    need(count * ENTRY_SIZE); // before any loop or allocation for the count
    onPack(packId, count);
    let end = 0;
    for (let j = 0; j < count; j++, pos += ENTRY_SIZE) {
      const flags = body[pos]!;
      const offset = body.readUInt32LE(pos + 33);
      const length = body.readUInt32LE(pos + 37);
      const rawLength = body.readUInt32LE(pos + 41);
      const problem = entryProblem(flags, offset, length, rawLength, end);
      if (problem) throw new Error(`pack ${packId} entry ${j}: ${problem}`);
      end = offset + length;
      onEntry(flags, body, pos + 1, offset, length, rawLength);
    }
    blobs += count;
  }
  if (pos !== body.byteLength) throw new Error(`index body has ${body.byteLength - pos} trailing bytes`);
  return { supersedes, packs: nPacks, blobs };
}
