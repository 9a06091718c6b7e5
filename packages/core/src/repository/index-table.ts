/**
 * The in-memory blob index: a compact open-addressing hash table keyed by
 * (blob type, 32-byte blob id), backed by typed arrays — no JS object per blob.
 *
 * Per blob: 32 (id) + 4 (pack number) + 4 (offset) + 4 (length) + 4 (raw length)
 * + 1 (flags) = 49 bytes of entry columns, plus 8-byte hash slots (entry number
 * and a 32-bit tag of the id, so probes rarely touch the id column) at a load
 * factor between 0.375 and 0.75, and up to 1.25× slack from growth: typically
 * 60–75 bytes per blob, at most ~83.
 *
 * A blob may be stored in several packs (an interrupted write stored again, a repair that
 * stored a fresh copy): each location is an entry of its own, and lookups hand out the first
 * *usable* one. An entry is unusable once it was found damaged ({@link BlobIndex.markDamaged})
 * or its pack is missing or damaged ({@link BlobIndex.markPackBad}); deduplication and reads
 * then skip it, so nothing is ever deduplicated against a copy that cannot be read back.
 */
import type { BlobId, BlobLocation, BlobType } from './types.js';

export const ID_SIZE = 32;
/** Entry flag bits, shared with the pack header and index file layouts. */
export const FLAG_TREE = 1;
export const FLAG_COMPRESSED = 2;
/** In-memory only (never written): this location was found damaged. */
const FLAG_DAMAGED = 0x80;
/** `packBad` values: 0 usable, 1 missing or damaged, {@link PACK_RETIRED} retired by prune. */
const PACK_RETIRED = 2;

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
  /** Per pack number: blobs indexed in it, the end of its last blob, and whether it is unusable. */
  private packBlobs: Uint32Array = new Uint32Array(64);
  private packEnds = new Float64Array(64);
  private packBad = new Uint8Array(64);
  private badPackCount = 0;
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
      if (no >= this.packBlobs.length) {
        const cap = this.packBlobs.length * 2;
        this.packBlobs = growU32(this.packBlobs, cap);
        const ends = new Float64Array(cap);
        ends.set(this.packEnds);
        this.packEnds = ends;
        const bad = new Uint8Array(cap);
        bad.set(this.packBad);
        this.packBad = bad;
      }
    }
    return no;
  }

  /** The pack number of a known pack id, or -1. */
  findPack(packId: string): number {
    return this.packNumbers.get(packId) ?? -1;
  }

  /** Blobs indexed in pack `no`, and where its last blob ends (the pack's size is that plus its header and trailer). */
  packInfo(no: number): { blobs: number; end: number; bad: boolean } {
    return { blobs: this.packBlobs[no] ?? 0, end: this.packEnds[no] ?? 0, bad: this.packBad[no] === 1 };
  }

  /** Every pack id known (also packs that are marked bad). */
  packList(): readonly string[] {
    return this.packIds;
  }

  /**
   * Retire a pack that prune is about to delete (repacked, or holding nothing used): like
   * {@link markPackBad}, none of its entries is used for reads or deduplication any more, but it
   * is not damage, so blobs stored again in its place are not reported as lost copies ({@link lost}).
   */
  retirePack(no: number): void {
    if (this.packBad[no] === 0) this.packBad[no] = PACK_RETIRED;
  }

  /** Mark a pack missing or damaged: none of its entries is used for reads or deduplication any more. */
  markPackBad(no: number): void {
    if (this.packBad[no] !== 1) {
      this.packBad[no] = 1;
      this.badPackCount++;
    }
  }

  /** Number of packs marked bad. */
  get badPacks(): number {
    return this.badPackCount;
  }

  /** Mark one location damaged (a read found it unreadable): it is not used again. */
  markDamaged(e: number): void {
    if (e >= 0 && e < this.n) this.flags[e]! |= FLAG_DAMAGED;
  }

  /** True when entry `e` may be read and deduplicated against. */
  isUsable(e: number): boolean {
    return (this.flags[e]! & FLAG_DAMAGED) === 0 && this.packBad[this.packNo[e]!] === 0;
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
   * Add a location of the blob whose id is `idBuf[idOff .. idOff+32]`. Returns false (and
   * changes nothing) when this blob is already listed in this pack; another pack's copy of a
   * known blob is added as a further location.
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
      if (slots[2 * s + 1] === tag && (this.flags[e]! & FLAG_TREE) === tree && this.packNo[e] === packNo && equal32(ids, e * ID_SIZE, idBuf, idOff)) {
        return false;
      }
      s = (s + 1) & mask;
    }
    this.packBlobs[packNo]!++;
    if (offset + length > this.packEnds[packNo]!) this.packEnds[packNo] = offset + length;
    const e = this.n++;
    const base = e * ID_SIZE;
    for (let i = 0; i < ID_SIZE; i++) ids[base + i] = idBuf[idOff + i]!;
    this.packNo[e] = packNo;
    this.offsets[e] = offset;
    this.lengths[e] = length;
    this.rawLengths[e] = rawLength;
    this.flags[e] = flags & (FLAG_TREE | FLAG_COMPRESSED);
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

  /** Entry number of the first usable location of (type, id), or -1. */
  find(type: BlobType, id: BlobId): number {
    if (!HEX_RE.test(id)) return -1;
    this.scratch.write(id, 0, ID_SIZE, 'hex');
    return this.findRaw(typeBit(type), this.scratch, 0);
  }

  /** True when (type, id) has a usable location. */
  has(type: BlobType, id: BlobId): boolean {
    return this.find(type, id) >= 0;
  }

  /** True when (type, id) is indexed at all, also when every location of it is unusable. */
  known(type: BlobType, id: BlobId): boolean {
    return this.findAll(type, id).length > 0;
  }

  /**
   * True when (type, id) has no usable location and at least one of its locations was lost to
   * damage (a damaged entry, a missing or damaged pack), not only to packs prune retired.
   */
  lost(type: BlobType, id: BlobId): boolean {
    const all = this.findAll(type, id);
    return all.length > 0 && !this.isUsable(all[0]!) && all.some((e) => this.packBad[this.packNo[e]!] !== PACK_RETIRED);
  }

  /** Entry number of the first usable location of (type bit, id bytes), or -1. */
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
      if (slots[2 * s + 1] === tag && (this.flags[e]! & FLAG_TREE) === tree && equal32(ids, e * ID_SIZE, idBuf, idOff) && this.isUsable(e)) return e;
      s = (s + 1) & mask;
    }
  }

  /** Entry numbers of every location of (type, id), usable ones first. */
  findAll(type: BlobType, id: BlobId): number[] {
    if (!HEX_RE.test(id)) return [];
    const idBuf = this.scratch;
    idBuf.write(id, 0, ID_SIZE, 'hex');
    const tree = typeBit(type);
    const mask = this.mask;
    const slots = this.slots;
    let s = readU32(idBuf, 0) & mask;
    const tag = readU32(idBuf, 4);
    const usable: number[] = [];
    const unusable: number[] = [];
    for (;;) {
      const v = slots[2 * s]!;
      if (v === 0) break;
      const e = v - 1;
      if (slots[2 * s + 1] === tag && (this.flags[e]! & FLAG_TREE) === tree && equal32(this.ids, e * ID_SIZE, idBuf, 0)) {
        (this.isUsable(e) ? usable : unusable).push(e);
      }
      s = (s + 1) & mask;
    }
    return usable.concat(unusable);
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

  /** Look up (type, id): its first usable location, or undefined. */
  lookup(type: BlobType, id: BlobId): BlobLocation | undefined {
    const e = this.find(type, id);
    return e < 0 ? undefined : this.get(e);
  }

  /** Call `fn` with the id bytes (`ids[off .. off+32]`) of every usable entry of `type`. */
  forEachUsableId(type: BlobType, fn: (ids: Uint8Array, off: number) => void): void {
    const tree = typeBit(type);
    for (let e = 0; e < this.n; e++) {
      if ((this.flags[e]! & FLAG_TREE) === tree && this.isUsable(e)) fn(this.ids, e * ID_SIZE);
    }
  }

  /** The entry numbers of pack `no`'s blobs (a scan of the whole table: for maintenance, not hot paths). */
  entriesOfPack(no: number): number[] {
    const out: number[] = [];
    for (let e = 0; e < this.n; e++) if (this.packNo[e] === no) out.push(e);
    return out;
  }

  /** Pack number of entry `e` (cheap, no object). */
  entryPack(e: number): number {
    return this.packNo[e]!;
  }

  /** Stored length of entry `e` (cheap, no object). */
  entryLength(e: number): number {
    return this.lengths[e]!;
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
