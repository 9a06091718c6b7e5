/**
 * Limits of every decoder of repository data (docs/security.md lists them with their reasons).
 * Everything read from a repository is untrusted, even after it authenticates: a bug, an old
 * version or a party holding the storage with the password may have written it. A decoder
 * checks each size or count against these before it allocates or loops for it.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------- blobs and packs

/** Largest plaintext of a data blob. Kiwi's chunks are at most the chunker's `maxSize` (≤ this). */
export const MAX_DATA_BLOB_SIZE = 64 * MiB;
/**
 * Largest plaintext of a tree blob (the JSON of one directory): about 300,000 entries with
 * typical metadata, or one file of about 1,000,000 chunks (1 TiB at the default 1 MiB average).
 * A writer refuses to store a larger tree.
 */
export const MAX_TREE_BLOB_SIZE = 64 * MiB;
/** Largest pack file (the format's offsets are u32). */
export const MAX_PACK_SIZE = 2 ** 32 - 1;

// ---------------------------------------------------------------- metadata files (decompressed bodies)

/** Largest decompressed snapshot body. Kiwi's are a few KiB. */
export const MAX_SNAPSHOT_SIZE = 16 * MiB;
/**
 * An index file body may be at most this many times its stored size (an index body is mostly
 * random blob ids and compresses by less than 2×)…
 */
export const MAX_INDEX_RATIO = 16;
/** …and at least this much (small files), and never more than {@link MAX_INDEX_BODY_SIZE}. */
export const MIN_INDEX_BODY_LIMIT = 4 * MiB;
/** Largest decompressed index body: about 11 million blobs. */
export const MAX_INDEX_BODY_SIZE = 512 * MiB;

/** The decompressed size an index file of `storedSize` bytes may have. */
export function indexBodyLimit(storedSize: number): number {
  return Math.min(MAX_INDEX_BODY_SIZE, Math.max(MIN_INDEX_BODY_LIMIT, storedSize * MAX_INDEX_RATIO));
}

/**
 * Largest encrypted pack header. An index file lists each of its packs in full (format §7), so a
 * pack's entries must fit in one index body; its header (1 + 45·n + 28 bytes) is smaller than the
 * body listing the same pack (16 + 36 + 45·n). A longer header describes a pack no index can list.
 */
export const MAX_PACK_HEADER_SIZE = MAX_INDEX_BODY_SIZE;

// ---------------------------------------------------------------- stored files (checked before they are loaded)

/**
 * What a stored metadata file may take beyond its body: zstd's frame and block headers (3 bytes
 * per 128 KiB block when the body does not compress) and the cipher's 28 bytes, with room to spare.
 */
export const METADATA_FILE_OVERHEAD = 64 * KiB;
/** Largest stored snapshot file: a body of {@link MAX_SNAPSHOT_SIZE} and its overhead. */
export const MAX_SNAPSHOT_FILE_SIZE = MAX_SNAPSHOT_SIZE + METADATA_FILE_OVERHEAD;
/** Largest stored index file: a body of {@link MAX_INDEX_BODY_SIZE} and its overhead. */
export const MAX_INDEX_FILE_SIZE = MAX_INDEX_BODY_SIZE + METADATA_FILE_OVERHEAD;
/** Largest key file (JSON, not compressed). Kiwi's are about 400 bytes. */
export const MAX_KEY_FILE_SIZE = 64 * KiB;
/** Largest lock file (stored bytes). Kiwi's are about 150 bytes. */
export const MAX_LOCK_FILE_SIZE = 64 * KiB;
/** Largest `config` file (stored bytes). */
export const MAX_CONFIG_FILE_SIZE = 64 * KiB;

// ---------------------------------------------------------------- key derivation

/** scrypt memory (128 · N · r bytes) a key file may ask for: 256 MiB (Kiwi's default uses 32 MiB). */
export const MAX_SCRYPT_MEMORY = 256 * MiB;
/** scrypt work (N · r · p) a key file may ask for: 64× Kiwi's default (about 6 s instead of 0.1 s). */
export const MAX_SCRYPT_WORK = 2 ** 24;

// ---------------------------------------------------------------- config

/** Chunk size bounds a config may set. */
export const MIN_CHUNK_SIZE = 64;
export const MAX_CHUNK_SIZE = MAX_DATA_BLOB_SIZE;
/** Pack size a config may set (the writer's target; a pack may exceed it by one blob). */
export const MIN_PACK_TARGET = 1 * KiB;
export const MAX_PACK_TARGET = 1024 * MiB;

// ---------------------------------------------------------------- trees

/** Entries in one tree (the size cap usually binds first). */
export const MAX_TREE_ENTRIES = 1_000_000;
/** Directory nesting below a snapshot's root tree (checked by traversals: check, ls, diff, restore). */
export const MAX_TREE_DEPTH = 1024;
/** Bytes of an entry name (raw bytes; file systems allow 255). */
export const MAX_NAME_BYTES = 4 * KiB;
/** Bytes of a symlink target (PATH_MAX). */
export const MAX_LINK_TARGET_BYTES = 4 * KiB;
/** Characters of a user or group name. */
export const MAX_OWNER_NAME_LENGTH = 256;
/** Bytes of one node's plug-in `metadata`, as JSON. */
export const MAX_NODE_METADATA_BYTES = 64 * KiB;
/**
 * Trees larger than this are scanned before JSON parsing: at most one `{` or `[` per
 * {@link TREE_BYTES_PER_CONTAINER} bytes and one `,` per {@link TREE_BYTES_PER_COMMA} bytes
 * (Kiwi's trees have about one per 60 and one per 15). `[{},{},…]` would otherwise cost ~23 bytes
 * of heap per byte of JSON; with the scan, parsing costs at most ~6.
 */
export const TREE_DENSITY_CHECK_FROM = 1 * MiB;
export const TREE_BYTES_PER_CONTAINER = 32;
export const TREE_BYTES_PER_COMMA = 8;

// ---------------------------------------------------------------- snapshots

/** Source paths in one snapshot. */
export const MAX_SNAPSHOT_PATHS = 65_536;
/** Tags (and excludes) in one snapshot. */
export const MAX_SNAPSHOT_TAGS = 4_096;
/** Characters of a path, tag, exclude pattern, host or user name in a snapshot. */
export const MAX_SNAPSHOT_STRING = 4 * KiB;

// ---------------------------------------------------------------- reports

/** Invalid entries a loaded tree lists (`tree.invalid`); the rest are only counted (`invalidCount`). */
export const MAX_REPORTED_ERRORS = 1000;
