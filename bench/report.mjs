// The benchmark's table: per step and tool the wall time (median of the runs, every run listed), peak
// RSS and repository size, and the ratios the targets of issues #10 and #12 are stated in, each marked
// ✓ or ✗ against its target.
import { STEP } from './steps.mjs';

/** Kiwi ÷ restic wall time, per step (issue #12; maintenance: #10). */
const TIME_VS_RESTIC = {
  [STEP.first]: 0.8,
  [STEP.noChange]: 0.5,
  [STEP.change]: 0.7,
  [STEP.restore]: 0.7,
  [STEP.ls]: 0.7,
  [STEP.deepFirst]: 0.8,
  [STEP.deepNoChange]: 0.5,
  [STEP.deepLs]: 0.7,
  [STEP.maintenance]: 1.0,
  [STEP.scaleFirst]: 0.8,
  [STEP.scaleNoChange]: 0.5,
};
/** Kiwi ÷ restic peak RSS: 1.25 on every step, 1.0 for prune. */
const rssTarget = (step) => (step === STEP.maintenance ? 1.0 : 1.25);
/** Remote ÷ local Kiwi wall time: 1.3 on every step, 1.2 for `snapshots` and `ls` with a warm cache. */
const remoteTarget = (step) => (step === STEP.snapshots || step === STEP.ls || step === STEP.deepLs ? 1.2 : 1.3);
/** Absolute: `kiwi snapshots` on a local repository (start-up). */
const SNAPSHOTS_LOCAL_SECONDS = 0.15;
const REPO_SIZE = 1.02;

const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
const rss = (r) => (Number.isFinite(r.rssMiB) ? r.rssMiB.toFixed(0) : '?');

/**
 * @param {object} p
 * @param {object[]} p.rows measured rows (steps.mjs)
 * @param {string[]} p.header lines above the table (data set, machine, how steps ran)
 * @param {Record<string, Record<string, number>>} p.sizes final repository size per repository and tool
 * @param {string[]} p.notes lines below the table
 */
export function formatReport({ rows, header, sizes, notes }) {
  let met = 0;
  let missed = 0;
  /** "0.62 ✓ (≤ 0.8)"; `atLeast` for targets that are a minimum. */
  const mark = (value, target, { atLeast = false, digits = 2, unit = '' } = {}) => {
    if (!Number.isFinite(value)) return '?';
    const ok = atLeast ? value >= target : value <= target;
    if (ok) met++;
    else missed++;
    return `${value.toFixed(digits)}${unit} ${ok ? '✓' : '✗'} (${atLeast ? '≥' : '≤'} ${target}${unit})`;
  };
  const find = (step, tool) => rows.find((r) => r.step === step && r.tool === tool);
  const lines = [...header];
  const steps = [...new Set(rows.map((r) => r.step))].filter((s) => s !== STEP.maintenance);
  if (steps.length > 0) {
    lines.push('');
    lines.push('| step | tool | wall time (s) | runs (s) | peak RSS (MiB) | repository size (MiB) | time: Kiwi ÷ restic; remote ÷ local | peak RSS: Kiwi ÷ restic |');
    lines.push('| --- | --- | ---: | --- | ---: | ---: | --- | --- |');
  }
  for (const step of steps) {
    for (const r of rows.filter((x) => x.step === step)) {
      let timeRatio = '';
      let rssRatio = '';
      const restic = find(step, 'restic');
      const local = find(step, 'kiwi');
      if (r.tool === 'kiwi' && restic) {
        const q = r.seconds / restic.seconds;
        timeRatio = step in TIME_VS_RESTIC ? mark(q, TIME_VS_RESTIC[step]) : q.toFixed(2);
        rssRatio = mark(r.rssMiB / restic.rssMiB, rssTarget(step));
      } else if (r.tool.startsWith('kiwi-') && local) {
        timeRatio = `${mark(r.seconds / local.seconds, remoteTarget(step))} of local`;
      }
      if (r.tool === 'kiwi' && step === STEP.snapshots) {
        timeRatio = `${timeRatio}${timeRatio ? '; ' : ''}${mark(r.seconds, SNAPSHOTS_LOCAL_SECONDS, { digits: 3, unit: ' s' })}`;
      }
      const spread = r.all && r.all.length > 1 ? r.all.map((x) => x.toFixed(2)).join(', ') : '';
      lines.push(`| ${step} | ${r.tool} | ${r.seconds.toFixed(2)} | ${spread} | ${rss(r)} | ${mib(r.repo)} | ${timeRatio} | ${rssRatio} |`);
    }
  }
  const maint = rows.filter((r) => r.step === STEP.maintenance);
  if (maint.length > 0) {
    lines.push('');
    lines.push(`Maintenance: ${STEP.maintenance} on the bench repository (after the steps above), repository size before and after (du -sb):`);
    lines.push('');
    lines.push('| tool | command | wall time (s) | peak RSS (MiB) | before (MiB) | after (MiB) | freed (MiB) | time: Kiwi ÷ restic; remote ÷ local | peak RSS: Kiwi ÷ restic | freed: Kiwi ÷ restic |');
    lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |');
    const restic = find(STEP.maintenance, 'restic');
    const local = find(STEP.maintenance, 'kiwi');
    for (const r of maint) {
      const freed = r.before - r.after;
      let timeRatio = '';
      let rssRatio = '';
      let freedRatio = '';
      if (r.tool === 'kiwi' && restic) {
        timeRatio = mark(r.seconds / restic.seconds, TIME_VS_RESTIC[STEP.maintenance]);
        rssRatio = mark(r.rssMiB / restic.rssMiB, rssTarget(STEP.maintenance));
        const rf = restic.before - restic.after;
        freedRatio = rf > 0 ? mark(freed / rf, 1.0, { atLeast: true }) : `restic freed ${mib(rf)} MiB`;
      } else if (r.tool.startsWith('kiwi-') && local) {
        timeRatio = `${mark(r.seconds / local.seconds, remoteTarget(STEP.maintenance))} of local`;
      }
      const runs = r.all && r.all.length > 1 ? ` (${r.all.map((x) => x.toFixed(2)).join(' + ')} s)` : '';
      lines.push(`| ${r.tool} | ${r.how}${runs} | ${r.seconds.toFixed(2)} | ${rss(r)} | ${mib(r.before)} | ${mib(r.after)} | ${mib(freed)} | ${timeRatio} | ${rssRatio} | ${freedRatio} |`);
    }
  }
  const sizeLines = [];
  for (const [name, label] of [['bench', 'bench data set (before the maintenance step)'], ['deep', 'deep tree'], ['scale', 'scale tree']]) {
    const s = sizes[name];
    if (s?.kiwi && s?.restic) sizeLines.push(`- ${label}: ${mark(s.kiwi / s.restic, REPO_SIZE, { digits: 3 })}`);
  }
  if (sizeLines.length > 0) lines.push('', 'Repository size, Kiwi ÷ restic:', '', ...sizeLines);
  if (notes.length > 0) lines.push('', ...notes);
  if (met + missed > 0) lines.push('', `Targets: ${met} met, ${missed} missed.`);
  return lines.join('\n');
}
