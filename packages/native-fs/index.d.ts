/** Sets atime/mtime of an open descriptor, exact to the nanosecond (futimens). Times: ns since the epoch. */
export function futimensSync(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
/** Like `futimensSync`, on libuv's threadpool. */
export function futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
/** Sets atime/mtime of a path without following a final symlink (utimensat with AT_SYMLINK_NOFOLLOW). */
export function lutimensSync(path: Buffer | string, atimeNs: bigint, mtimeNs: bigint): void;
/** Like `lutimensSync`, on libuv's threadpool. */
export function lutimens(path: Buffer | string, atimeNs: bigint, mtimeNs: bigint): Promise<void>;

/** Whether this build has an extended-attribute API (Linux, macOS); elsewhere the xattr calls throw ENOTSUP. */
export const xattrSupported: boolean;
/**
 * Every extended attribute of `path` (a final symlink is not followed), as a flat list
 * `[name, value, name, value, …]`. A value is a Buffer, or a number: its size (>= 0) when it is
 * larger than `maxValue` (then not read), or a negated errno (< 0) when reading it failed.
 * Attributes removed meanwhile are left out. Past `maxCount` names, the first `maxCount` are
 * returned and the array's `truncated` property holds the total. A name list longer than
 * `maxListBytes` throws E2BIG. Defaults: 64 KiB, 1024, 1 MiB.
 */
export function lgetxattrsSync(
  path: Buffer | string,
  maxValue?: number,
  maxCount?: number,
  maxListBytes?: number,
): Array<Buffer | number> & { truncated?: number };
/** The names of `path`'s extended attributes (llistxattr). */
export function llistxattrSync(path: Buffer | string): Buffer[];
/** Sets one extended attribute of a path, never following a final symlink (lsetxattr). */
export function lsetxattrSync(path: Buffer | string, name: Buffer | string, value: Buffer): void;
/** Sets one extended attribute of an open descriptor (fsetxattr). */
export function fsetxattrSync(fd: number, name: Buffer | string, value: Buffer): void;
/** Removes one extended attribute of a path (lremovexattr). */
export function lremovexattrSync(path: Buffer | string, name: Buffer | string): void;

/**
 * mknod(2): `mode` holds the file type (fs.constants.S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK) and the
 * permission bits (the umask applies); `dev` the device number as `stat` reports it (0n otherwise).
 */
export function mknodSync(path: Buffer | string, mode: number, dev: bigint): void;
/** lseek SEEK_DATA: the first data byte at or after `offset`, or -1 when there is none. ENOTSUP without SEEK_DATA. */
export function seekDataSync(fd: number, offset: number): number;
/** lseek SEEK_HOLE: the first hole at or after `offset` (the end of the file is one), or -1 past the end. */
export function seekHoleSync(fd: number, offset: number): number;

/**
 * Writes a whole file in one job on libuv's threadpool: open(`tmp`, O_WRONLY|O_CREAT|O_EXCL|
 * O_NOFOLLOW, `mode` & 0o777), write all of `data` (null: empty), fchown(`uid`, `gid`) when
 * `uid` >= 0, fchmod(`chmodMode`) when >= 0, futimens (atime = mtime = `mtimeNs`), close, and
 * rename(`tmp`, `final`). On failure the temporary file is removed and the promise rejects with
 * an fs-like error (`code`, `syscall`, `path`). `data` must not change until the promise settles.
 */
export function writeFile(
  tmp: Buffer | string,
  final: Buffer | string,
  data: Buffer | null,
  mode: number,
  chmodMode: number,
  uid: number,
  gid: number,
  mtimeNs: bigint,
): Promise<void>;
/**
 * Several `writeFile`s in one threadpool job, one after another (one wake-up of a pool thread for
 * the lot): each entry is `[tmp, final, data, mode, chmodMode, uid, gid, mtimeNs]` with Buffer
 * paths. Resolves with one entry per file: null, or its error (the others are written anyway).
 */
export function writeFiles(
  files: Array<[tmp: Buffer, final: Buffer, data: Buffer | null, mode: number, chmodMode: number, uid: number, gid: number, mtimeNs: bigint]>,
): Promise<Array<(Error & { code?: string; syscall?: string; path?: string }) | null>>;
/**
 * Ends the process with `code` (0..255) at once (`_exit`): no exit handlers, no clean-up. Unlike
 * `process.exit`, it does not wait for libuv's threadpool, so a pool thread blocked in a system call
 * (a hung NFS mount) cannot keep the process alive. Absent in an addon built before it.
 */
export function exitNow(code: number): never;
/**
 * Fixes glibc's malloc thresholds (`mallopt` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD): true when set,
 * false where malloc is not glibc's. glibc otherwise raises both each time a mapped block is freed
 * (up to 32 and 64 MiB), after which up to 64 MiB of freed memory can stay in the process. Absent in
 * an addon built before it.
 */
export function mallocLimits(mmapThreshold: number, trimThreshold: number): boolean;
/**
 * `writeFiles` in the directory open as `dirFd`: `tmp` and `final` are names in it (no '/'),
 * created, renamed and removed with openat/renameat/unlinkat, so no path is looked up. The
 * caller keeps `dirFd` open until the promise settles.
 */
export function writeFilesAt(
  dirFd: number,
  files: Array<[tmp: Buffer, final: Buffer, data: Buffer | null, mode: number, chmodMode: number, uid: number, gid: number, mtimeNs: bigint]>,
): Promise<Array<(Error & { code?: string; syscall?: string; path?: string }) | null>>;

/**
 * Whether `gcmOpen` and `hmacSha256` are present: the addon found OpenSSL's functions in the process
 * at load time (looked up by name, all in one object; OpenSSL 1.1.0 or newer) and they passed
 * known-answer tests. False in an addon built before them, or when OpenSSL cannot be found.
 */
export const aeadAvailable: boolean;
/** Why `aeadAvailable` is false (absent when it is true). */
export const aeadUnavailableReason: string | undefined;
/**
 * AES-256-GCM decryption on libuv's threadpool. `src` is `nonce(12) ‖ ciphertext ‖ tag(16)`; the
 * plaintext (`src.length - 28` bytes) is written at the start of `dst`. Resolves true when the tag
 * verifies; false when it does not, and then those bytes of `dst` are zeroed. `dst` may overlap
 * `src` if it starts at or before the ciphertext (`src` offset 12): e.g. `dst` = `src`, the
 * plaintext then lands where the nonce was. Rejects with a TypeError (nothing written) when `key`
 * is not 32 bytes, `src` is shorter than 28 bytes, `dst` is too short, an argument is not a
 * Uint8Array, or `dst` overlaps `src` starting after its ciphertext start; with an Error (code
 * ERR_KIWI_CRYPTO, `dst` zeroed) when OpenSSL fails. The key is copied at the call; `src` and
 * `dst` must not change, nor be detached, until the promise settles. Only when `aeadAvailable`.
 */
export const gcmOpen: ((key: Uint8Array, src: Uint8Array, dst: Uint8Array) => Promise<boolean>) | undefined;
/**
 * HMAC-SHA-256 of `data` under a 32-byte `key` on libuv's threadpool; the 32 bytes are written to
 * the start of `out` (at least 32 bytes) when the job is done. Rejects with a TypeError on bad
 * arguments. `data` must not change until the promise settles. Only when `aeadAvailable`.
 */
export const hmacSha256: ((key: Uint8Array, data: Uint8Array, out: Uint8Array) => Promise<void>) | undefined;
/**
 * AES-256-GCM encryption on the calling thread, with no allocation per call: writes
 * `nonce(12) ‖ ciphertext ‖ tag(16)` (`src.length + 28` bytes) into `dst` at `dstOffset` (default 0)
 * and returns that length. The nonce must be fresh for every message under a key (the caller's
 * job). `dst` may overlap `src` in any way, e.g. the plaintext already at `dstOffset + 12` (then
 * encrypted in place), or anywhere else: the result is as if `src` had been copied away first (an
 * overlapping `src` is then overwritten). Throws a TypeError when `key` is not 32 bytes, `nonce` not
 * 12, or an argument is not a Uint8Array; a RangeError (nothing written) when `dstOffset` is not an
 * integer within `dst` or the output does not fit; an Error (code ERR_KIWI_CRYPTO, the output's
 * bytes zeroed) when OpenSSL fails. Only when `aeadAvailable`; absent from addons built before it.
 */
export const gcmSealSync: ((key: Uint8Array, nonce: Uint8Array, src: Uint8Array, dst: Uint8Array, dstOffset?: number) => number) | undefined;
/**
 * AES-256-GCM decryption on the calling thread, with no allocation per call: `src` is
 * `nonce(12) ‖ ciphertext ‖ tag(16)`; the plaintext (`src.length - 28` bytes) is written at the start
 * of `dst`. True when the tag verifies; false when it does not, and then those bytes of `dst` are
 * zeroed (as with `gcmOpen`). `dst` may overlap `src` in any way (e.g. `dst` = `src`: the plaintext
 * lands where the nonce was): the result is as if `src` had been copied away first. Throws a
 * TypeError when `key` is not 32 bytes or an argument is not a Uint8Array; a RangeError (nothing
 * written) when `src` is shorter than 28 bytes or `dst` shorter than the plaintext; an Error (code
 * ERR_KIWI_CRYPTO, the plaintext's bytes zeroed) when OpenSSL fails. Only when `aeadAvailable`.
 */
export const gcmOpenSync: ((key: Uint8Array, src: Uint8Array, dst: Uint8Array) => boolean) | undefined;
/**
 * HMAC-SHA-256 of `data` under a 32-byte `key` on the calling thread, written to the first 32 bytes
 * of `out` (which may overlap `data`). Throws a TypeError on a bad key or a non-Uint8Array, a
 * RangeError when `out` is shorter than 32 bytes. Only when `aeadAvailable`.
 */
export const hmacSha256Sync: ((key: Uint8Array, data: Uint8Array, out: Uint8Array) => void) | undefined;
