/**
 * Tree saving, the last stage before the snapshot: the directories being assembled ({@link Frame}:
 * walked directories, ancestors of the sources, virtual directories), each matched with its
 * listing in the parent snapshot as it is made; once a directory's children are done, its tree
 * blob is saved (or the parent's reused as it is) and its node made.
 */
import type { BackupStats, Logger } from '../plugins/types.js';
import type { BlobId, Node, Snapshot } from '../repository/types.js';
import type { TreeLoader } from '../snapshot-ops/tree-loader.js';
import type { FileSaver } from './file-saver.js';
import { nameKey, syntheticDirNode } from './node.js';
import type { OwnerNames } from './owners.js';
import { listingOf, sameEntries, type Listing } from './parent.js';
import type { EngineRepository } from './types.js';

/** One finished entry of a directory: its raw name and node. */
export interface Item {
  key: Buffer;
  node: Node;
}

/** A directory being assembled (a walked directory, an ancestor of a source, or a virtual directory). */
export interface Frame {
  path: string;
  /** The directory's own node (without subtree yet); undefined for the root. */
  node: Node | undefined;
  key: Buffer;
  /** The directory's node in the parent snapshot. */
  parentNode: Promise<Node | undefined>;
  /** The parent snapshot's listing of this directory. */
  parentMap: Promise<Listing | undefined>;
  /** The same once it settled (`listingReady`): entries of the directory are compared at once. */
  listing: Listing | undefined;
  listingReady: boolean;
  /** Children in walk order (done, or in progress); null for skipped/failed entries. */
  children: Array<Item | null | Promise<Item | null>>;
  /** Ancestor/virtual sub-directories by name, assembled after the walk. */
  subframes: Map<string, Frame>;
  /** Skipped by a plug-in: children are discarded. */
  skipped: boolean;
}

/** What the tree saver needs of the run. */
export interface TreeSaverContext {
  readonly repo: EngineRepository;
  readonly stats: BackupStats;
  readonly owners: OwnerNames;
  readonly log: Logger | undefined;
  readonly signal: AbortSignal;
  /** Saves the tree blobs. */
  readonly saver: Pick<FileSaver, 'saveTreeBlob'>;
  /** The parent snapshot's trees, read ahead while the walk goes on. */
  readonly parentTrees: TreeLoader;
  recordError(path: string, message: string): void;
  guard<T>(p: Promise<T>): Promise<T>;
}

/** Frames and their trees for one backup run; see the module comment. */
export class TreeSaver {
  constructor(private readonly ctx: TreeSaverContext) {}

  /** The root frame, mirroring '/', matched with the root tree of the parent snapshot (if any). */
  rootFrame(parent: Snapshot | undefined): Frame {
    const root = this.newFrame('/', Buffer.alloc(0), undefined, undefined);
    if (parent) this.ctx.parentTrees.want([parent.tree]);
    root.parentMap = parent ? this.loadListing(parent.tree) : Promise.resolve(undefined);
    this.trackListing(root);
    return root;
  }

  async loadListing(id: BlobId | undefined): Promise<Listing | undefined> {
    if (id === undefined) return undefined;
    try {
      const tree = this.ctx.parentTrees.takeLoaded(id) ?? (await this.ctx.parentTrees.take(id));
      return listingOf(id, tree);
    } catch (err) {
      this.ctx.log?.warn(`parent tree ${id} could not be loaded, its files are read again: ${(err as Error).message}`);
      return undefined;
    }
  }

  newFrame(path: string, key: Buffer, node: Node | undefined, parent: Frame | undefined): Frame {
    const parentNode = parent
      ? parent.listingReady
        ? Promise.resolve(parent.listing?.byName.get(nameKey(key)))
        : parent.parentMap.then((m) => m?.byName.get(nameKey(key)))
      : Promise.resolve(undefined);
    const parentMap = parent
      ? parentNode.then((n) => (n && n.type === 'dir' ? this.loadListing(n.subtree) : undefined))
      : Promise.resolve(undefined);
    const frame: Frame = { path, node, key, parentNode, parentMap, listing: undefined, listingReady: false, children: [], subframes: new Map(), skipped: false };
    this.trackListing(frame);
    // parentNode is awaited later; keep it from being flagged as unhandled meanwhile.
    parentNode.catch(() => undefined);
    return frame;
  }

  /** Records the frame's listing once it settled (see {@link Frame.listingReady}). */
  trackListing(frame: Frame): void {
    const p = frame.parentMap;
    p.then(
      (l) => {
        if (frame.parentMap !== p) return;
        frame.listing = l;
        frame.listingReady = true;
      },
      () => undefined,
    );
  }

  /** Waits for a directory's children, saves its tree and returns its node. */
  async finishFrame(frame: Frame): Promise<Item> {
    for (const sub of frame.subframes.values()) frame.children.push(this.ctx.guard(this.finishFrame(sub)));
    const items = (await Promise.all(frame.children)).filter((i): i is Item => i !== null);
    items.sort((a, b) => Buffer.compare(a.key, b.key));
    const nodes: Node[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i > 0 && items[i - 1]!.key.equals(item.key)) {
        this.ctx.recordError(joinPath(frame.path, item.node.name), 'two entries with the same name; the later one is left out');
        continue;
      }
      nodes.push(item.node);
    }
    this.ctx.signal.throwIfAborted();
    // The same entries as in the parent snapshot: its tree blob is this one (when it is still stored).
    const listing = frame.listingReady ? frame.listing : await frame.parentMap.catch(() => undefined);
    const id = listing && sameEntries(listing, nodes) && this.ctx.repo.hasBlob('tree', listing.id) ? listing.id : await this.ctx.saver.saveTreeBlob({ nodes });
    const node: Node = frame.node ? { ...frame.node, subtree: id } : this.rootNode(id);
    if (frame.node) {
      const prev = await frame.parentNode;
      if (!prev) this.ctx.stats.dirsNew++;
      else if (prev.subtree === id) this.ctx.stats.dirsUnmodified++;
      else this.ctx.stats.dirsChanged++;
    }
    return { key: frame.key, node };
  }

  rootNode(id: BlobId): Node {
    return { ...syntheticDirNode(Buffer.alloc(0), 0o755, this.ctx.owners), subtree: id };
  }
}

function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
