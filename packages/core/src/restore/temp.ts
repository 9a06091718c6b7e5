/**
 * Temporary names of files being restored: `.kiwi-restore-<pid>-<12 hex>.tmp`
 * in the file's directory, created with O_EXCL (a clash fails safely) and
 * renamed into place once written. A restore that is killed (kill -9, power
 * loss) leaves them behind; the next restore into the same directory removes
 * those of processes that are gone (and those of older versions, named
 * without a pid), never those of a restore still running.
 */
import { randomBytes } from 'node:crypto';

/** Random bytes drawn in bulk for temporary names (one `randomBytes` call per 512 files). */
let randomPool = Buffer.alloc(0);
let randomPos = 0;
const PREFIX = '.kiwi-restore-';
const SUFFIX = '.tmp';
let prefixBuf: Buffer | undefined;
let prefixPid = -1;
const SUFFIX_BUF = Buffer.from(SUFFIX);
/** The name of a restore's temporary file; group 1: the pid (absent in names of older versions). */
const TEMP_NAME = /^\.kiwi-restore-(?:([0-9]{1,10})-)?[0-9a-f]{12}\.tmp$/;

/** `dir/.kiwi-restore-<pid>-<12 random hex digits>.tmp`. */
export function tempPath(dirPath: Buffer): Buffer {
  return tempIn(dirPath, true);
}

/** `.kiwi-restore-<pid>-<12 random hex digits>.tmp` (a name in the file's directory). */
export function tempName(): Buffer {
  return tempIn(EMPTY, false);
}

const EMPTY = Buffer.alloc(0);

function tempIn(dirPath: Buffer, slash: boolean): Buffer {
  if (prefixPid !== process.pid) {
    prefixPid = process.pid;
    prefixBuf = Buffer.from(`/${PREFIX}${process.pid}-`);
  }
  const prefix = slash ? prefixBuf! : prefixBuf!.subarray(1);
  if (randomPos + 6 > randomPool.length) {
    randomPool = randomBytes(6 * 512);
    randomPos = 0;
  }
  const hex = randomPool.toString('hex', randomPos, randomPos + 6);
  randomPos += 6;
  const out = Buffer.allocUnsafe(dirPath.length + prefix.length + 12 + SUFFIX_BUF.length);
  dirPath.copy(out, 0);
  let pos = dirPath.length;
  pos += prefix.copy(out, pos);
  pos += out.write(hex, pos, 'latin1');
  SUFFIX_BUF.copy(out, pos);
  return out;
}

/** Whether `name` is a restore's temporary file. */
export function isTempName(name: string): boolean {
  return name.startsWith(PREFIX) && TEMP_NAME.test(name);
}

/**
 * Whether `name` is a temporary file left behind by a restore that no longer
 * runs: its process is gone, or it was named by an older version (without a
 * pid). This process's own names are never taken for leftovers (another
 * restore in this process may be writing them).
 */
export function isLeftoverTemp(name: string): boolean {
  if (!name.startsWith(PREFIX)) return false;
  const m = TEMP_NAME.exec(name);
  if (!m) return false;
  if (m[1] === undefined) return true;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false; // alive: another restore may be writing it
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
