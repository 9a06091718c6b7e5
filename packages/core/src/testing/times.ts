import { exactTimesAvailable, exactTimesUnavailableReason } from '../restore/times.js';

let warnedMicroseconds = false;

/**
 * The part of a source mtime (ns since the epoch) a restore on this machine reproduces, for
 * comparing restored trees: all of it when the `@kiwi-backup/native-fs` addon is built,
 * else the microseconds (Node's `utimes`), with a loud warning once. Under `CI=true` a
 * missing addon throws instead, so a CI machine without it fails rather than compare less.
 */
export function comparableMtime(ns: bigint): bigint {
  if (exactTimesAvailable()) return ns;
  if (process.env.CI === 'true') {
    throw new Error(
      `@kiwi-backup/native-fs is not built (${exactTimesUnavailableReason() ?? 'unknown reason'}): ` +
        'restored mtimes cannot be nanosecond-exact. Run `pnpm --filter @kiwi-backup/native-fs run install` (needs python3, make, a C compiler).',
    );
  }
  if (!warnedMicroseconds) {
    warnedMicroseconds = true;
    console.warn(
      '\n*** @kiwi-backup/native-fs is not built: comparing mtimes to the MICROSECOND only. ' +
        'Install python3, make and a C compiler, then `pnpm --filter @kiwi-backup/native-fs run install`. ***\n',
    );
  }
  return (ns / 1000n) * 1000n;
}
