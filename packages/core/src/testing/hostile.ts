/**
 * A hostile repository builder for tests: writes files that Kiwi's writer never would (bombs,
 * malformed trees and snapshots, lying headers, huge claims) into a repository whose password
 * the test knows, encrypted with its real keys — so they authenticate and reach the decoders.
 *
 * ```ts
 * const h = await HostileRepo.open(storage, 'password');
 * const tree = await h.writeRawTreeBlob(treeJson([fileNode('a', { uid: -7 })]));
 * await h.writeRawSnapshot(h.snapshotJson(tree));
 * await h.writeRawIndexFile(zstdBomb(8 * 2 ** 30), { payload: true });
 * ```
 *
 * The keys come from the repository's key files (opened with the password), exactly as Kiwi
 * opens them; nothing here reaches into a `Repository`.
 */
import { compress } from '../compression/zstd.js';
import { MasterKeys, openKeyFile, parseKeyFile, sha256Hex } from '../crypto/keys.js';
import { canonicalJson } from '../repository/canonical.js';
import { FLAG_COMPRESSED, FLAG_TREE } from '../repository/index-table.js';
import { encodeIndexBody, encodePackHeader, type PackEntry } from '../repository/pack-format.js';
import type { BlobType, Node, Snapshot } from '../repository/types.js';
import type { Storage } from '../storage/types.js';

/**
 * A zstd frame of RLE blocks that expands to `size` bytes of `byte` from about `size / 32768`
 * bytes (8 GiB from 262 KiB). `declareSize`: state the size in the frame header (a decoder can
 * then refuse it before decompressing); by default the header does not say.
 */
export function zstdBomb(size: number, opts: { declareSize?: boolean; byte?: number } = {}): Buffer {
  const BLOCK = 128 * 1024;
  const blocks = Math.max(1, Math.ceil(size / BLOCK));
  const head: number[] = [0x28, 0xb5, 0x2f, 0xfd];
  if (opts.declareSize) {
    // FCS_flag 3 (8-byte Frame_Content_Size), not single-segment: window descriptor 2^17.
    head.push(0xc0, 7 << 3);
    const fcs = Buffer.alloc(8);
    fcs.writeBigUInt64LE(BigInt(size));
    head.push(...fcs);
  } else {
    head.push(0x00, 7 << 3); // no FCS; window 128 KiB
  }
  const out = Buffer.alloc(head.length + blocks * 4);
  out.set(head, 0);
  let pos = head.length;
  let left = size;
  for (let i = 0; i < blocks; i++) {
    const n = Math.min(BLOCK, left);
    left -= n;
    const last = i === blocks - 1 ? 1 : 0;
    const h = last | (1 << 1) | (n << 3); // RLE block
    out[pos] = h & 0xff;
    out[pos + 1] = (h >> 8) & 0xff;
    out[pos + 2] = (h >> 16) & 0xff;
    out[pos + 3] = opts.byte ?? 0x41;
    pos += 4;
  }
  return out;
}

/** Canonical tree JSON of `nodes` (any values: invalid ones are the point), as Kiwi stores trees. */
export function treeJson(nodes: unknown[]): Buffer {
  return Buffer.from(canonicalJson({ nodes }), 'utf8');
}

/** A valid file node; `fields` override or add anything (set a field to `undefined` to drop it). */
export function fileNode(name: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    type: 'file',
    mode: 0o644,
    uid: 1000,
    gid: 1000,
    mtimeNs: '1700000000000000000',
    ctimeNs: '1700000000000000000',
    inode: '1',
    dev: '1',
    size: 0,
    content: [],
    ...fields,
  };
}

/** A valid directory node pointing at `subtree`. */
export function dirNode(name: string, subtree: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...fileNode(name), type: 'dir', mode: 0o755, content: undefined, subtree, ...fields };
}

/** One blob of a pack written by {@link HostileRepo.writePack}. */
export interface HostileBlob {
  type: BlobType;
  /** The plaintext; its HMAC is the blob id unless `id` is given. */
  plaintext?: Uint8Array;
  /** The stored payload before encryption (e.g. a zstd bomb); marks the blob compressed unless `compressed` says otherwise. */
  payload?: Uint8Array;
  compressed?: boolean;
  /** Id to list the blob under (hex); default: the HMAC of `plaintext`. */
  id?: string;
  /** rawLength to record; default: the plaintext's length. */
  rawLength?: number;
}

export interface WrittenPack {
  /** Pack id (hex). */
  pack: string;
  /** Blob ids in pack order. */
  ids: string[];
  /** The header entries (as also written to the index file). */
  entries: PackEntry[];
  /** The index file written for the pack, if any. */
  indexFile?: string;
}

/** Writes raw, encrypted files into a repository whose password is known. */
export class HostileRepo {
  private constructor(
    readonly storage: Storage,
    readonly keys: MasterKeys,
  ) {}

  /** Open the master keys of the repository in `storage` with `password` (throws when none opens). */
  static async open(storage: Storage, password: string): Promise<HostileRepo> {
    for await (const f of storage.list('key')) {
      const file = parseKeyFile(await storage.load({ type: 'key', name: f.name }), `keys/${f.name}`);
      const keys = await openKeyFile(file, password);
      if (keys) return new HostileRepo(storage, keys);
    }
    throw new Error('no key file opens with this password');
  }

  /** The blob id Kiwi computes for `plaintext`. */
  blobId(plaintext: Uint8Array): string {
    return this.keys.blobId(plaintext);
  }

  /** Encrypt `plain` as a metadata file would be (no compression: pass a zstd frame to get one). */
  encrypt(plain: Uint8Array): Buffer {
    return this.keys.encrypt(plain);
  }

