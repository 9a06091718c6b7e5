// Command-line options of `pnpm bench` (bench/run.mjs).
export const ALL_TOOLS = ['kiwi', 'restic', 'borg', 'kiwi-s3', 'kiwi-sftp'];
/** Step groups, in the order they run. `scale` runs only when asked for (`--scale` or `--steps scale`). */
export const ALL_STEPS = ['first', 'no-change', 'change', 'restore', 'ls', 'deep', 'maintenance', 'scale'];

export const USAGE = `Usage: pnpm bench [options]
  --tools a,b         tools to compare (default ${ALL_TOOLS.join(',')}; missing ones are skipped)
  --steps a,b         steps to run (default all but scale): ${ALL_STEPS.join(', ')}
  --runs N            runs of each repeated step, median reported (default 5)
  --scale             also run the scale step (1,000,000 files; several GiB of disk, long)
  --scale-files N     files in the scale tree (default 1000000; fewer only to try the step out)
  --small             a reduced data set and deep tree (to try the benchmark out; not for results)
  --forget-by-rm      without \`kiwi forget\`: remove Kiwi's snapshot files directly, time \`kiwi prune\` alone
  --no-drop-caches    do not drop the page cache before first backups and restores
  --keep              keep the restored trees
Environment: KIWI_BENCH_DIR (where data and repositories go; default bench/.work).`;

export class UsageError extends Error {}

const list = (text, allowed, what) => {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item)) throw new UsageError(`unknown ${what} "${item}" (one of: ${allowed.join(', ')})`);
  if (items.length === 0) throw new UsageError(`--${what}s needs at least one name`);
  return items;
};

const count = (name, text, min) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
  return n;
};

export function parseOptions(argv) {
  const o = {
    tools: ALL_TOOLS,
    steps: ALL_STEPS.filter((s) => s !== 'scale'),
    runs: 5,
    scale: false,
    scaleFiles: 1_000_000,
    small: false,
    forgetByRm: false,
    dropCaches: true,
    keep: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--tools') o.tools = list(value(), ALL_TOOLS, 'tool');
    else if (a === '--steps') o.steps = list(value(), ALL_STEPS, 'step');
    else if (a === '--runs') o.runs = count('runs', value(), 1);
    else if (a === '--scale') o.scale = true;
    else if (a === '--scale-files') o.scaleFiles = count('scale-files', value(), 20);
    else if (a === '--small') o.small = true;
    else if (a === '--forget-by-rm') o.forgetByRm = true;
    else if (a === '--no-drop-caches') o.dropCaches = false;
    else if (a === '--keep') o.keep = true;
    else if (a === '--help' || a === '-h') o.help = true;
    else throw new UsageError(`unknown option ${a}`);
  }
  if (o.scale) o.steps = [...o.steps, 'scale'];
  o.steps = ALL_STEPS.filter((s) => o.steps.includes(s));
  return o;
}
