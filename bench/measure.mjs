// Running the tools: wall time and peak RSS of one command, repository sizes, page-cache drops, and the
// check that a restored tree is the data set.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

export function which(bin) {
  try {
    return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * Returns `measure(label, cmd, argv, opts)`: runs a command with stdout to /dev/null, measuring its wall
 * time and peak RSS (via /usr/bin/time when present). A non-zero exit fails, unless `opts.okCodes` lists
 * it; the result has `status` and `stderr` for those.
 */
export function measurer(base) {
  const rssFile = join(base, 'rss.txt');
  return (label, cmd, argv, opts = {}) => {
    const { okCodes = [], ...spawnOpts } = opts;
    const start = process.hrtime.bigint();
    const full = timeBin ? [timeBin, ['-f', '%M', '-o', rssFile, cmd, ...argv]] : [cmd, argv];
    const r = spawnSync(full[0], full[1], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20, ...spawnOpts });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (r.status !== 0 && !okCodes.includes(r.status)) {
      process.stderr.write(`${label} failed (exit ${r.status ?? r.signal}):\n${(r.stderr ?? '').slice(-4000)}\n`);
      throw new Error(`${label} failed`);
    }
    let rssKiB = NaN;
    if (timeBin) {
      try {
        rssKiB = Number(execFileSync('tail', ['-n1', rssFile], { encoding: 'utf8' }).trim());
      } catch {}
    }
    return { seconds, rssMiB: rssKiB / 1024, status: r.status, stderr: r.stderr ?? '' };
  };
}

/** Runs a command (untimed) and returns its stdout; fails on a non-zero exit. */
export function capture(label, cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${label} failed (exit ${r.status ?? r.signal}): ${(r.stderr ?? '').slice(-2000)}`);
  return r.stdout;
}

export function duBytes(path) {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

export function countFiles(root) {
  return Number(execFileSync('sh', ['-c', `find ${JSON.stringify(root)} -type f | wc -l`], { encoding: 'utf8' }).trim());
}

/** Drops the page cache (works as root only; a no-op otherwise). */
export function dropCaches() {
  spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
}

/**
 * Whether a restored tree is the source: every entry's type, mode, mtime (to the nanosecond), size and
 * symlink target (find -printf), and every file's bytes (diff -r). Returns undefined when they match,
 * else what differs.
 */
export function verifyRestore(sourceRoot, restoredRoot) {
  const listing = (dir) =>
    execFileSync('sh', ['-c', `cd ${JSON.stringify(dir)} && find . -printf '%p %y %m %T@ %s %l\\n' | LC_ALL=C sort`], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const a = listing(sourceRoot);
  const b = listing(restoredRoot);
  if (a !== b) {
    const al = a.split('\n');
    const bl = b.split('\n');
    const i = al.findIndex((line, k) => line !== bl[k]);
    return `metadata differs at: ${al[i]} / restored: ${bl[i]}`;
  }
  const d = spawnSync('diff', ['-r', '-q', '--no-dereference', sourceRoot, restoredRoot], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (d.status !== 0) return `contents differ: ${(d.stdout || d.stderr).split('\n').slice(0, 5).join('; ')}`;
  return undefined;
}
