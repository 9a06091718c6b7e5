/** Sets atime/mtime of an open descriptor, exact to the nanosecond (futimens). Times: ns since the epoch. */
export function futimensSync(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
/** Like `futimensSync`, on libuv's threadpool. */
export function futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
/** Sets atime/mtime of a path without following a final symlink (utimensat with AT_SYMLINK_NOFOLLOW). */
export function lutimensSync(path: Buffer | string, atimeNs: bigint, mtimeNs: bigint): void;
/** Like `lutimensSync`, on libuv's threadpool. */
export function lutimens(path: Buffer | string, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
