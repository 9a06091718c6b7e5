/**
 * The header of a zstd frame (RFC 8878 §3.1.1.1), read before any decompression so that a frame
 * that declares more content than allowed is refused before anything is allocated for it.
 */

/** The magic number that starts every zstd frame (little endian 0xFD2FB528). */
export const ZSTD_MAGIC = 0xfd2fb528;

export interface ZstdFrameHeader {
  /** Frame_Content_Size: the decompressed size the frame declares, when it declares one. */
  contentSize: number | undefined;
  /** Window_Size in bytes (for a single-segment frame, the content size). */
  windowSize: number;
  /** Dictionary_ID (0: none). */
  dictionaryId: number;
  /** Whether the frame ends with a 4-byte content checksum. */
  checksum: boolean;
  /** Bytes of the magic number and frame header. */
  headerSize: number;
}

/** A zstd frame header that cannot be valid; the message says why. */
export class ZstdFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZstdFrameError';
  }
}

const DID_SIZES = [0, 1, 2, 4] as const;

/** Parse the frame header at the start of `data`; throws {@link ZstdFrameError} when it is not one. */
export function parseFrameHeader(data: Uint8Array): ZstdFrameHeader {
  if (data.byteLength < 5) throw new ZstdFrameError('not a zstd frame (too short)');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (dv.getUint32(0, true) !== ZSTD_MAGIC) throw new ZstdFrameError('not a zstd frame');
  const fhd = data[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  if (fhd & 0x08) throw new ZstdFrameError('zstd frame header has its reserved bit set');
  const checksum = ((fhd >> 2) & 1) === 1;
  const didSize = DID_SIZES[fhd & 3]!;
  const fcsSize = fcsFlag === 0 ? singleSegment : 1 << fcsFlag; // 0|1, 2, 4, 8
  let pos = 5;
  const headerSize = pos + (singleSegment ? 0 : 1) + didSize + fcsSize;
  if (data.byteLength < headerSize) throw new ZstdFrameError('zstd frame header is truncated');
  let windowSize = 0;
  if (!singleSegment) {
    const wd = data[pos++]!;
    const windowLog = 10 + (wd >> 3);
    const base = 2 ** windowLog;
    windowSize = base + (base / 8) * (wd & 7);
  }
  let dictionaryId = 0;
  if (didSize === 1) dictionaryId = data[pos]!;
  else if (didSize === 2) dictionaryId = dv.getUint16(pos, true);
  else if (didSize === 4) dictionaryId = dv.getUint32(pos, true);
  pos += didSize;
  let contentSize: number | undefined;
  if (fcsSize === 1) contentSize = data[pos]!;
  else if (fcsSize === 2) contentSize = dv.getUint16(pos, true) + 256;
  else if (fcsSize === 4) contentSize = dv.getUint32(pos, true);
  else if (fcsSize === 8) {
    const v = dv.getBigUint64(pos, true);
    // Beyond 2^53 the exact value does not matter: it is more than any limit.
    contentSize = v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }
  if (singleSegment) windowSize = contentSize ?? 0;
  return { contentSize, windowSize, dictionaryId, checksum, headerSize };
}
