/**
 * Calendar buckets in the local time zone of the process (`TZ`), as restic computes them
 * in the snapshot's zone: an hour, a day, an ISO-8601 week (Monday first; the week of
 * 1 January may belong to the previous year), a month, a year.
 */
import type { RetentionDuration } from './duration.js';

export type BucketKind = 'hour' | 'day' | 'week' | 'month' | 'year';

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** ISO-8601 week-numbering year and week of a calendar date (month 0-based). */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  const dow = (d.getUTCDay() + 6) % 7; // Monday = 0
  // The Thursday of this week decides the year.
  d.setUTCDate(d.getUTCDate() + 3 - dow);
  const wy = d.getUTCFullYear();
  const jan1 = new Date(0);
  jan1.setUTCFullYear(wy, 0, 1);
  const week = 1 + Math.floor((d.getTime() - jan1.getTime()) / (7 * 86_400_000));
  return { year: wy, week };
}

/**
 * The bucket of a time: a number that is equal for two times of the same bucket, and a
 * label naming it (`2024-03-05 14h`, `2024-03-05`, `2024-W10`, `2024-03`, `2024`).
 */
export function bucketOf(kind: BucketKind, ms: number): { value: number; label: string } {
  const d = new Date(ms);
  const y = d.getFullYear();
  const m = d.getMonth() + 1;
  const day = d.getDate();
  switch (kind) {
    case 'hour': {
      const h = d.getHours();
      return { value: ((y * 100 + m) * 100 + day) * 100 + h, label: `${pad(y, 4)}-${pad(m)}-${pad(day)} ${pad(h)}h` };
    }
    case 'day':
      return { value: (y * 100 + m) * 100 + day, label: `${pad(y, 4)}-${pad(m)}-${pad(day)}` };
    case 'week': {
      const w = isoWeek(y, m - 1, day);
      return { value: w.year * 100 + w.week, label: `${pad(w.year, 4)}-W${pad(w.week)}` };
    }
    case 'month':
      return { value: y * 100 + m, label: `${pad(y, 4)}-${pad(m)}` };
    case 'year':
      return { value: y, label: pad(y, 4) };
  }
}

/**
 * `ms` minus a calendar duration, in local time: years, months and days first (a date that
 * does not exist rolls over, so 31 March minus 1 month is 2 or 3 March), then the hours as
 * elapsed time.
 */
export function subtractDuration(ms: number, d: RetentionDuration): number {
  const t = new Date(ms);
  t.setFullYear(t.getFullYear() - d.years, t.getMonth() - d.months, t.getDate() - d.days);
  return t.getTime() - d.hours * 3_600_000;
}

/** `YYYY-MM-DD HH:MM:SS` in local time. */
export function formatLocalTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The local zone's offset at `ms`, as `UTC+01:00`. */
export function formatUtcOffset(ms: number): string {
  const off = -new Date(ms).getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  return `UTC${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}
