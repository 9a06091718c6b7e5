/**
 * The in-memory blob index: a compact open-addressing hash table keyed by
 * (blob type, 32-byte blob id), backed by typed arrays — no JS object per blob.
 *
 * Per blob: 32 (id) + 4 (pack number) + 4 (offset) + 4 (length) + 4 (raw length)
 * + 1 (flags) = 49 bytes of entry columns, plus 8-byte hash slots (entry number
 * and a 32-bit tag of the id, so probes rarely touch the id column) at a load
 * factor between 0.375 and 0.75, and up to 1.25× slack from growth: typically
 * 60–75 bytes per blob, at most ~83.
 */
import type { BlobId, BlobLocation, BlobType } from './types.js';

export const ID_SIZE = 32;
/** Entry flag bits, shared with the pack header and index file layouts. */
export const FLAG_TREE = 1;
export const FLAG_COMPRESSED = 2;

const HEX_RE = /^[0-9a-f]{64}$/;

export function typeBit(type: BlobType): number {
  return type === 'tree' ? FLAG_TREE : 0;
}

/** Parse a 64-char lowercase hex blob id into `out` (32 bytes). Throws on malformed ids. */
export function idToBytes(id: string, out: Buffer = Buffer.allocUnsafe(ID_SIZE), offset = 0): Buffer {
  if (!HEX_RE.test(id)) throw new TypeError(`invalid blob id ${JSON.stringify(id)} (expected 64 lowercase hex digits)`);
  out.write(id, offset, ID_SIZE, 'hex');
  return out;
}

export function isBlobId(id: unknown): id is BlobId {
  return typeof id === 'string' && HEX_RE.test(id);
}

export class BlobIndex {
  private slots: Uint32Array;
  private mask: number;
  private ids: Buffer;
  private packNo: Uint32Array;
  private offsets: Uint32Array;
  private lengths: Uint32Array;
  private rawLengths: Uint32Array;
  private flags: Uint8Array;
  private cap: number;
  private n = 0;
  private readonly packIds: string[] = [];
  private readonly packNumbers = new Map<string, number>();
  private readonly scratch = Buffer.alloc(ID_SIZE);

  constructor(expected = 1024) {
    this.cap = Math.max(16, expected);
    this.ids = Buffer.allocUnsafeSlow(this.cap * ID_SIZE);
    this.packNo = new Uint32Array(this.cap);
    this.offsets = new Uint32Array(this.cap);
    this.lengths = new Uint32Array(this.cap);
    this.rawLengths = new Uint32Array(this.cap);
    this.flags = new Uint8Array(this.cap);
    const slotCount = nextPow2(Math.ceil(this.cap / 0.75) + 1);
    this.slots = new Uint32Array(slotCount * 2);
    this.mask = slotCount - 1;
  }

  /** Number of blobs. */
  get size(): number {
    return this.n;
  }

  /** Number of packs known. */
  get packCount(): number {
    return this.packIds.length;
  }

  /** Bytes held by the table's arrays (excluding the pack id strings). */
  byteSize(): number {
    return (
      this.slots.byteLength +
      this.ids.byteLength +
      this.packNo.byteLength +
      this.offsets.byteLength +
      this.lengths.byteLength +
      this.rawLengths.byteLength +
      this.flags.byteLength
    );
  }

  /** The number of a pack id, adding it when new. */
  packNumber(packId: string): number {
    let no = this.packNumbers.get(packId);
    if (no === undefined) {
      no = this.packIds.length;
      this.packIds.push(packId);
      this.packNumbers.set(packId, no);
    }
    return no;
  }

  packId(no: number): string {
    const id = this.packIds[no];
    if (id === undefined) throw new RangeError(`no pack number ${no}`);
    return id;
  }

  hasPack(packId: string): boolean {
    return this.packNumbers.has(packId);
  }

  /** Make room for `extra` more entries without intermediate growth. */
  reserve(extra: number): void {
    const need = this.n + extra;
    if (need > this.cap) this.growEntries(need);
    if (need > this.slotCount * 0.75) this.rehash(nextPow2(Math.ceil(need / 0.75) + 1));
  }

