/**
 * Retention policies: the rules of `kiwi forget` (restic's `forget` rules), their flag and
 * config names, parsing with errors that name the option, and a one-line description.
 */
import type { BucketKind } from './calendar.js';
import {
  UNLIMITED,
  formatRetentionDuration,
  isZeroDuration,
  parseRetentionCount,
  parseRetentionDuration,
  type RetentionDuration,
} from './duration.js';
import { PolicyError } from './errors.js';

export type CountRuleKey = 'keepLast' | 'keepHourly' | 'keepDaily' | 'keepWeekly' | 'keepMonthly' | 'keepYearly';
export type WithinRuleKey = 'keepWithin' | 'keepWithinHourly' | 'keepWithinDaily' | 'keepWithinWeekly' | 'keepWithinMonthly' | 'keepWithinYearly';

/** A parsed policy. Absent (or 0 / zero-duration) rules are off. */
export interface RetentionPolicy {
  /** Keep the n newest snapshots (-1: all). */
  keepLast?: number;
  /** Keep the newest snapshot of each of the n newest hours / days / ISO weeks / months / years that have one (-1: all). */
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** Keep every snapshot newer than the group's newest snapshot minus this duration. */
  keepWithin?: RetentionDuration;
  /** Within that duration of the newest snapshot, keep the newest snapshot of each hour / day / week / month / year. */
  keepWithinHourly?: RetentionDuration;
  keepWithinDaily?: RetentionDuration;
  keepWithinWeekly?: RetentionDuration;
  keepWithinMonthly?: RetentionDuration;
  keepWithinYearly?: RetentionDuration;
  /** Keep every snapshot that has all tags of at least one of these lists. */
  keepTags?: string[][];
}

/**
 * A policy as written by hand (config file, daemon job, command line): counts as numbers or
 * strings (`7`, `"unlimited"`, `-1`), durations as strings (`"1y6m"`), and `keepTag` as one or
 * more tag lists (`"a,b"` = a snapshot with both tags a and b).
 */
export type RetentionPolicyInput = {
  [K in CountRuleKey]?: number | string;
} & {
  [K in WithinRuleKey]?: string;
} & {
  keepTag?: string | string[];
};

export interface RuleInfo {
  key: CountRuleKey | WithinRuleKey | 'keepTag';
  flag: string;
  /** The name used in reasons (`daily`, `within`, `daily within`, `tag`). */
  name: string;
  type: 'count' | 'within' | 'tag';
  /** The calendar bucket for count and within-bucket rules (`last` for keepLast, none for keepWithin). */
  bucket?: BucketKind | 'last';
}

/** Every rule, in the order restic evaluates them (tags, within, counts, within-buckets). */
export const RULES: readonly RuleInfo[] = [
  { key: 'keepTag', flag: '--keep-tag', name: 'tag', type: 'tag' },
  { key: 'keepWithin', flag: '--keep-within', name: 'within', type: 'within' },
  { key: 'keepLast', flag: '--keep-last', name: 'last', type: 'count', bucket: 'last' },
  { key: 'keepHourly', flag: '--keep-hourly', name: 'hourly', type: 'count', bucket: 'hour' },
  { key: 'keepDaily', flag: '--keep-daily', name: 'daily', type: 'count', bucket: 'day' },
  { key: 'keepWeekly', flag: '--keep-weekly', name: 'weekly', type: 'count', bucket: 'week' },
  { key: 'keepMonthly', flag: '--keep-monthly', name: 'monthly', type: 'count', bucket: 'month' },
  { key: 'keepYearly', flag: '--keep-yearly', name: 'yearly', type: 'count', bucket: 'year' },
  { key: 'keepWithinHourly', flag: '--keep-within-hourly', name: 'hourly within', type: 'within', bucket: 'hour' },
  { key: 'keepWithinDaily', flag: '--keep-within-daily', name: 'daily within', type: 'within', bucket: 'day' },
  { key: 'keepWithinWeekly', flag: '--keep-within-weekly', name: 'weekly within', type: 'within', bucket: 'week' },
  { key: 'keepWithinMonthly', flag: '--keep-within-monthly', name: 'monthly within', type: 'within', bucket: 'month' },
  { key: 'keepWithinYearly', flag: '--keep-within-yearly', name: 'yearly within', type: 'within', bucket: 'year' },
];

/** The keys a {@link RetentionPolicyInput} may have. */
export const POLICY_INPUT_KEYS: readonly string[] = RULES.map((r) => r.key);

