/**
 * The repository engine's public shapes: snapshots, trees and nodes, as stored
 * (JSON, encrypted) in the repository. `docs/repository-format.md` is the
 * normative description; keep the two in step.
 */

/** A blob id: lowercase hex of HMAC-SHA-256(plaintext) under the repository's id key. 64 chars. */
export type BlobId = string;
/** `data` blobs hold file content; `tree` blobs hold a directory listing (a {@link Tree}). */
export type BlobType = 'data' | 'tree';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

/** One entry of a directory, as stored in a tree blob. */
export interface Node {
  /** The entry name, when it is valid UTF-8. */
  name: string;
  /** The raw name bytes, base64, when the name is not valid UTF-8 (then `name` is a lossy display form). */
  nameRaw?: string;
  type: NodeType;
  /** Permission bits and setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  /** Modification time, nanoseconds since the epoch, as a decimal string. */
  mtimeNs: string;
  /** Status-change time, nanoseconds since the epoch (change detection only). */
  ctimeNs: string;
  /** Inode and device (change detection only). */
  inode: string;
  dev: string;
  /** Bytes of content (files), 0 otherwise. */
  size: number;
  /** Content blob ids in order (files). An empty file has `[]`. */
  content?: BlobId[];
  /** The tree blob of the directory's entries (dirs). */
  subtree?: BlobId;
  /** Symlink target (raw bytes base64 in `linkTargetRaw` when not UTF-8). */
  linkTarget?: string;
  linkTargetRaw?: string;
  /** Device number for chardev/blockdev (recorded, never opened). */
  rdev?: string;
  /** Data attached by plug-ins in `onFile`. */
  metadata?: Record<string, unknown>;
}

/** A directory listing; nodes are sorted by name bytes. */
export interface Tree {
  nodes: Node[];
}

export interface SnapshotSummary {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirsNew: number;
  dirsChanged: number;
  dirsUnmodified: number;
  errors: number;
  bytesRead: number;
  totalFiles: number;
  totalBytes: number;
  blobsNew: number;
  dataAdded: number;
  dataAddedPacked: number;
  startTime: string;
  endTime: string;
}

/** A snapshot, stored as `snapshots/<id>`. */
export interface Snapshot {
  /** ISO 8601 time the backup started. */
  time: string;
  hostname: string;
  username: string;
  uid?: number;
  gid?: number;
  /** Absolute source paths, sorted. */
  paths: string[];
  tags: string[];
  /** Root tree: one node per source path, named by its full path with '/' replaced... see format doc. */
  tree: BlobId;
  /** The snapshot this one was compared with for change detection. */
  parent?: string;
  excludes?: string[];
  summary?: SnapshotSummary;
  programVersion: string;
  /** Per-plug-in metadata (`ctx.backup.metadata`). */
  plugins?: Record<string, unknown>;
  /** true when some sources could not be read. */
  partial?: boolean;
}
