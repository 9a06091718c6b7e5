// The benchmark's steps. Every step runs each tool in turn; repeated steps (those that leave the
// repository as it was) run `--runs` times, the tools taking turns so that drift on the machine hits every
// tool alike, and report the median with every run listed. A step a later step needs but that was not
// asked for (`--steps`) still runs, unreported.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { applyChange } from './dataset.mjs';
import { duBytes, verifyRestore } from './measure.mjs';
import { resetToolState } from './tools.mjs';

const log = (text) => process.stderr.write(`${text}\n`);

/** Step names as the table prints them. */
export const STEP = {
  first: 'first backup',
  noChange: 'no-change backup',
  change: 'backup after ~1 % change',
  restore: 'full restore',
  snapshots: 'snapshots',
  ls: 'ls latest',
  deepFirst: 'first backup (deep tree)',
  deepNoChange: 'no-change backup (deep tree)',
  deepLs: 'ls latest (deep tree)',
  maintenance: 'forget all but the last + prune',
  scaleFirst: 'first backup (scale)',
  scaleNoChange: 'no-change backup (scale)',
};

export function createRunner(runs) {
  /** { step, tool, seconds, all?, rssMiB, repo, how?, before?, after? } in the order they ran. */
  const rows = [];
  const record = (step, t, h, r, extra = {}) => rows.push({ step, tool: t, seconds: r.seconds, all: r.all, rssMiB: r.rssMiB, repo: duBytes(h.location), how: r.how, ...extra });
  return {
    rows,
    record,
    once(step, ts, handles, fn, { report = true } = {}) {
      for (const t of ts) {
        log(`${t}: ${step}${report ? '' : ' (setup for a later step, not reported)'}...`);
        const r = fn(t);
        if (report) record(step, t, handles[t], r);
      }
    },
    /** With `warmup`, each tool runs once first, uncounted (a second `ls` with a warm cache is the step). */
    repeated(step, ts, handles, fn, { warmup = false } = {}) {
      if (warmup) {
        for (const t of ts) {
          log(`${t}: ${step} (warm-up, not counted)...`);
          fn(t);
        }
      }
      const all = Object.fromEntries(ts.map((t) => [t, []]));
      for (let run = 1; run <= runs; run++) {
        for (const t of ts) {
          log(`${t}: ${step}${runs > 1 ? ` (run ${run} of ${runs})` : ''}...`);
          all[t].push(fn(t));
        }
      }
      for (const t of ts) {
        const sorted = [...all[t]].sort((a, b) => a.seconds - b.seconds);
        record(step, t, handles[t], {
          seconds: sorted[Math.floor((sorted.length - 1) / 2)].seconds,
          all: all[t].map((r) => r.seconds),
          rssMiB: Math.max(...all[t].map((r) => r.rssMiB)),
        });
      }
    },
  };
}

/** Opens repository `name` for every tool and inits it (empty), after a fresh client state on the first. */
function initRepos(c, name, ts) {
  const handles = {};
  for (const t of ts) {
    const h = c.tools[t].repo(name);
    rmSync(h.location, { recursive: true, force: true });
    if (!c.stateReset.has(t)) {
      resetToolState(c.base, t);
      c.stateReset.add(t);
    }
    c.tools[t].init(h);
    handles[t] = h;
  }
  c.handles[name] = handles;
  return handles;
}

