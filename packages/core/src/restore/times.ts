import { createRequire } from 'node:module';
import { futimes as fsFutimes, futimesSync } from 'node:fs';
import { lutimes } from 'node:fs/promises';
import { promisify } from 'node:util';

/** The API of `@kiwi-backup/native-times` (nanosecond-exact futimens/utimensat). */
interface NativeTimes {
  futimensSync(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
  lutimens(path: Buffer, atimeNs: bigint, mtimeNs: bigint): Promise<void>;
}

let native: NativeTimes | null | undefined;
let nativeLoadError: string | undefined;

/** Loads the optional addon once; null when it is not installed or not built (e.g. Windows). */
function loadNative(): NativeTimes | null {
  if (native !== undefined) return native;
  if (process.platform === 'win32') {
    nativeLoadError = 'not used on Windows';
    return (native = null);
  }
  try {
    native = createRequire(import.meta.url)('@kiwi-backup/native-times') as NativeTimes;
  } catch (err) {
    nativeLoadError = (err as Error).message;
    native = null;
  }
  return native;
}

/**
 * Whether restored times are exact to the nanosecond (the optional
 * `@kiwi-backup/native-times` addon is loaded). When false, restore falls back
 * to Node's float-second utimes, exact to the microsecond only.
 */
export function exactTimesAvailable(): boolean {
  return loadNative() !== null;
}

/** Why the nanosecond addon is unavailable (undefined when it is loaded). */
export function exactTimesUnavailableReason(): string | undefined {
  loadNative();
  return nativeLoadError;
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
