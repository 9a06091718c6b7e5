/**
 * `kiwi copy`: copy snapshots from one repository into another (e.g. local → S3 for an
 * off-site copy). Blobs are read from the source (verified as every read is), stored in the
 * destination under its own keys, and deduplicated against what the destination has.
 *
 * Blob ids are keyed per repository (HMAC under its id key), so a blob's id in the
 * destination is computed from its plaintext — unless the destination was created with
 * `init --copy-chunker-params`, which gives it the source's chunker and id key: then ids are
 * the same in both, and blobs (and whole subtrees) the destination already has are skipped
 * without being read.
 *
 * A copied snapshot records the source snapshot's id (or the id it was first written under)
 * as `original`; a snapshot whose original is already in the destination is not copied
 * again, so running a copy twice copies nothing the second time. A destination snapshot that was
 * repaired there (`repair snapshots` after damage in the destination) does not count: the
 * snapshot is copied again, which stores the blobs the destination lost.
 */
import { IntegrityError } from '../repository/errors.js';
import type { Repository } from '../repository/repository.js';
import type { BlobId, Node, Snapshot } from '../repository/types.js';
import { invalidNodeCount, invalidNodes } from '../repository/validate.js';
import { compareTimes } from '../time-order.js';

export interface CopyOptions {
  /** The source snapshots to copy (default: all). */
  snapshots?: ReadonlyArray<{ id: string; snapshot: Snapshot }>;
  /** Called after each snapshot: its new id, or `skipped` with the destination's copy. */
  onSnapshot?: (sourceId: string, result: { id: string; skipped: boolean }) => void;
  onProgress?: (p: { snapshot: string; blobs: number; bytes: number }) => void;
  /**
   * Called for a source snapshot that cannot be copied because of damage in the source (a blob or
   * tree that cannot be read, an invalid tree, a damaged snapshot file): the copy goes on with the
   * others. (A storage that fails still stops the copy.)
   */
  onSnapshotFailed?: (sourceId: string, error: Error) => void;
}

export interface CopyResult {
  copied: Array<{ source: string; id: string }>;
  skipped: Array<{ source: string; existing: string }>;
  /** Source snapshots not copied because of damage in the source, with the reason. */
  failed: Array<{ source: string; message: string }>;
  /** Blobs stored in the destination (new there), and their plaintext bytes. */
  blobsStored: number;
  bytesStored: number;
  /** Data blobs read from the source. */
  blobsRead: number;
  /** True when both repositories share the id key (created with --copy-chunker-params). */
  sameIds: boolean;
}

export async function copySnapshots(source: Repository, dest: Repository, opts: CopyOptions = {}): Promise<CopyResult> {
  if (source.id === dest.id) throw new Error(`the source and the destination are the same repository (${dest.id.slice(0, 8)}): nothing to copy`);
  const sourceLock = await source.lock('shared');
  try {
    const destLock = await dest.lock('shared');
    try {
      return await copyLocked(source, dest, opts);
    } finally {
      await destLock.release();
    }
  } finally {
    await sourceLock.release();
  }
}