  /**
   * Add a blob whose id is `idBuf[idOff .. idOff+32]`. Returns false (and changes nothing)
   * when a blob of that type and id is already present.
   */
  add(
    flags: number,
    idBuf: Uint8Array,
    idOff: number,
    packNo: number,
    offset: number,
    length: number,
    rawLength: number,
  ): boolean {
    if (this.n >= this.cap) this.growEntries(Math.ceil(this.cap * 1.25));
    if (this.n + 1 > this.slotCount * 0.75) this.rehash(this.slotCount * 2);
    // One probe finds either the existing entry or the free slot to use.
    const tree = flags & FLAG_TREE;
    const mask = this.mask;
    const slots = this.slots;
    const ids = this.ids;
    let s = readU32(idBuf, idOff) & mask;
    const tag = readU32(idBuf, idOff + 4);
    for (;;) {
      const v = slots[2 * s]!;
      if (v === 0) break;
      const e = v - 1;
      if (slots[2 * s + 1] === tag && (this.flags[e]! & FLAG_TREE) === tree && equal32(ids, e * ID_SIZE, idBuf, idOff)) return false;
      s = (s + 1) & mask;
    }
    const e = this.n++;
    const base = e * ID_SIZE;
    for (let i = 0; i < ID_SIZE; i++) ids[base + i] = idBuf[idOff + i]!;
    this.packNo[e] = packNo;
    this.offsets[e] = offset;
    this.lengths[e] = length;
    this.rawLengths[e] = rawLength;
    this.flags[e] = flags;
    slots[2 * s] = e + 1;
    slots[2 * s + 1] = tag;
    return true;
  }

  /** Add a blob given as a {@link BlobLocation}. */
  addLocation(loc: BlobLocation): boolean {
    const buf = idToBytes(loc.id, this.scratch);
    const flags = typeBit(loc.type) | (loc.compressed ? FLAG_COMPRESSED : 0);
    return this.add(flags, buf, 0, this.packNumber(loc.pack), loc.offset, loc.length, loc.rawLength);
  }

  /** Entry number of (type, id), or -1. */
  find(type: BlobType, id: BlobId): number {
    if (!HEX_RE.test(id)) return -1;
    this.scratch.write(id, 0, ID_SIZE, 'hex');
    return this.findRaw(typeBit(type), this.scratch, 0);
  }

  has(type: BlobType, id: BlobId): boolean {
    return this.find(type, id) >= 0;
  }

  /** Entry number of (type bit, id bytes), or -1. */
  findRaw(tree: number, idBuf: Uint8Array, idOff: number): number {
    const mask = this.mask;
    const slots = this.slots;
    let s = readU32(idBuf, idOff) & mask;
    const tag = readU32(idBuf, idOff + 4);
    const ids = this.ids;
    for (;;) {
      const v = slots[2 * s]!;
      if (v === 0) return -1;
      const e = v - 1;
      if (slots[2 * s + 1] === tag && (this.flags[e]! & FLAG_TREE) === tree && equal32(ids, e * ID_SIZE, idBuf, idOff)) return e;
      s = (s + 1) & mask;
    }
  }

  /** The location of entry `e`. */
  get(e: number): BlobLocation {
    if (e < 0 || e >= this.n) throw new RangeError(`no index entry ${e}`);
    const f = this.flags[e]!;
    return {
      type: f & FLAG_TREE ? 'tree' : 'data',
      id: this.ids.toString('hex', e * ID_SIZE, (e + 1) * ID_SIZE),
      pack: this.packIds[this.packNo[e]!]!,
      offset: this.offsets[e]!,
      length: this.lengths[e]!,
      rawLength: this.rawLengths[e]!,
      compressed: (f & FLAG_COMPRESSED) !== 0,
    };
  }

  /** Look up (type, id): its location or undefined. */
  lookup(type: BlobType, id: BlobId): BlobLocation | undefined {
    const e = this.find(type, id);
    return e < 0 ? undefined : this.get(e);
  }

  /** Pack number of entry `e` (cheap, no object). */
  entryPack(e: number): number {
    return this.packNo[e]!;
  }

  /** Iterate all entries' locations (allocates one object per entry; for check/listing, not hot paths). */
  *locations(): IterableIterator<BlobLocation> {
    for (let e = 0; e < this.n; e++) yield this.get(e);
  }

  private get slotCount(): number {
    return this.slots.length >>> 1;
  }

  private rehash(slotCount: number): void {
    const slots = new Uint32Array(slotCount * 2);
    const mask = slotCount - 1;
    const ids = this.ids;
    for (let e = 0; e < this.n; e++) {
      let s = readU32(ids, e * ID_SIZE) & mask;
      while (slots[2 * s] !== 0) s = (s + 1) & mask;
      slots[2 * s] = e + 1;
      slots[2 * s + 1] = readU32(ids, e * ID_SIZE + 4);
    }
    this.slots = slots;
    this.mask = mask;
  }

  private growEntries(cap: number): void {
    const ids = Buffer.allocUnsafeSlow(cap * ID_SIZE);
    this.ids.copy(ids, 0, 0, this.n * ID_SIZE);
    this.ids = ids;
    this.packNo = growU32(this.packNo, cap);
    this.offsets = growU32(this.offsets, cap);
    this.lengths = growU32(this.lengths, cap);
    this.rawLengths = growU32(this.rawLengths, cap);
    const flags = new Uint8Array(cap);
    flags.set(this.flags);
    this.flags = flags;
    this.cap = cap;
  }
}

function growU32(a: Uint32Array, cap: number): Uint32Array {
  const b = new Uint32Array(cap);
  b.set(a);
  return b;
}

function nextPow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function equal32(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < ID_SIZE; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}
