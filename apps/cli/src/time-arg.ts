import { UsageError } from './exit-codes.js';

const FORMS = 'e.g. 2024-05-01T14:30:00Z, 2024-05-01T14:30:00+02:00, or "2024-05-01 14:30:00" and 2024-05-01 in local time';

/**
 * Parse an ISO-8601 time for `--time`: a date, or a date and time (`T` or a space between them,
 * seconds and fractions optional) with `Z` or an offset, or without one in local time (as
 * restic's `--time`). A date or time that does not exist (30 February, 25:00, a local time
 * skipped by a daylight-saving change) is refused.
 */
export function parseTimeArg(text: string, option = '--time'): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${option} ${JSON.stringify(text)} is not an ISO-8601 time (${FORMS})`);
  const [, ys, mos, ds, hs = '0', mis = '0', ss = '0', frac = '', zone] = m;
  const [y, mo, d, h, mi, s] = [ys, mos, ds, hs, mis, ss].map(Number) as [number, number, number, number, number, number];
  const ms = Number((frac + '000').slice(0, 3));
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) {
    throw new UsageError(`${option} ${JSON.stringify(text)}: no such date or time`);
  }
  let date: Date;
  if (zone) {
    const z = zone.toUpperCase() === 'Z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(-2)));
    const utc = new Date(0);
    utc.setUTCFullYear(y, mo - 1, d);
    utc.setUTCHours(h, mi, s, ms);
    if (utc.getUTCMonth() !== mo - 1 || utc.getUTCDate() !== d) throw new UsageError(`${option} ${JSON.stringify(text)}: no such date`);
    date = new Date(utc.getTime() - z * 60_000);
  } else {
    date = new Date(0);
    date.setFullYear(y, mo - 1, d);
    date.setHours(h, mi, s, ms);
    if (date.getMonth() !== mo - 1 || date.getDate() !== d) throw new UsageError(`${option} ${JSON.stringify(text)}: no such date`);
    if (date.getHours() !== h || date.getMinutes() !== mi) {
      throw new UsageError(`${option} ${JSON.stringify(text)}: this local time does not exist (skipped by a daylight-saving change); give an offset, e.g. ${ys}-${mos}-${ds}T${hs}:${mis}:00+01:00`);
    }
  }
  if (!Number.isFinite(date.getTime())) throw new UsageError(`${option} ${JSON.stringify(text)} is out of range`);
  return date;
}
