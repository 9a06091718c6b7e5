/**
 * The backup pipeline.
 *
 * - Tree shape: the root tree mirrors absolute paths (sources `/usr/share` and
 *   `/etc` give a root with `usr` → `share` and `etc`); ancestors of a source
 *   get their real lstat metadata. Virtual files from plug-ins (`ctx.addFile`)
 *   sit at the top of the root tree under their relative path (virtual
 *   directories: mode 0700, mtime = now); a top-level name that clashes with a
 *   backed-up path is an error naming it.
 * - Change detection: the parent snapshot's trees are walked in step with the
 *   file system; a file with the same type, size, mtime, ctime and inode (and
 *   whose blobs are all still indexed) reuses the parent's content list without
 *   being read, and is done without a promise when its directory's parent
 *   listing is there (symlinks and special files too: a synchronous readlink).
 *   A directory whose entries equal its parent tree's reuses that tree blob as
 *   it is (no encoding, hashing or saving; see parent.ts).
 * - Concurrency: the walk runs on the main thread; up to `concurrency` files
 *   (default 8) are read at once and their nodes are put back in walk order;
 *   large files keep one extra chunk save in flight (copied into a pooled
 *   buffer, because chunker buffers are only valid until it resumes). Small
 *   files (≤ minSize) are read with synchronous calls, falling back to async
 *   calls when the disk is slow.
 * - Sockets, FIFOs and devices are recorded (metadata, `rdev`) and never opened.
 *   Hard links are stored as separate files (their content dedupes).
 */
export { runBackup, BackupInterruptedError, PROGRAM_VERSION, type BackupOptions, type BackupResult, type ErrorWithBackupResult } from './backup.js';
export type { EngineRepository, EntryError, LiveProgress, ProgressFn } from './types.js';
export { scanSources, type ScanOptions, type ScanTotals } from './scan.js';
