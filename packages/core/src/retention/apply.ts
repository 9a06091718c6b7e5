/**
 * The keep/remove decision of a retention policy over one group of snapshots, with
 * restic's `forget` semantics (restic ≥ 0.16, see docs/retention.md):
 *
 * - Snapshots are looked at newest first (equal times: by id).
 * - `keepTags`: a snapshot with all tags of one list is kept (not counted).
 * - `keepWithin d`: a snapshot newer than (newest − d) is kept; "newest" is the newest
 *   snapshot of the group that is not in the future.
 * - Count rules (`keepLast`, `keepHourly` … `keepYearly`): a snapshot whose bucket (local
 *   hour, day, ISO week, month, year; for `keepLast` every snapshot is its own bucket)
 *   differs from that of the last snapshot the rule kept is kept, while the rule has counts
 *   left (-1: always). The oldest snapshot of the group is also kept by a rule that still has
 *   counts left even when its bucket already has a newer one ("oldest"), so a short history
 *   is kept whole rather than cut.
 * - Within-bucket rules (`keepWithinDaily d` …): as count rules without a count, for the
 *   snapshots newer than (newest − d).
 *
 * A snapshot is kept when any rule keeps it; each rule that did is a reason.
 */
import { IntegrityError } from '../repository/errors.js';
import { bucketOf, formatLocalTime, subtractDuration, type BucketKind } from './calendar.js';
import { formatRetentionDuration, isZeroDuration, UNLIMITED, type RetentionDuration } from './duration.js';
import { PolicyError } from './errors.js';
import type { SnapshotSelection } from '../snapshot-ops/select.js';
import { POLICY_FLAGS, RULES, isEmptyPolicy, type CountRuleKey, type RetentionPolicy, type RuleInfo, type WithinRuleKey } from './policy.js';
import {
  DEFAULT_GROUP_BY,
  filterSnapshots,
  groupSnapshots,
  hasAllTags,
  type GroupByField,
  type SnapshotGroupKey,
  type SnapshotItem,
} from './select.js';

/** What the policy looks at: an id, a time (ISO 8601) and tags. */
export interface RetentionItem {
  id: string;
  snapshot: { time: string; tags?: readonly string[] };
}

/** One rule that kept a snapshot. */
export interface KeepReason {
  /** The rule's name: `last`, `hourly` … `yearly`, `within`, `hourly within` … `yearly within`, `tag`. */
  rule: string;
  /** Its flag, e.g. `--keep-daily`. */
  flag: string;
  /** The bucket the snapshot stands for (`2024-03-05`, `2024-W10`, `3/7` for `last`). */
  bucket?: string;
  /** Kept as the group's oldest snapshot while the rule had counts left (its bucket already had a newer one). */
  oldest?: true;
  /** E.g. `daily snapshot (2024-03-05)`, `oldest monthly snapshot (2024-01)`, `within 7d`, `has tag keep`. */
  text: string;
}

export interface RetentionDecision<T> {
  item: T;
  /** The snapshot time in ms since the epoch. */
  time: number;
  action: 'keep' | 'remove';
  /** Every rule that kept the snapshot (empty when removed). */
  reasons: KeepReason[];
  /** For a removed snapshot: why each rule of the policy did not keep it. */
  notKept: string[];
  /** Counts left after this snapshot, per count rule in use (-1: unlimited), as restic reports them. */
  counters: Partial<Record<CountRuleKey, number>>;
}

export interface PolicyResult<T> {
  /** Kept items, newest first. */
  keep: T[];
  /** Removed items, newest first. */
  remove: T[];
  /** Every item, newest first, with its decision. */
  decisions: Array<RetentionDecision<T>>;
  /** The time the `keepWithin*` rules are relative to (the newest snapshot not in the future), if any. */
  newest?: number;
}

export interface ApplyPolicyOptions {
  /** "Now", for telling snapshots in the future (default `Date.now()`). */
  now?: number;
}

const short = (id: string) => id.slice(0, 8);

