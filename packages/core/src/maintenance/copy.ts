/**
 * `kiwi copy`: copy snapshots from one repository into another (e.g. local → S3 for an
 * off-site copy). Blobs are read from the source (verified as every read is), stored in the
 * destination under its own keys, and deduplicated against what the destination has.
 *
 * Blob ids are keyed per repository (HMAC under its id key), so a blob's id in the
 * destination is computed from its plaintext — unless the destination was created with
 * `init --copy-chunker-params`, which gives it the source's chunker and id key: then ids are
 * the same in both, and data blobs the destination already has are skipped without being read.
 * (The trees of a snapshot to copy are always read: a tree the destination has does not say that
 * what it references is there too.)
 *
 * A copied snapshot records the source snapshot's id (or the id it was first written under)
 * as `original`; a snapshot whose original is already in the destination is not copied
 * again, so running a copy twice copies nothing the second time. A destination snapshot that was
 * repaired there (`repair snapshots` after damage in the destination) does not count: the
 * snapshot is copied again, which stores the blobs the destination lost.
 */
import { IntegrityError } from '../repository/errors.js';
import { isBlobId } from '../repository/index-table.js';
import { MAX_SNAPSHOT_SIZE, MAX_TREE_DEPTH } from '../repository/limits.js';
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
  // (A destination snapshot with malformed copy markers is no copy of anything: see copyMarkersProblem.
  // Nor is one whose file the readers refuse: skipped here — at worst its source snapshot is copied again —
  // rather than stopping every copy into the destination until it is repaired; `check` reports it.)
  const destSnapshots = await dest.listSnapshots({ onError: () => undefined });
  for (const { id, snapshot } of destSnapshots) if (!copyMarkersProblem(snapshot)) existing.add(snapshot.original ?? id, id, snapshot);
  const wanted = [
    ...(opts.snapshots ??
      (await source.listSnapshots({
        // A damaged snapshot file is one failure; the others are copied.
        onError: (file, err) => fail(file.replace(/^snapshots\//, ''), err),
      }))),
  ]
    .filter(({ id, snapshot }) => {
      // Malformed copy markers fail their snapshot like any damage, before they are used as keys below.
      const problem = copyMarkersProblem(snapshot);
      if (problem) fail(id, new IntegrityError(`snapshots/${id}: ${problem}`, { file: `snapshots/${id}` }));
      return !problem;
    })
    .sort((a, b) => compareTimes(a.snapshot.time, b.snapshot.time));
  existing.repairsOfSource(wanted);

  /** Source data blob id → destination id (only needed when the ids differ). */
  const dataIds = new Map<BlobId, BlobId>();
  /**
   * Source trees copied in this run (the destination has them and everything below them, stored
   * or pending until the flush before each snapshot), and the directory levels below each.
   */
  const treeIds = new Map<BlobId, BlobId>();
  const treeHeights = new Map<BlobId, number>();
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

  /** Directories nested deeper than the readers go (check, restore, ls): the snapshot fails, as damage. */
  const tooDeep = (id: BlobId) =>
    new IntegrityError(`tree ${id} of the source: directories nested deeper than ${MAX_TREE_DEPTH} levels; run \`kiwi repair snapshots\` on the source, then copy the repaired snapshot`, { blobId: id });

  /** Copy tree `id` (`depth` directory levels below the snapshot's root tree) and what is below it. */
  const copyTree = async (id: BlobId, depth: number): Promise<BlobId> => {
    // Only trees this run copied count as complete in the destination. A tree the destination
    // merely has does not: a copy or backup killed there may have stored a tree pack while the
    // pack of the data it references never arrived (packs upload side by side, and the next
    // open adopts a pack no index lists from its header), and prune keeps an unused tree in a pack
    // it does not rewrite while removing the data below it. Copying on top of such a tree would
    // save a snapshot that does not restore.
    const done = treeIds.get(id);
    if (done) {
      if (depth + treeHeights.get(id)! > MAX_TREE_DEPTH) throw tooDeep(id);
      return done;
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
    let height = 0;
    for (const node of tree.nodes) {
      if (node.type === 'file' && node.content && !sameIds) nodes.push({ ...node, content: node.content.map((c) => dataIds.get(c)!) });
      else if (node.type === 'dir' && typeof node.subtree === 'string') {
        if (depth + 1 > MAX_TREE_DEPTH) throw tooDeep(node.subtree);
        nodes.push({ ...node, subtree: await copyTree(node.subtree, depth + 1) });
        height = Math.max(height, treeHeights.get(node.subtree)! + 1);
      } else nodes.push(node);
    }
    // With shared ids the tree's bytes, and so its id, are the source's.
    let newId: BlobId;
    try {
      newId = await dest.saveTree({ nodes });
    } catch (err) {
      // Over the tree limits once encoded again (a source tree that is not Kiwi's canonical JSON
      // can grow, e.g. bytes that are not UTF-8): damage in the source, for this snapshot only.
      if (!(err instanceof RangeError)) throw err;
      throw new IntegrityError(`tree ${id} of the source cannot be copied: ${err.message}`, { blobId: id, cause: err });
    }
    treeIds.set(id, newId);
    treeHeights.set(id, height);
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
      tree = await copyTree(snapshot.tree, 0);
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
    // The copy is larger than the source's file (it names the original, and JSON encoded again
    // can grow): one over the limit could not be read in the destination, and an unreadable
    // snapshot there would stop every later copy into it.
    const size = Buffer.byteLength(JSON.stringify(copy), 'utf8');
    if (size > MAX_SNAPSHOT_SIZE) {
      fail(id, new IntegrityError(`snapshots/${id}: its copy would be ${size} bytes, more than the limit of ${MAX_SNAPSHOT_SIZE} for a snapshot`, { file: `snapshots/${id}` }));
      continue;
    }
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

  /** A destination snapshot of `original`, an unrepaired one if there is one (for a copy's `parent`, a hint). */
  any(original: string): string | undefined {
    const list = this.byOriginal.get(original);
    return (list?.find((c) => !c.repaired && !this.repairedFrom.has(c.id)) ?? list?.find((c) => !c.repaired) ?? list?.[0])?.id;
  }
}

/**
 * What is wrong with the fields a copy goes by, `original` and `repaired`, or undefined. The
 * snapshot validator does not look at them, and a source snapshot's reach the destination as they
 * are: an `original` that is not a snapshot id would never be found again (the snapshot copied on
 * every run), and a `repaired` marker whose `from` or `time` is not a string cannot be a key (JSON
 * can give an object that does not even convert to one, which would stop the whole copy).
 */
function copyMarkersProblem(s: Snapshot): string | undefined {
  // (null is taken as absent, as the code below takes it.)
  const original: unknown = s.original ?? undefined;
  if (original !== undefined && !isBlobId(original)) return 'original is not a snapshot id';
  const r: unknown = s.repaired ?? undefined;
  if (r !== undefined && (typeof r !== 'object' || typeof (r as { from?: unknown }).from !== 'string' || typeof (r as { time?: unknown }).time !== 'string')) {
    return 'repaired is not a repair marker (from and time strings)';
  }
  return undefined;
}

function repairKey(r: NonNullable<Snapshot['repaired']>): string {
  return `${r.from}\0${r.time}`;
}

/** The same repair: of the same snapshot at the same time (a copy keeps its source's marker as it is). */
function sameRepair(a: NonNullable<Snapshot['repaired']>, b: Snapshot['repaired']): boolean {
  return b !== undefined && a.from === b.from && a.time === b.time;
}