  /** Save stored bytes under their SHA-256; returns the name. */
  async saveNamed(type: 'index' | 'snapshot' | 'lock' | 'key' | 'data', bytes: Uint8Array): Promise<string> {
    const name = sha256Hex(bytes);
    await this.storage.save({ type, name }, bytes);
    return name;
  }

  /**
   * An index file of `body` (the plaintext body, zstd-compressed here), or with `payload: true`
   * of `body` as the already-compressed payload (a bomb). Returns the file name.
   */
  async writeRawIndexFile(body: Uint8Array, opts: { payload?: boolean } = {}): Promise<string> {
    const payload = opts.payload ? body : await compress(body);
    return this.saveNamed('index', this.keys.encrypt(payload));
  }

  /**
   * A snapshot file of `snapshot` (an object, serialized as JSON; a string or bytes as they are),
   * or with `payload: true` of the bytes as the compressed payload. Returns the snapshot id.
   */
  async writeRawSnapshot(snapshot: unknown, opts: { payload?: boolean } = {}): Promise<string> {
    const bytes =
      snapshot instanceof Uint8Array ? snapshot : Buffer.from(typeof snapshot === 'string' ? snapshot : JSON.stringify(snapshot), 'utf8');
    const payload = opts.payload ? bytes : await compress(bytes);
    return this.saveNamed('snapshot', this.keys.encrypt(payload));
  }

  /** A lock file of `lock` (JSON object, string or bytes), encrypted. Returns its name. */
  async writeRawLockFile(lock: unknown): Promise<string> {
    const bytes = lock instanceof Uint8Array ? lock : Buffer.from(typeof lock === 'string' ? lock : JSON.stringify(lock), 'utf8');
    return this.saveNamed('lock', this.keys.encrypt(bytes));
  }

  /** A key file of `file` (JSON object, string or bytes; key files are not encrypted). Returns its id. */
  async writeRawKeyFile(file: unknown): Promise<string> {
    const bytes = file instanceof Uint8Array ? file : Buffer.from(typeof file === 'string' ? file : JSON.stringify(file), 'utf8');
    return this.saveNamed('key', bytes);
  }

  /** Replace `config` with the encryption of `config` (JSON object, string or bytes). */
  async writeRawConfig(config: unknown): Promise<void> {
    const bytes = config instanceof Uint8Array ? config : Buffer.from(typeof config === 'string' ? config : JSON.stringify(config), 'utf8');
    await this.storage.save({ type: 'config', name: 'config' }, this.keys.encrypt(bytes));
  }

  /**
   * A pack of `blobs` (with its encrypted header) and, unless `index: false`, an index file listing
   * it. `header` replaces the plaintext header (to write a lying one).
   */
  async writePack(blobs: HostileBlob[], opts: { index?: boolean; header?: Uint8Array } = {}): Promise<WrittenPack> {
    const parts: Buffer[] = [];
    const entries: PackEntry[] = [];
    const ids: string[] = [];
    let offset = 0;
    for (const b of blobs) {
      const plaintext = b.plaintext ?? Buffer.alloc(0);
      const compressed = b.compressed ?? b.payload !== undefined;
      const stored = this.keys.encrypt(b.payload ?? plaintext);
      const id = b.id ?? this.keys.blobId(plaintext);
      ids.push(id);
      entries.push({
        flags: (b.type === 'tree' ? FLAG_TREE : 0) | (compressed ? FLAG_COMPRESSED : 0),
        id: Buffer.from(id, 'hex'),
        offset,
        length: stored.byteLength,
        rawLength: b.rawLength ?? plaintext.byteLength,
      });
      parts.push(stored);
      offset += stored.byteLength;
    }
    const header = this.keys.encrypt(opts.header ?? encodePackHeader(entries));
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(header.byteLength);
    const bytes = Buffer.concat([...parts, header, trailer]);
    const pack = sha256Hex(bytes);
    await this.storage.save({ type: 'data', name: pack }, bytes);
    const out: WrittenPack = { pack, ids, entries };
    if (opts.index !== false) out.indexFile = await this.writeRawIndexFile(encodeIndexBody([{ id: pack, entries }]));
    return out;
  }

  /**
   * A tree blob of `bytes` (any bytes: they need not be a tree) in a pack of its own, indexed.
   * `payload`: store this instead (e.g. a {@link zstdBomb}), recorded as compressed with
   * `rawLength` (default: the length of `bytes`). Returns the blob id (the HMAC of `bytes`).
   */
  async writeRawTreeBlob(bytes: Uint8Array, opts: { payload?: Uint8Array; rawLength?: number } = {}): Promise<string> {
    return (await this.writePack([{ type: 'tree', plaintext: bytes, ...opts }])).ids[0]!;
  }

  /** A data blob in a pack of its own, indexed; options as {@link writeRawTreeBlob}. Returns its id. */
  async writeRawDataBlob(bytes: Uint8Array, opts: { payload?: Uint8Array; rawLength?: number } = {}): Promise<string> {
    return (await this.writePack([{ type: 'data', plaintext: bytes, ...opts }])).ids[0]!;
  }

  /** A valid snapshot object for root tree `tree`; `fields` override or add anything. */
  snapshotJson(tree: string, fields: Partial<Record<keyof Snapshot | string, unknown>> = {}): Record<string, unknown> {
    return {
      time: '2026-01-02T03:04:05.000Z',
      hostname: 'hostile',
      username: 'mallory',
      paths: ['/src'],
      tags: [],
      tree,
      programVersion: 'kiwi test',
      ...fields,
    };
  }

  /** Write `nodes` as a tree blob and return its id (shorthand for `writeRawTreeBlob(treeJson(nodes))`). */
  async writeTree(nodes: Array<Record<string, unknown> | Node | unknown>): Promise<string> {
    return this.writeRawTreeBlob(treeJson(nodes));
  }
}
