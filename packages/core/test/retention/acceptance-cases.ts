/**
 * Issue 10, acceptance 1: a series of snapshots and the policies applied to it, with the
 * snapshots each policy keeps, worked out by hand from the rules in docs/retention.md (the
 * worked examples there are these cases). Used by the engine's unit tests, by the CLI
 * end-to-end test (real `kiwi backup --time` snapshots) and by the comparison with restic.
 *
 * Times are local times; the tests run with TZ=Europe/Berlin (all of them are in CET, UTC+1).
 */

export interface SeriesSnapshot {
  /** A short name used in the expectations. */
  label: string;
  /** Local time `YYYY-MM-DD HH:MM:SS` (restic's --time format; `kiwi backup --time` takes it too). */
  time: string;
  tags: string[];
}

export const SERIES_TZ = 'Europe/Berlin';

const pad = (n: number) => String(n).padStart(2, '0');

/** 60 daily snapshots at 10:00 from 2024-01-01 to 2024-02-29 (`D01-01` … `D02-29`), 3 hourly ones on the last day, 2 tagged ones. */
export function series(): SeriesSnapshot[] {
  const out: SeriesSnapshot[] = [];
  for (let i = 0; i < 60; i++) {
    const d = new Date(Date.UTC(2024, 0, 1 + i));
    const md = `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    out.push({ label: `D${md}`, time: `2024-${md} 10:00:00`, tags: [] });
  }
  for (const h of [11, 12, 13]) out.push({ label: `H${h}`, time: `2024-02-29 ${h}:00:00`, tags: [] });
  out.push({ label: 'T01-15', time: '2024-01-15 18:00:00', tags: ['manual'] });
  out.push({ label: 'T02-10', time: '2024-02-10 18:00:00', tags: ['manual'] });
  return out;
}

export interface PolicyCase {
  name: string;
  /** `kiwi forget` flags (restic's are the same). */
  flags: string[];
  /** The labels kept, in any order. */
  keep: string[];
  /** Labels kept by the "oldest" rule only (restic < 0.16 does not have it). */
  keptOnlyAsOldest?: string[];
  /** Some reasons to check: label → reason texts (exactly, in order). */
  reasons?: Record<string, string[]>;
}

export const POLICY_CASES: PolicyCase[] = [
  {
    name: 'keep-last 5: the five newest',
    flags: ['--keep-last', '5'],
    keep: ['H13', 'H12', 'H11', 'D02-29', 'D02-28'],
    reasons: { H13: ['last snapshot (1/5)'], 'D02-28': ['last snapshot (5/5)'] },
  },
  {
    name: 'keep-hourly 3 + keep-daily 2: the newest of each of the last 3 hours and 2 days',
    flags: ['--keep-hourly', '3', '--keep-daily', '2'],
    keep: ['H13', 'H12', 'H11', 'D02-28'],
    reasons: {
      H13: ['hourly snapshot (2024-02-29 13h)', 'daily snapshot (2024-02-29)'],
      H11: ['hourly snapshot (2024-02-29 11h)'],
      'D02-28': ['daily snapshot (2024-02-28)'],
    },
  },
  {
    name: 'keep-daily 7 + keep-weekly 4 + keep-monthly unlimited: several rules, -1, and the oldest snapshot',
    flags: ['--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '-1'],
    keep: ['H13', 'D02-28', 'D02-27', 'D02-26', 'D02-25', 'D02-24', 'D02-23', 'D02-18', 'D02-11', 'D01-31', 'D01-01'],
    keptOnlyAsOldest: ['D01-01'],
    reasons: {
      H13: ['daily snapshot (2024-02-29)', 'weekly snapshot (2024-W09)', 'monthly snapshot (2024-02)'],
      'D02-25': ['daily snapshot (2024-02-25)', 'weekly snapshot (2024-W08)'],
      'D02-11': ['weekly snapshot (2024-W06)'],
      'D01-31': ['monthly snapshot (2024-01)'],
      'D01-01': ['oldest monthly snapshot (2024-01)'],
    },
  },
  {
    name: 'keep-within 7d + keep-within-weekly 1m: relative to the newest snapshot',
    flags: ['--keep-within', '7d', '--keep-within-weekly', '1m'],
    keep: ['H13', 'H12', 'H11', 'D02-29', 'D02-28', 'D02-27', 'D02-26', 'D02-25', 'D02-24', 'D02-23', 'D02-18', 'D02-11', 'D02-04'],
    reasons: {
      H13: ['within 7d', 'weekly within 1m (2024-W09)'],
      'D02-23': ['within 7d'],
      'D02-04': ['weekly within 1m (2024-W05)'],
    },
  },
  {
    name: 'keep-last 1 + keep-tag manual, grouped by host, paths and tags',
    flags: ['--keep-last', '1', '--keep-tag', 'manual', '--group-by', 'host,paths,tags'],
    keep: ['H13', 'T02-10', 'T01-15'],
    reasons: { H13: ['last snapshot (1/1)'], 'T02-10': ['has tag manual', 'last snapshot (1/1)'], 'T01-15': ['has tag manual'] },
  },
  {
    name: 'keep-monthly 6 with only two months: the oldest snapshot is kept too',
    flags: ['--keep-monthly', '6'],
    keep: ['H13', 'D01-31', 'D01-01'],
    keptOnlyAsOldest: ['D01-01'],
    reasons: { 'D01-01': ['oldest monthly snapshot (2024-01)'] },
  },
];
