export {
  listTree,
  lookupPath,
  diffSnapshots,
  splitSnapshotPath,
  type ListedNode,
  type SnapshotChange,
  type ChangeKind,
  type TreeWalkError,
  type TreeWalkOptions,
} from './snapshot-ops.js';
