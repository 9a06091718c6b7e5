import { futimes as fsFutimes, futimesSync } from 'node:fs';
import { lutimes } from 'node:fs/promises';
import { promisify } from 'node:util';
import { nativeFs as loadNative, nativeFsUnavailableReason } from '../native/native-fs.js';

/**
 * Whether restored times are exact to the nanosecond (the optional
 * `@kiwi-backup/native-fs` addon is loaded). When false, restore falls back
 * to Node's float-second utimes, exact to the microsecond only.
 */
export function exactTimesAvailable(): boolean {
  return loadNative() !== null;
}

/** Why the nanosecond addon is unavailable (undefined when it is loaded). */
export function exactTimesUnavailableReason(): string | undefined {
  return nativeFsUnavailableReason();
}

/**
 * Converts a stored ns timestamp to seconds for Node's utimes (the fallback
 * when the native addon is missing). Node passes a double, which holds about
 * 0.24 µs at today's times; the value is nudged by half a microsecond so the
 * restored time truncates to the stored microsecond.
 * Precision: **microseconds** (the sub-µs nanoseconds are not restored).
 */
export function nsToUtimeSeconds(ns: string): number {
  const us = BigInt(ns) / 1000n;
  return Number(us) / 1e6 + 5e-7;
}

const futimesFd = promisify(fsFutimes);

/** Sets atime = mtime = `mtimeNs` (decimal ns string) on a descriptor, synchronously; ns-exact when the addon is loaded. */
export function setTimesNsSync(fd: number, mtimeNs: string): void {
  const n = loadNative();
  if (n) {
    const t = BigInt(mtimeNs);
    n.futimensSync(fd, t, t);
    return;
  }
  const t = nsToUtimeSeconds(mtimeNs);
  futimesSync(fd, t, t);
}

/** Asynchronous `setTimesNsSync` (on libuv's threadpool). */
export function setTimesNs(fd: number, mtimeNs: string): Promise<void> {
  const n = loadNative();
  if (n) {
    const t = BigInt(mtimeNs);
    return n.futimens(fd, t, t);
  }
  const t = nsToUtimeSeconds(mtimeNs);
  return futimesFd(fd, t, t);
}

/** Sets atime = mtime of a path without following a final symlink; ns-exact when the addon is loaded. */
export function lsetTimesNs(path: Buffer, mtimeNs: string): Promise<void> {
  const n = loadNative();
  if (n) {
    const t = BigInt(mtimeNs);
    return n.lutimens(path, t, t);
  }
  const t = nsToUtimeSeconds(mtimeNs);
  return lutimes(path, t, t);
}
