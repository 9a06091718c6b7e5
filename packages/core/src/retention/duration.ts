/**
 * Retention durations (`--keep-within 1y2m3d4h`) and counts (`--keep-daily 7`, `-1` or
 * `unlimited`), with restic's meaning: a duration is calendar years, months and days plus
 * hours, each unit at most once, in any order; `1m` is a month, not a minute.
 */
import { PolicyError } from './errors.js';

/** A calendar duration: subtracted from a local time as years, months and days, then hours. */
export interface RetentionDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

/** The count that means "no limit" (`-1` or `unlimited` on the command line). */
export const UNLIMITED = -1;

/** Largest count or duration part accepted (a bigger one is a typo, not a policy). */
export const MAX_RETENTION_NUMBER = 1_000_000;

const UNITS: Record<string, keyof RetentionDuration> = { y: 'years', m: 'months', d: 'days', h: 'hours' };
const UNIT_HELP = 'units: y (years), m (months), d (days), h (hours); e.g. 1y2m3d4h';

/**
 * Parse a duration such as `7d`, `1y6m`, `2d12h`. `option` names the flag or config key in
 * errors. Refuses an empty text, a negative or non-integer number, a number without unit,
 * an unknown unit (a hint for `w`/`min`/`s`), and a unit given twice.
 * @throws PolicyError
 */
export function parseRetentionDuration(text: string, option: string): RetentionDuration {
  const shown = JSON.stringify(text);
  const s = text.trim();
  if (s === '') throw new PolicyError(`${option} needs a duration (${UNIT_HELP})`, option);
  const d: RetentionDuration = { years: 0, months: 0, days: 0, hours: 0 };
  const seen = new Set<string>();
  let i = 0;
  while (i < s.length) {
    const m = /^(-?)(\d*)(\.\d+)?([a-zA-Z]*)/.exec(s.slice(i))!;
    const [all, minus, digits, fraction, unitRaw] = m;
    if (all === '' || digits === '') {
      throw new PolicyError(`${option} ${shown}: expected a number at "${s.slice(i)}" (${UNIT_HELP})`, option);
    }
    if (minus) throw new PolicyError(`${option} ${shown}: negative durations are not allowed`, option);
    if (fraction) throw new PolicyError(`${option} ${shown}: ${digits}${fraction} is not a whole number (${UNIT_HELP})`, option);
    if (unitRaw === '') throw new PolicyError(`${option} ${shown}: no unit after ${digits} (${UNIT_HELP})`, option);
    const unit = unitRaw!;
    const key = UNITS[unit];
    if (!key) throw new PolicyError(`${option} ${shown}: unknown unit "${unit}"${unitHint(unit, digits!)} (${UNIT_HELP})`, option);
    if (seen.has(unit)) throw new PolicyError(`${option} ${shown}: unit "${unit}" is given twice`, option);
    seen.add(unit);
    const n = Number(digits);
    if (!Number.isSafeInteger(n) || n > MAX_RETENTION_NUMBER) {
      throw new PolicyError(`${option} ${shown}: ${digits}${unit} is too large (at most ${MAX_RETENTION_NUMBER})`, option);
    }
    d[key] = n;
    i += all.length;
  }
  return d;
}

function unitHint(unit: string, digits: string): string {
  const n = Number(digits);
  if (unit === 'w' || unit === 'W') return `; for weeks write ${Number.isSafeInteger(n * 7) ? n * 7 : digits + '×7'}d`;
  if (unit === 'M') return '; months are a lower-case m';
  if (unit === 'Y' || unit === 'D' || unit === 'H') return `; write ${unit.toLowerCase()}`;
  if (/^(min|mins|minutes?|s|sec|secs|seconds?)$/i.test(unit)) return '; retention works in hours at the finest';
  return '';
}

/** True when every part is 0 (the rule is off). */
export function isZeroDuration(d: RetentionDuration | undefined): boolean {
  return !d || (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0);
}

/** `1y2m3d4h` form; `0h` for a zero duration. */
export function formatRetentionDuration(d: RetentionDuration): string {
  const s = `${d.years ? `${d.years}y` : ''}${d.months ? `${d.months}m` : ''}${d.days ? `${d.days}d` : ''}${d.hours ? `${d.hours}h` : ''}`;
  return s || '0h';
}

/**
 * Parse a count: a whole number ≥ 0, or `-1`/`unlimited` for no limit. Numbers from a
 * config file are accepted as numbers.
 * @throws PolicyError
 */
export function parseRetentionCount(value: string | number, option: string): number {
  const shown = JSON.stringify(value);
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else {
    const s = value.trim();
    if (s === '') throw new PolicyError(`${option} needs a count (a whole number, or unlimited)`, option);
    if (s === 'unlimited') return UNLIMITED;
    if (!/^[+-]?\d+$/.test(s)) {
      throw new PolicyError(`${option} ${shown} is not a count: give a whole number ≥ 0, or unlimited (or -1) to keep all`, option);
    }
    n = Number(s);
  }
  if (!Number.isInteger(n)) {
    throw new PolicyError(`${option} ${shown} is not a count: give a whole number ≥ 0, or unlimited (or -1) to keep all`, option);
  }
  if (n < -1) throw new PolicyError(`${option} ${shown}: negative counts are not allowed (only -1, which means unlimited)`, option);
  if (n > MAX_RETENTION_NUMBER) throw new PolicyError(`${option} ${shown} is too large (at most ${MAX_RETENTION_NUMBER}; unlimited keeps all)`, option);
  return n;
}