/** The time of an item in ms; a snapshot whose time does not parse is refused (a policy must not guess). */
function itemTime(item: RetentionItem): number {
  const ms = typeof item.snapshot.time === 'string' ? Date.parse(item.snapshot.time) : NaN;
  if (!Number.isFinite(ms)) {
    throw new IntegrityError(
      `snapshots/${item.id}: its time ${JSON.stringify(item.snapshot.time)} is not a valid time, so no retention policy can place it; forget it by id, or repair it`,
      { file: `snapshots/${item.id}` },
    );
  }
  return ms;
}

interface BucketState {
  rule: RuleInfo;
  kind: BucketKind | 'last';
  /** Counts left (-1 unlimited); for within-bucket rules always -1. */
  left: number;
  total: number;
  kept: number;
  last: number | undefined;
  lastLabel: string;
  lastKeptBy: string;
  /** Within-bucket rules: snapshots newer than this are eligible. */
  after?: number;
  duration?: RetentionDuration;
}

/**
 * Decide, for one group of snapshots, which ones `policy` keeps. Items may come in any
 * order; results are newest first. An empty policy keeps nothing (callers refuse it first).
 */
export function applyPolicy<T extends RetentionItem>(items: readonly T[], policy: RetentionPolicy, options: ApplyPolicyOptions = {}): PolicyResult<T> {
  const now = options.now ?? Date.now();
  const list = items
    .map((item) => ({ item, ms: itemTime(item) }))
    .sort((a, b) => b.ms - a.ms || (a.item.id < b.item.id ? -1 : a.item.id > b.item.id ? 1 : 0));
  const result: PolicyResult<T> = { keep: [], remove: [], decisions: [] };
  if (list.length === 0) return result;

  let newest: number | undefined;
  for (const { ms } of list) if (ms < now && (newest === undefined || ms > newest)) newest = ms;
  if (newest !== undefined) result.newest = newest;
  // With every snapshot in the future there is no reference: everything is "within" (as restic).
  const since = (d: RetentionDuration): number => (newest === undefined ? -Infinity : subtractDuration(newest, d));

  const counts: BucketState[] = [];
  const withinBuckets: BucketState[] = [];
  for (const rule of RULES) {
    if (rule.type === 'count') {
      const n = policy[rule.key as CountRuleKey];
      if (n === undefined || n === 0) continue;
      counts.push({ rule, kind: rule.bucket!, left: n, total: n, kept: 0, last: undefined, lastLabel: '', lastKeptBy: '' });
    } else if (rule.type === 'within' && rule.bucket) {
      const d = policy[rule.key as WithinRuleKey];
      if (isZeroDuration(d)) continue;
      withinBuckets.push({ rule, kind: rule.bucket, left: UNLIMITED, total: UNLIMITED, kept: 0, last: undefined, lastLabel: '', lastKeptBy: '', after: since(d!), duration: d! });
    }
  }
  const within = isZeroDuration(policy.keepWithin) ? undefined : { d: policy.keepWithin!, after: since(policy.keepWithin!) };
  const tagLists = policy.keepTags ?? [];

  list.forEach(({ item, ms }, nr) => {
    const isOldest = nr === list.length - 1;
    const reasons: KeepReason[] = [];
    const notKept: string[] = [];

    if (tagLists.length) {
      let matched = false;
      for (const l of tagLists) {
        if (hasAllTags(item.snapshot.tags, l)) {
          matched = true;
          reasons.push({ rule: 'tag', flag: '--keep-tag', text: `has tag${l.length > 1 ? 's' : ''} ${l.join(',')}` });
        }
      }
      if (!matched) notKept.push(`tag: has no tag ${tagLists.map((l) => l.join('+')).join(' or ')}`);
    }

    if (within) {
      const dur = formatRetentionDuration(within.d);
      if (ms > within.after) reasons.push({ rule: 'within', flag: '--keep-within', text: `within ${dur}` });
      else notKept.push(`within ${dur}: not after ${formatLocalTime(within.after)}`);
    }

    const visit = (b: BucketState, dur?: string) => {
      const { value, label } = b.kind === 'last' ? { value: nr, label: '' } : bucketOf(b.kind, ms);
      const name = dur ? `${b.rule.name} ${dur}` : b.rule.name;
      if (value !== b.last || isOldest) {
        const oldest = value === b.last && isOldest;
        b.kept++;
        const bucket = b.kind === 'last' ? (b.total === UNLIMITED ? `#${b.kept}` : `${b.kept}/${b.total}`) : label;
        const text = `${oldest ? 'oldest ' : ''}${dur ? name : `${b.rule.name} snapshot`} (${bucket})`;
        reasons.push({ rule: b.rule.name, flag: b.rule.flag, bucket, ...(oldest ? { oldest: true as const } : {}), text });
        b.last = value;
        b.lastLabel = label;
        b.lastKeptBy = item.id;
        if (b.left > 0) b.left--;
      } else {
        notKept.push(`${name}: ${b.kind === 'week' ? 'week ' : ''}${label} already kept by the newer ${short(b.lastKeptBy)}`);
      }
    };

    for (const b of counts) {
      if (b.left > 0 || b.left === UNLIMITED) visit(b);
      else notKept.push(`${b.rule.name}: all ${b.total} kept`);
    }
    for (const b of withinBuckets) {
      const dur = formatRetentionDuration(b.duration!);
      if (ms > b.after!) visit(b, dur);
      else notKept.push(`${b.rule.name} ${dur}: not after ${formatLocalTime(b.after!)}`);
    }

    const counters: Partial<Record<CountRuleKey, number>> = {};
    for (const b of counts) counters[b.rule.key as CountRuleKey] = b.left;
    const keep = reasons.length > 0;
    (keep ? result.keep : result.remove).push(item);
    result.decisions.push({ item, time: ms, action: keep ? 'keep' : 'remove', reasons, notKept: keep ? [] : notKept, counters });
  });
  return result;
}