const has = (c, op) => c.active.filter((t) => typeof c.tools[t][op] === 'function');
const timed = async (what, fn) => {
  const t0 = performance.now();
  await fn();
  log(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
};

/** First, no-change and after-change backups, restore, `snapshots` and `ls` of the bench data set. */
export async function benchTreeSteps(c) {
  const { tools, runner, opts } = c;
  const S = new Set(opts.steps);
  const ts = c.active;
  const h = initRepos(c, 'bench', ts);
  await timed('first backup', () => runner.once(STEP.first, ts, h, (t) => (c.drop(), tools[t].backup(h[t], c.dataRoot, `${t} first backup`)), { report: S.has('first') }));
  if (S.has('no-change')) await timed('no-change backup', () => runner.repeated(STEP.noChange, ts, h, (t) => tools[t].backup(h[t], c.dataRoot, `${t} no-change backup`)));
  // The maintenance step needs a snapshot with data the last one no longer uses.
  if (S.has('change') || S.has('maintenance')) {
    await applyChange(c.dataRoot, { small: opts.small });
    await timed('backup after change', () => runner.once(STEP.change, ts, h, (t) => tools[t].backup(h[t], c.dataRoot, `${t} changed backup`), { report: S.has('change') }));
  }
  if (S.has('restore')) {
    await timed('full restore', () =>
      runner.repeated(STEP.restore, ts, h, (t) => {
        const target = join(c.base, `restore-${t}`);
        rmSync(target, { recursive: true, force: true });
        mkdirSync(target, { recursive: true });
        c.drop();
        const r = tools[t].restore(h[t], target);
        if (t.startsWith('kiwi')) {
          const problem = verifyRestore(c.dataRoot, join(target, c.dataRoot));
          if (problem) throw new Error(`${t}: the restored tree is not the data set: ${problem}`);
          log(`${t}: restore verified (bytes, modes, mtimes, symlinks)`);
          if (!c.verified.includes(t)) c.verified.push(t);
        }
        if (!opts.keep) rmSync(target, { recursive: true, force: true });
        return r;
      }),
    );
  }
  if (S.has('ls')) {
    const withLs = has(c, 'ls');
    await timed('snapshots', () => runner.repeated(STEP.snapshots, withLs, h, (t) => tools[t].snapshots(h[t], `${t} snapshots`), { warmup: true }));
    await timed('ls latest', () => runner.repeated(STEP.ls, withLs, h, (t) => tools[t].ls(h[t], `${t} ls latest`), { warmup: true }));
  }
  c.sizes.bench = Object.fromEntries(ts.map((t) => [t, duBytes(h[t].location)]));
}

/** First and no-change backup of the deep tree, and `ls` of its snapshot. */
export async function deepTreeSteps(c) {
  const { tools, runner } = c;
  const ts = c.active;
  const h = initRepos(c, 'deep', ts);
  await timed('first backup (deep tree)', () => runner.once(STEP.deepFirst, ts, h, (t) => (c.drop(), tools[t].backup(h[t], c.deepRoot, `${t} first backup (deep)`))));
  await timed('no-change backup (deep tree)', () => runner.repeated(STEP.deepNoChange, ts, h, (t) => tools[t].backup(h[t], c.deepRoot, `${t} no-change backup (deep)`)));
  const withLs = has(c, 'ls');
  await timed('ls latest (deep tree)', () => runner.repeated(STEP.deepLs, withLs, h, (t) => tools[t].ls(h[t], `${t} ls latest (deep)`), { warmup: true }));
  c.sizes.deep = Object.fromEntries(ts.map((t) => [t, duBytes(h[t].location)]));
}

/**
 * Forget all but the last snapshot of the bench repository and prune: wall time, peak RSS, and the size
 * freed (repository size before − after, du -sb). Runs after the steps that use the snapshots. Kiwi's
 * repository must then check clean and hold one snapshot.
 */
export async function maintenanceSteps(c) {
  const { tools, runner } = c;
  const h = c.handles.bench;
  await timed('forget + prune', async () => {
    for (const t of has(c, 'maintenance')) {
      log(`${t}: ${STEP.maintenance}...`);
      const before = duBytes(h[t].location);
      const r = tools[t].maintenance(h[t]);
      if (!r) {
        log(`${t}: skipped: this build has no \`kiwi forget\` (the step needs it; --forget-by-rm times \`kiwi prune\` after deleting the snapshot files directly)`);
        c.notes.push(`${t}: no \`kiwi forget\` in this build; the maintenance step was skipped.`);
        continue;
      }
      tools[t].checkAfterMaintenance?.(h[t]);
      const after = duBytes(h[t].location);
      runner.record(STEP.maintenance, t, h[t], r, { before, after });
    }
  });
}

/** The scale tree (local tools only): first and no-change backup. */
export async function scaleSteps(c) {
  const { tools, runner } = c;
  const ts = c.active.filter((t) => tools[t].local);
  const h = initRepos(c, 'scale', ts);
  await timed('first backup (scale)', () => runner.once(STEP.scaleFirst, ts, h, (t) => (c.drop(), tools[t].backup(h[t], c.scaleRoot, `${t} first backup (scale)`))));
  await timed('no-change backup (scale)', () => runner.repeated(STEP.scaleNoChange, ts, h, (t) => tools[t].backup(h[t], c.scaleRoot, `${t} no-change backup (scale)`)));
  c.sizes.scale = Object.fromEntries(ts.map((t) => [t, duBytes(h[t].location)]));
}
