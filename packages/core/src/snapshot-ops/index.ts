export {
  listTree,
  listTreeChunks,
  lookupPath,
  diffSnapshots,
  splitSnapshotPath,
  type ListedNode,
  type SnapshotChange,
  type ChangeKind,
  type TreeWalkError,
  type TreeWalkOptions,
} from './snapshot-ops.js';
export {
  selectSnapshot,
  selectSnapshots,
  matchesSelection,
  describeSelection,
  isEmptySelection,
  type SnapshotSelection,
  type SelectedSnapshot,
  type SnapshotRef,
  type SnapshotLister,
  type SelectOptions,
} from './select.js';
export {
  readContentInOrder,
  OrderedContentError,
  type OrderedContentSource,
  type OrderedItem,
  type OrderedPiece,
  type OrderedContentOptions,
} from './ordered-content.js';
export { SnapshotFinder, type FindOptions, type FindMatch, type FindStats, type FindSource } from './find.js';