export interface RetentionPlanOptions {
  policy: RetentionPolicy;
  /** Default: host and paths. `[]`: one group of everything. */
  groupBy?: readonly GroupByField[];
  /** Only these snapshots are considered (the others are neither kept nor removed). */
  filter?: SnapshotSelection;
  now?: number;
}

export interface RetentionPlan<T> {
  groups: Array<{ key: SnapshotGroupKey; result: PolicyResult<T> }>;
  /** Every kept item, every removed item (over all groups). */
  keep: T[];
  remove: T[];
  /** `keepTags` lists that no considered snapshot has (likely a typo: worth a warning). */
  unmatchedTagLists: string[][];
  /** Groups that would lose every snapshot: `kiwi forget` refuses to apply such a plan. */
  emptiedGroups: SnapshotGroupKey[];
}

/**
 * Filter, group, and apply `policy` to each group: the whole decision of `kiwi forget`, also
 * for other callers (the daemon). Refuses an empty policy.
 * @throws PolicyError for an empty policy; IntegrityError for a snapshot whose time does not parse
 */
export function planRetention<T extends RetentionItem & SnapshotItem>(items: readonly T[], options: RetentionPlanOptions): RetentionPlan<T> {
  if (isEmptyPolicy(options.policy)) {
    throw new PolicyError(`the retention policy has no rule, so it would keep nothing: give at least one of ${POLICY_FLAGS.join(', ')}`);
  }
  const chosen = options.filter ? filterSnapshots(items, options.filter) : [...items];
  const plan: RetentionPlan<T> = { groups: [], keep: [], remove: [], unmatchedTagLists: [], emptiedGroups: [] };
  for (const l of options.policy.keepTags ?? []) {
    if (!chosen.some((i) => hasAllTags(i.snapshot.tags, l))) plan.unmatchedTagLists.push(l);
  }
  for (const g of groupSnapshots(chosen, options.groupBy ?? DEFAULT_GROUP_BY)) {
    const result = applyPolicy(g.items, options.policy, options.now !== undefined ? { now: options.now } : {});
    plan.groups.push({ key: g.key, result });
    // One by one: a group may hold any number of snapshots, and a spread into push() overflows
    // the stack past ~100,000 of them.
    for (const item of result.keep) plan.keep.push(item);
    for (const item of result.remove) plan.remove.push(item);
    if (result.keep.length === 0 && g.items.length > 0) plan.emptiedGroups.push(g.key);
  }
  return plan;
}
