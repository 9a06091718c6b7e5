/**
 * The optional `@kiwi-backup/native-fs` addon (nanosecond times, extended
 * attributes, mknod, SEEK_DATA/SEEK_HOLE, blob crypto on the threadpool and
 * on this thread), loaded once. Kiwi works without
 * it (Windows, or no C compiler at install): callers fall back or report what
 * they could not do, naming {@link nativeFsUnavailableReason}.
 * `KIWI_NATIVE_FS=off` in the environment makes Kiwi behave as without it.
 */
import { createRequire } from 'node:module';

/** The API of `@kiwi-backup/native-fs` that core uses. */
export interface NativeFs {
  futimensSync(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
  lutimens(path: Buffer, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
  readonly xattrSupported: boolean;
  lgetxattrsSync(path: Buffer, maxValue: number, maxCount: number, maxListBytes: number): Array<Buffer | number> & { truncated?: number };
  llistxattrSync(path: Buffer): Buffer[];
  lsetxattrSync(path: Buffer, name: Buffer, value: Buffer): void;
  fsetxattrSync(fd: number, name: Buffer, value: Buffer): void;
  lremovexattrSync(path: Buffer, name: Buffer): void;
  mknodSync(path: Buffer, mode: number, dev: bigint): void;
  seekDataSync(fd: number, offset: number): number;
  seekHoleSync(fd: number, offset: number): number;
  /** A whole file in one threadpool job (open O_EXCL, write, fchown, fchmod, futimens, close, rename); absent in addons built before it. */
  writeFile?(tmp: Buffer, final: Buffer, data: Buffer | null, mode: number, chmodMode: number, uid: number, gid: number, mtimeNs: bigint): Promise<void>;
  /** Several `writeFile`s in one job, in order; one error or null per file. Absent in addons built before it. */
  writeFiles?(files: Array<[Buffer, Buffer, Buffer | null, number, number, number, number, bigint]>): Promise<Array<Error | null>>;
  /** `_exit(code)`: ends the process at once, without waiting for libuv's threadpool. Absent in addons built before it. */
  exitNow?(code: number): never;
  /** glibc's malloc thresholds pinned (`mallopt`); false on another C library. Absent in older builds. */
  mallocLimits?(mmapThreshold: number, trimThreshold: number): boolean;
  /** `writeFiles` with names in the directory open as `dirFd` (openat/renameat). Absent in addons built before it. */
  writeFilesAt?(dirFd: number, files: Array<[Buffer, Buffer, Buffer | null, number, number, number, number, bigint]>): Promise<Array<Error | null>>;
  /**
   * Directories of a backup walk read in one threadpool job: names, lstat of each entry, symlink
   * targets and extended attributes (see the addon's src/scan.c for the layout); an Error in place
   * of a directory that cannot be read. Linux only; absent in addons built before it.
   */
  scanDirs?(paths: Buffer[], flags: number, maxValue: number, maxCount: number, maxListBytes: number): Promise<Array<NativeScan | Error>>;
  /** One directory as `scanDirs` reads it, on the calling thread; throws when it cannot be read. */
  scanDirSync?(path: Buffer, flags: number, maxValue: number, maxCount: number, maxListBytes: number): NativeScan;
  /** The scan knows flag 8 (attributes read by name in the directory's descriptor); absent in addons built before it. */
  readonly scanXattrsAt?: boolean;
  /** Whether `gcmOpen` and `hmacSha256` are there (the addon found a working OpenSSL in the process); absent in addons built before them. */
  readonly aeadAvailable?: boolean;
  /** Why `aeadAvailable` is false. */
  readonly aeadUnavailableReason?: string;
  /**
   * AES-256-GCM decryption of `nonce ‖ ciphertext ‖ tag` into `dst` on the threadpool: true when it
   * authenticates, false (and the plaintext bytes of `dst` zeroed) when not. `dst` may overlap `src`
   * if it starts at or before the ciphertext. `src` and `dst` must stay untouched until it settles.
   */
  gcmOpen?(key: Uint8Array, src: Uint8Array, dst: Uint8Array): Promise<boolean>;
  /** HMAC-SHA-256 of `data` on the threadpool, written to `out` (at least 32 bytes) when done. */
  hmacSha256?(key: Uint8Array, data: Uint8Array, out: Uint8Array): Promise<void>;
  /**
   * AES-256-GCM encryption on this thread, no allocation: `nonce ‖ ciphertext ‖ tag` written into
   * `dst` at `dstOffset`; returns `src.length + 28`. `dst` may overlap `src` in any way. Throws a
   * TypeError/RangeError on bad arguments (nothing written), an Error when OpenSSL fails. Absent in
   * addons built before it (and when `aeadAvailable` is false).
   */
  gcmSealSync?(key: Uint8Array, nonce: Uint8Array, src: Uint8Array, dst: Uint8Array, dstOffset?: number): number;
  /**
   * `gcmOpen` on this thread, no allocation: true, or false (the plaintext bytes of `dst` zeroed)
   * when the tag fails. `dst` may overlap `src` in any way. Throws on bad arguments and when
   * OpenSSL fails (an Error with code ERR_KIWI_CRYPTO, never for a forged message).
   */
  gcmOpenSync?(key: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean;
  /** HMAC-SHA-256 of `data` on this thread, written to the first 32 bytes of `out`. */
  hmacSha256Sync?(key: Uint8Array, data: Uint8Array, out: Uint8Array): void;
}

/** A directory's listing from `scanDirs`. */
export interface NativeScan {
  count: number;
  /** Names and symlink targets. */
  names: Buffer;
  /** 6 per entry: name offset, name length, lstat error (-errno), link offset, link length (-1 not read, < -1 -errno), xattr state. */
  ints: Int32Array;
  /** 16 per entry: dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atime s/ns, mtime s/ns, ctime s/ns. */
  stats: BigInt64Array;
  /** [entry index, flat attribute list (as lgetxattrsSync's), ...] for entries with attributes. */
  xattrs: Array<number | (Array<Buffer | number> & { truncated?: number })>;
  /** Device and inode of the directory actually opened (signed, as in `stats`); absent in addons built before them. */
  dev?: bigint;
  ino?: bigint;
}

let native: NativeFs | null | undefined;
let loadError: string | undefined;

/** The addon, or null when it is not installed or not built (always on Windows). */
export function nativeFs(): NativeFs | null {
  if (native !== undefined) return native;
  if (process.platform === 'win32') {
    loadError = 'not used on Windows';
    return (native = null);
  }
  if (process.env.KIWI_NATIVE_FS === 'off') {
    loadError = 'turned off by KIWI_NATIVE_FS=off';
    return (native = null);
  }
  try {
    native = createRequire(import.meta.url)('@kiwi-backup/native-fs') as NativeFs;
  } catch (err) {
    loadError = (err as Error).message.split('\n')[0];
    native = null;
  }
  return native;
}

/** Why the addon is unavailable (undefined when it is loaded). */
export function nativeFsUnavailableReason(): string | undefined {
  nativeFs();
  return loadError;
}

/**
 * Ends the process with `code` at once. `process.exit` waits for libuv's threadpool to wind down,
 * so a pool thread blocked in a system call (a read on a hung NFS mount, a FIFO with no writer)
 * keeps the process alive for ever; with native-fs this exits regardless (`_exit`), without it
 * it is `process.exit`. For a last resort (a stop that ran out of time), not for a normal end.
 */
export function exitProcessNow(code: number): never {
  const exitNow = nativeFs()?.exitNow;
  if (exitNow) exitNow(code);
  process.exit(code);
}
