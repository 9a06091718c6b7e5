/**
 * `check`, index stage: every index file is read and parsed (a damaged one is an error, named,
 * with the repair command), then compared with the pack listing: a pack an index names must
 * exist with exactly the size its entries imply. A pack no index names is a warning: its header
 * is read and its blobs count as present (as every other command adopts such packs), so that a
 * damaged or deleted index file is reported as that, with `kiwi repair index`, and not as data
 * lost; a pack whose header cannot be read either holds nothing any index can point to.
 */
import { handlePath } from '../storage/types.js';
import { eachLimit, msg, type CheckContext, type CheckReporter } from './check-util.js';
import { BlobIndex, ID_SIZE } from './index-table.js';
import { listFiles } from './open.js';
import { ENTRY_SIZE, packTrailerSize, scanIndexBody } from './pack-format.js';
import type { BlobType } from './types.js';
import { loadWholeFile } from './whole-file.js';

/** A pack as its (first) index file lists it. */
export interface PackRef {
  indexFile: string;
  count: number;
  end: number;
  /** The 45-byte entries as listed in the index file (views into its body). */
  parts: Buffer[];
}

export class CheckIndex {
  readonly idx = new BlobIndex();
  readonly packRefs = new Map<string, PackRef>();
  /** Blobs that cannot be read back — `d`/`t` + id → the pack's path, or `index` for blobs no index lists. */
  readonly lost = new Map<string, string>();
  /** Index files read or found damaged. */
  private readonly seen = new Set<string>();
  /** Packs missing or of the wrong size. */
  private readonly badPacks = new Set<string>();
  /** Index files that could not be read. */
  private damagedIndexFiles = 0;

  constructor(
    private readonly ctx: CheckContext,
    private readonly report: CheckReporter,
  ) {}

  /** Read the index files not read yet; returns how many were new. */
  async readNew(): Promise<number> {
    const { storage } = this.ctx;
    const files = (await listFiles(storage, 'index')).filter((f) => !this.seen.has(f.name));
    let done = 0;
    await eachLimit(files, 4, async ({ name, size }) => {
      this.seen.add(name);
      const file = `index/${name}`;
      try {
        const body = await this.ctx.openMetadata(await loadWholeFile(storage, { type: 'index', name }, size), file, name);
        // Validate the whole body before adding anything.
        scanIndexBody(body, () => undefined, () => undefined);
        let packNo = 0;
        let ref: PackRef | undefined;
        scanIndexBody(
          body,
          (packId, count) => {
            packNo = this.idx.packNumber(packId);
            ref = this.packRefs.has(packId) ? undefined : { indexFile: file, count, end: 0, parts: [] };
            if (ref) this.packRefs.set(packId, ref);
          },
          (flags, buf, idOff, offset, length, rawLength) => {
            this.idx.add(flags, buf, idOff, packNo, offset, length, rawLength);
            if (ref) {
              ref.parts.push(buf.subarray(idOff - 1, idOff - 1 + ENTRY_SIZE));
              ref.end = Math.max(ref.end, offset + length);
            }
          },
        );
        this.report.stats.indexFiles++;
      } catch (err) {
        if (storage.isNotFound(err)) return; // removed meanwhile (superseded by a prune)
        this.damagedIndexFiles++;
        this.report.error(file, msg(err), 'kiwi repair index');
      }
      this.report.progress({ phase: 'index', done: ++done, total: files.length });
    });
    this.report.stats.blobs = this.idx.size;
    return files.length;
  }

  /** Compare the index with the packs in storage; read the headers of packs no index file lists. */
  async checkPacks(packFiles: ReadonlyArray<{ name: string; size: number }>): Promise<void> {
    const sizes = new Map(packFiles.map((f) => [f.name, f.size]));
    this.report.stats.packs = packFiles.length;
    for (const [packId, ref] of this.packRefs) {
      const size = sizes.get(packId);
      const file = handlePath({ type: 'data', name: packId });
      if (size === undefined) {
        this.report.error(
          ref.indexFile,
          `lists pack ${file} (${ref.count} blobs), which does not exist`,
          'kiwi repair index (the index then forgets the pack), then kiwi repair snapshots for the snapshots that used it',
        );
        this.loseAll(packId, file);
        continue;
      }
      const expected = ref.end + packTrailerSize(ref.count);
      if (size !== expected) {
        this.report.error(file, `is ${size} bytes but its index (${ref.indexFile}) implies ${expected}: the pack is truncated or damaged`, `kiwi repair packs ${packId.slice(0, 12)}`);
        this.loseAll(packId, file);
      }
    }
    const unlisted = packFiles.filter((f) => !this.packRefs.has(f.name));
    await eachLimit(unlisted, 8, async ({ name, size }) => {
      const file = handlePath({ type: 'data', name });
      let entries;
      try {
        entries = await this.ctx.readPackHeader(name, size);
      } catch (err) {
        if (this.ctx.storage.isNotFound(err)) return; // removed meanwhile
        if ((err as Error).name !== 'IntegrityError') throw err;
        this.report.warning(file, `is not referenced by any index file, and its header cannot be read (${msg(err)}): no index can point into it; \`kiwi prune\` removes it`);
        return;
      }
      // Its blobs are there, as every other command sees them: checked as if indexed.
      const no = this.idx.packNumber(name);
      for (const e of entries) this.idx.add(e.flags, e.id, 0, no, e.offset, e.length, e.rawLength);
      this.report.warning(
        file,
        this.damagedIndexFiles > 0
          ? `is not referenced by any readable index file; its header lists ${entries.length} blob${entries.length === 1 ? '' : 's'}, counted as present: \`kiwi repair index\` writes an index for it`
          : 'is not referenced by any index file (left by an interrupted backup or prune; its header was read and its blobs counted as present): the next backup adopts them, `kiwi prune` removes the pack when unused',
      );
    });
    this.report.progress({ phase: 'packs', done: packFiles.length, total: packFiles.length });
  }

  /**
   * Record a blob as unreadable in `file` (a pack path, or `index` when no index lists it),
   * unless the index lists another copy of it in a pack that is not known bad.
   */
  lose(type: BlobType, id: string, file: string): void {
    const key = (type === 'tree' ? 't' : 'd') + id;
    if (this.lost.has(key)) return;
    for (const e of this.idx.findAll(type, id)) {
      const pack = this.idx.get(e).pack;
      if (handlePath({ type: 'data', name: pack }) !== file && !this.badPacks.has(pack)) return;
    }
    this.lost.set(key, file);
  }

  isLost(type: BlobType, id: string): string | undefined {
    return this.lost.get((type === 'tree' ? 't' : 'd') + id);
  }

  /** Every blob the index lists in pack `packId` is lost. */
  private loseAll(packId: string, file: string): void {
    this.badPacks.add(packId);
    const ref = this.packRefs.get(packId);
    if (!ref) return;
    for (const p of ref.parts) this.lose(p[0]! & 1 ? 'tree' : 'data', p.toString('hex', 1, 1 + ID_SIZE), file);
  }
}
