import { createHash, randomBytes } from 'node:crypto';
import type { BlobType, Snapshot, Tree } from '../../../src/repository/types.js';
import type { EngineRepository } from '../../../src/backup/types.js';

/**
 * A minimal in-process stand-in for the repository (plain SHA-256 ids, no
 * packs or crypto), with counters and fault injection. Used where a test needs
 * to inspect or break the engine's calls; the round-trip tests use the real
 * Repository over memory storage.
 */
export class FakeRepository implements EngineRepository {
  readonly config = { chunker: { minSize: 1024, avgSize: 4096, maxSize: 16 * 1024, seed: new Uint8Array(32).fill(7) } };
  readonly location = 'fake:';
  readonly blobs = new Map<string, Buffer>();
  readonly snapshots = new Map<string, Snapshot>();
  saveBlobCalls = 0;
  bytesSaved = 0;
  locks = 0;
  failSaveBlobAfter = Infinity;
  /** Blob ids whose load fails with an integrity error. */
  readonly corrupt = new Set<string>();

  blobId(data: Uint8Array): string {
    return createHash('sha256').update(data).digest('hex');
  }
  hasBlob(type: BlobType, id: string): boolean {
    return this.blobs.has(`${type}:${id}`);
  }
  async saveBlob(type: BlobType, data: Uint8Array, id?: string) {
    this.saveBlobCalls++;
    if (this.saveBlobCalls > this.failSaveBlobAfter) throw new Error('storage failed (injected)');
    const bid = id ?? this.blobId(data);
    const key = `${type}:${bid}`;
    const known = this.blobs.has(key);
    if (!known) {
      this.blobs.set(key, Buffer.from(data));
      this.bytesSaved += data.length;
    }
    await new Promise((r) => setImmediate(r));
    return { id: bid, known, storedSize: data.length };
  }
  async saveTree(tree: Tree): Promise<string> {
    return (await this.saveBlob('tree', Buffer.from(JSON.stringify(tree)))).id;
  }
  async loadTree(id: string): Promise<Tree> {
    return JSON.parse((await this.loadBlob('tree', id)).toString()) as Tree;
  }
  async loadBlob(type: BlobType, id: string): Promise<Buffer> {
    const b = this.blobs.get(`${type}:${id}`);
    if (!b) throw new Error(`blob ${id} not found`);
    if (this.corrupt.has(id)) throw new Error(`integrity error: blob ${id} in pack deadbeef does not match its id`);
    return Buffer.from(b);
  }
  async flush(): Promise<void> {}
  async saveSnapshot(s: Snapshot): Promise<string> {
    const id = randomBytes(32).toString('hex');
    this.snapshots.set(id, structuredClone(s));
    return id;
  }
  async loadSnapshot(id: string): Promise<Snapshot> {
    const s = this.snapshots.get(id);
    if (!s) throw new Error(`snapshot ${id} not found`);
    return structuredClone(s);
  }
  async findSnapshot(ref: string, filter: { host?: string; paths?: string[] } = {}) {
    let best: { id: string; snapshot: Snapshot } | undefined;
    for (const [id, s] of this.snapshots) {
      if (ref !== 'latest') {
        if (id.startsWith(ref)) return { id, snapshot: s };
        continue;
      }
      if (filter.host && s.hostname !== filter.host) continue;
      if (filter.paths && JSON.stringify([...s.paths].sort()) !== JSON.stringify([...filter.paths].sort())) continue;
      if (!best || s.time >= best.snapshot.time) best = { id, snapshot: s };
    }
    return best;
  }
  async lock(_kind: 'shared' | 'exclusive') {
    this.locks++;
    return {
      release: async () => {
        this.locks--;
      },
    };
  }
  dataBlobCount(): number {
    let n = 0;
    for (const k of this.blobs.keys()) if (k.startsWith('data:')) n++;
    return n;
  }
}