async function copyLocked(source: Repository, dest: Repository, opts: CopyOptions): Promise<CopyResult> {
  await Promise.all([source.loadIndex(), dest.loadIndex({ verifyPacks: true })]);
  // New packs are built in temporary files, as prune builds them: a copy's memory stays small
  // however many packs are being uploaded at once.
  await dest.spillPacks();
  const sameIds = source.internals().keys.idKey.equals(dest.internals().keys.idKey);
  const result: CopyResult = { copied: [], skipped: [], failed: [], blobsStored: 0, bytesStored: 0, blobsRead: 0, sameIds };
  const fail = (source: string, err: Error) => {
    result.failed.push({ source, message: err.message });
    opts.onSnapshotFailed?.(source, err);
  };
  const existing = new DestinationCopies();
  for (const { id, snapshot } of await dest.listSnapshots()) existing.add(snapshot.original ?? id, id, snapshot);
  const wanted = [
    ...(opts.snapshots ??
      (await source.listSnapshots({
        // A damaged snapshot file is one failure; the others are copied.
        onError: (file, err) => fail(file.replace(/^snapshots\//, ''), err),
      }))),
  ].sort((a, b) => compareTimes(a.snapshot.time, b.snapshot.time));
  existing.repairsOfSource(wanted);
  // A destination whose copies were repaired lost blobs, also below trees it still has: in a run
  // that copies such a snapshot again, a tree the destination has is not taken as complete.
  const trustTrees = sameIds && !wanted.some(({ id, snapshot }) => existing.repairedHere(snapshot.original ?? id, snapshot));

  /** Source data blob id → destination id (only needed when the ids differ). */
  const dataIds = new Map<BlobId, BlobId>();
  const treeIds = new Map<BlobId, BlobId>();
  let current = '';

  const copyData = async (ids: BlobId[]): Promise<void> => {
    const todo = [...new Set(ids)].filter((id) => (sameIds ? !dest.hasBlob('data', id) : !dataIds.has(id)));
    if (todo.length === 0) return;
    await source.loadBlobs(
      'data',
      todo,
      async (id, data, error) => {
        if (!data) throw error ?? new Error(`data blob ${id} could not be read from ${source.location}`);
        result.blobsRead++;
        const destId = sameIds ? id : dest.blobId(data);
        const r = await dest.saveBlob('data', data, destId);
        if (!sameIds) dataIds.set(id, destId);
        if (!r.known) {
          result.blobsStored++;
          result.bytesStored += data.byteLength;
        }
        opts.onProgress?.({ snapshot: current, blobs: result.blobsStored, bytes: result.bytesStored });
      },
      { transient: true },
    );
  };

  const copyTree = async (id: BlobId): Promise<BlobId> => {
    const done = treeIds.get(id);
    if (done) return done;
    // With shared ids, a tree the destination has comes with everything below it (trees are
    // written after what they reference, and the destination was checked for missing packs),
    // unless the destination lost blobs since (see trustTrees).
    if (trustTrees && dest.hasBlob('tree', id)) {
      treeIds.set(id, id);
      return id;
    }
    const tree = await source.loadTree(id);
    // Entries the tree validator refused are not in tree.nodes: a copy would lose them silently.
    const invalid = invalidNodes(tree)[0];
    if (invalid) {
      throw new IntegrityError(
        `tree ${id} of the source has ${invalidNodeCount(tree)} invalid entr${invalidNodeCount(tree) === 1 ? 'y' : 'ies'} (entry ${invalid.index}${invalid.name !== undefined ? `, ${JSON.stringify(invalid.name)}` : ''}: ${invalid.reason}); run \`kiwi check\` and \`kiwi repair snapshots\` on the source, then copy the repaired snapshot`,
        { blobId: id },
      );
    }
    await copyData(tree.nodes.flatMap((n) => (n.type === 'file' ? (n.content ?? []) : [])));
    const nodes: Node[] = [];
    for (const node of tree.nodes) {
      if (node.type === 'file' && node.content && !sameIds) nodes.push({ ...node, content: node.content.map((c) => dataIds.get(c)!) });
      else if (node.type === 'dir' && typeof node.subtree === 'string') nodes.push({ ...node, subtree: await copyTree(node.subtree) });
      else nodes.push(node);
    }
    // With shared ids the tree's bytes, and so its id, are the source's.
    const newId = await dest.saveTree({ nodes });
    treeIds.set(id, newId);
    return newId;
  };

  const copiedIds = new Map<string, string>();
  for (const { id, snapshot } of wanted) {
    const key = snapshot.original ?? id;
    const already = existing.copyOf(key, snapshot);
    if (already) {
      result.skipped.push({ source: id, existing: already });
      opts.onSnapshot?.(id, { id: already, skipped: true });
      continue;
    }
    current = id;
    let tree: BlobId;
    try {
      tree = await copyTree(snapshot.tree);
    } catch (err) {
      // Damage in the source stops this snapshot, not the copy (what was stored for it is unused data).
      if (!(err instanceof IntegrityError) && (err as Error).name !== 'IntegrityError' && (err as Error).name !== 'BlobNotFoundError') throw err;
      fail(id, err as Error);
      continue;
    }
    await dest.flush();
    const { parent, ...rest } = snapshot;
    const mappedParent = parent ? (copiedIds.get(parent) ?? existing.any(parent)) : undefined;
    const copy: Snapshot = { ...rest, tree, original: key, ...(mappedParent ? { parent: mappedParent } : {}) };
    const newId = await dest.saveSnapshot(copy);
    copiedIds.set(id, newId);
    existing.add(key, newId, copy);
    result.copied.push({ source: id, id: newId });
    opts.onSnapshot?.(id, { id: newId, skipped: false });
  }
  return result;
}

/**
 * The destination's snapshots, by the source snapshot they copy (their `original`). A copy that
 * was repaired in the destination — it has a `repaired` marker the source snapshot does not have —
 * lost files the source still has: it is no copy of the source snapshot any more. (A source
 * snapshot repaired in the source is copied with its marker, and that copy counts.)
 */
class DestinationCopies {
  private readonly byOriginal = new Map<string, Array<{ id: string; repaired: Snapshot['repaired'] }>>();
  /**
   * Destination snapshots that a repair in the destination started from (`repaired.from`): damaged
   * there, and kept only because `repair snapshots` ran without `--forget`. They are no copies.
   */
  private readonly repairs = new Map<string, string>();
  private repairedFrom = new Set<string>();

  add(original: string, id: string, snapshot: Snapshot): void {
    const list = this.byOriginal.get(original);
    const copy = { id, repaired: snapshot.repaired };
    if (list) list.push(copy);
    else this.byOriginal.set(original, [copy]);
    if (snapshot.repaired) {
      this.repairs.set(repairKey(snapshot.repaired), snapshot.repaired.from);
      this.repairedFrom.add(snapshot.repaired.from);
    }
  }

  /**
   * A repair the source has too was made there and copied (its `from` names a source snapshot), not
   * made here: the destination snapshot of that id, if any (a copy of a copy keeps its id), stays a copy.
   */
  repairsOfSource(source: Iterable<{ snapshot: Snapshot }>): void {
    for (const { snapshot } of source) if (snapshot.repaired) this.repairs.delete(repairKey(snapshot.repaired));
    this.repairedFrom = new Set(this.repairs.values());
  }

  /** The destination's copy of source snapshot `snapshot` (first written as `original`), if it has one. */
  copyOf(original: string, snapshot: Snapshot): string | undefined {
    return this.byOriginal.get(original)?.find((c) => !this.repairedFrom.has(c.id) && (!c.repaired || sameRepair(c.repaired, snapshot.repaired)))?.id;
  }

  /** True when the destination has copies of the snapshot, but only ones repaired there. */
  repairedHere(original: string, snapshot: Snapshot): boolean {
    return this.byOriginal.has(original) && this.copyOf(original, snapshot) === undefined;
  }

  /** A destination snapshot of `original`, an unrepaired one if there is one (for a copy's `parent`, a hint). */
  any(original: string): string | undefined {
    const list = this.byOriginal.get(original);
    return (list?.find((c) => !c.repaired && !this.repairedFrom.has(c.id)) ?? list?.find((c) => !c.repaired) ?? list?.[0])?.id;
  }
}

function repairKey(r: NonNullable<Snapshot['repaired']>): string {
  return `${r.from}\0${r.time}`;
}

/** The same repair: of the same snapshot at the same time (a copy keeps its source's marker as it is). */
function sameRepair(a: NonNullable<Snapshot['repaired']>, b: Snapshot['repaired']): boolean {
  return b !== undefined && a.from === b.from && a.time === b.time;
}
