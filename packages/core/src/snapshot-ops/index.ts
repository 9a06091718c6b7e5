export {
  listTree,
  lookupPath,
  diffSnapshots,
  splitSnapshotPath,
  type ListedNode,
  type SnapshotChange,
  type ChangeKind,
} from './snapshot-ops.js';