/** The flags that make a policy, for "no rule given" messages (counts first, then durations, then tags). */
export const POLICY_FLAGS: readonly string[] = [
  ...RULES.filter((r) => r.type === 'count'),
  ...RULES.filter((r) => r.type === 'within'),
  ...RULES.filter((r) => r.type === 'tag'),
].map((r) => r.flag);

/** Split a tag list `"a,b"` into its tags (spaces around commas ignored, empty parts dropped). */
export function parseTagList(text: string, option: string): string[] {
  const tags = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  if (tags.length === 0) throw new PolicyError(`${option} needs a tag (or a comma-separated list of tags a snapshot must all have)`, option);
  return tags;
}

/**
 * Parse a hand-written policy. `optionName` turns a key into the name shown in errors
 * (default: the command-line flag; the config loader passes `forget.keepDaily`).
 * Unknown keys are refused. A policy with no rule at all is valid here (see {@link isEmptyPolicy}).
 * @throws PolicyError
 */
export function parsePolicy(input: RetentionPolicyInput, optionName: (rule: RuleInfo) => string = (r) => r.flag): RetentionPolicy {
  const policy: RetentionPolicy = {};
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!POLICY_INPUT_KEYS.includes(key) && raw[key] !== undefined) throw new PolicyError(`unknown retention rule "${key}" (rules: ${POLICY_INPUT_KEYS.join(', ')})`, key);
  }
  for (const rule of RULES) {
    const value = raw[rule.key];
    if (value === undefined) continue;
    const option = optionName(rule);
    if (rule.type === 'count') {
      if (typeof value !== 'number' && typeof value !== 'string') throw new PolicyError(`${option} must be a count (a whole number, or "unlimited"), not ${typeof value}`, option);
      policy[rule.key as CountRuleKey] = parseRetentionCount(value, option);
    } else if (rule.type === 'within') {
      if (typeof value !== 'string') throw new PolicyError(`${option} must be a duration string such as "7d" or "1y6m", not ${typeof value}`, option);
      const d = parseRetentionDuration(value, option);
      if (isZeroDuration(d)) throw new PolicyError(`${option} ${JSON.stringify(value)} keeps nothing: give a duration above zero, such as 7d`, option);
      policy[rule.key as WithinRuleKey] = d;
    } else {
      const lists = Array.isArray(value) ? value : [value];
      policy.keepTags = lists.map((l, i) => {
        if (typeof l !== 'string') throw new PolicyError(`${option}${Array.isArray(value) ? `[${i}]` : ''} must be a string such as "keep" or "a,b", not ${typeof l}`, option);
        return parseTagList(l, option);
      });
    }
  }
  return policy;
}

/** True when no rule would keep anything (all counts 0 or absent, no duration, no tag). */
export function isEmptyPolicy(p: RetentionPolicy): boolean {
  for (const rule of RULES) {
    if (rule.type === 'count') {
      const n = p[rule.key as CountRuleKey];
      if (n !== undefined && n !== 0) return false;
    } else if (rule.type === 'within') {
      if (!isZeroDuration(p[rule.key as WithinRuleKey])) return false;
    } else if (p.keepTags && p.keepTags.length > 0) return false;
  }
  return true;
}

/** One line, e.g. `keep 7 daily, 4 weekly, all monthly snapshots, daily snapshots within 1m, and all snapshots with tags [keep]`. */
export function describePolicy(p: RetentionPolicy): string {
  const counts: string[] = [];
  for (const rule of RULES) {
    if (rule.type !== 'count') continue;
    const n = p[rule.key as CountRuleKey];
    if (n === undefined || n === 0) continue;
    counts.push(`${n === UNLIMITED ? 'all' : n} ${rule.name === 'last' ? 'latest' : rule.name}`);
  }
  const parts: string[] = [];
  if (counts.length) parts.push(`${counts.join(', ')} snapshots`);
  for (const rule of RULES) {
    if (rule.type !== 'within' || !rule.bucket) continue;
    const d = p[rule.key as WithinRuleKey];
    if (!isZeroDuration(d)) parts.push(`${rule.name.split(' ')[0]} snapshots within ${formatRetentionDuration(d!)} of the newest`);
  }
  if (p.keepTags?.length) parts.push(`all snapshots with tags ${p.keepTags.map((l) => `[${l.join(',')}]`).join(' or ')}`);
  if (!isZeroDuration(p.keepWithin)) parts.push(`all snapshots within ${formatRetentionDuration(p.keepWithin!)} of the newest`);
  if (parts.length === 0) return 'keep nothing (empty policy)';
  return `keep ${parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}` : parts[0]}`;
}
