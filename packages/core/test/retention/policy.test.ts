import { describe, expect, it } from 'vitest';
import {
  PolicyError,
  RETENTION_RULES,
  applyPolicy,
  bucketOf,
  describePolicy,
  isEmptyPolicy,
  isoWeek,
  parseGroupBy,
  parsePolicy,
  parseRetentionCount,
  parseRetentionDuration,
  planRetention,
  subtractDuration,
  type GroupByField,
  type RetentionPolicyInput,
} from '../../src/retention/index.js';
import { IntegrityError } from '../../src/repository/errors.js';
import { POLICY_CASES, SERIES_TZ, series } from './acceptance-cases.js';

// Buckets are local time: pin the zone (Node re-reads TZ when it is assigned).
process.env.TZ = SERIES_TZ;

interface Snap {
  id: string;
  snapshot: { time: string; hostname: string; paths: string[]; tags: string[] };
}

/** A local `YYYY-MM-DD HH:MM:SS` as an ISO time (as Kiwi stores it: UTC). */
function localIso(t: string): string {
  const [d, h] = t.split(' ');
  const [y, mo, da] = d!.split('-').map(Number);
  const [hh, mm, ss] = (h ?? '00:00:00').split(':').map(Number);
  return new Date(y!, mo! - 1, da!, hh!, mm!, ss!).toISOString();
}

function snap(id: string, time: string, extra: Partial<Snap['snapshot']> = {}): Snap {
  return { id, snapshot: { time: localIso(time), hostname: 'h', paths: ['/data'], tags: [], ...extra } };
}

/** `kiwi forget` flags → policy input and grouping (the command does the same mapping). */
function fromFlags(flags: string[]): { input: RetentionPolicyInput; groupBy?: GroupByField[] } {
  const input: Record<string, unknown> = {};
  let groupBy: GroupByField[] | undefined;
  for (let i = 0; i < flags.length; i += 2) {
    const flag = flags[i]!;
    const value = flags[i + 1]!;
    if (flag === '--group-by') {
      groupBy = parseGroupBy(value);
      continue;
    }
    const rule = RETENTION_RULES.find((r) => r.flag === flag);
    if (!rule) throw new Error(`unknown flag ${flag}`);
    if (rule.key === 'keepTag') input.keepTag = [...((input.keepTag as string[]) ?? []), value];
    else input[rule.key] = value;
  }
  return { input: input as RetentionPolicyInput, ...(groupBy ? { groupBy } : {}) };
}

describe('the time zone of these tests', () => {
  it('is Europe/Berlin (so "local time" below means CET/CEST)', () => {
    expect(new Date('2024-01-15T12:00:00Z').getTimezoneOffset()).toBe(-60);
    expect(new Date('2024-07-15T12:00:00Z').getTimezoneOffset()).toBe(-120);
  });
});

describe('acceptance 1: 60 daily snapshots plus hourly and tagged ones, six policies', () => {
  const items = series().map((s, i) => ({ ...snap(`${String(i).padStart(2, '0')}${'0'.repeat(62)}`, s.time, { tags: s.tags }), label: s.label }));
  const labelOf = new Map(items.map((i) => [i.id, i.label]));

  it('the series has 65 snapshots in one host/paths group', () => {
    expect(items).toHaveLength(65);
    expect(new Set(items.map((i) => i.label)).size).toBe(65);
  });

  for (const c of POLICY_CASES) {
    it(c.name, () => {
      const { input, groupBy } = fromFlags(c.flags);
      const plan = planRetention(items, { policy: parsePolicy(input), ...(groupBy ? { groupBy } : {}), now: Date.parse('2024-06-01T00:00:00Z') });
      expect(plan.keep.map((i) => labelOf.get(i.id)).sort()).toEqual([...c.keep].sort());
      expect(plan.keep.length + plan.remove.length).toBe(items.length);
      const decisions = new Map(plan.groups.flatMap((g) => g.result.decisions).map((d) => [labelOf.get(d.item.id)!, d]));
      for (const [label, texts] of Object.entries(c.reasons ?? {})) {
        expect(decisions.get(label)!.reasons.map((r) => r.text), label).toEqual(texts);
      }
      // Snapshots kept only as "oldest" are exactly the ones the case names.
      const onlyOldest = [...decisions].filter(([, d]) => d.action === 'keep' && d.reasons.every((r) => r.oldest)).map(([l]) => l);
      expect(onlyOldest.sort()).toEqual([...(c.keptOnlyAsOldest ?? [])].sort());
      // Every removed snapshot says why each rule passed it over.
      for (const d of decisions.values()) {
        if (d.action === 'remove') expect(d.notKept.length, labelOf.get(d.item.id)).toBeGreaterThan(0);
        else expect(d.reasons.length).toBeGreaterThan(0);
      }
    });
  }

  it('explains removals: bucket already kept, counts used up, outside the duration, no tag', () => {
    const { input } = fromFlags(['--keep-daily', '2', '--keep-within', '1d', '--keep-tag', 'manual']);
    const r = applyPolicy(items, parsePolicy(input));
    const d = (label: string) => r.decisions.find((x) => labelOf.get(x.item.id) === label)!;
    expect(d('D02-27').notKept).toEqual(['tag: has no tag manual', 'within 1d: not after 2024-02-28 13:00:00', 'daily: all 2 kept']);
    expect(d('D02-29').reasons.map((x) => x.text)).toEqual(['within 1d']);
    expect(d('T02-10').reasons.map((x) => x.text)).toEqual(['has tag manual']);
  });
});

describe('applyPolicy', () => {
  it('-1 keeps every bucket; 0 turns a rule off', () => {
    const items = ['2024-01-01 10:00:00', '2024-01-02 10:00:00', '2024-01-02 11:00:00', '2024-01-03 10:00:00'].map((t, i) => snap(`a${i}`, t));
    const all = applyPolicy(items, parsePolicy({ keepDaily: -1 }));
    expect(all.keep.map((i) => i.id)).toEqual(['a3', 'a2', 'a0']);
    expect(all.remove.map((i) => i.id)).toEqual(['a1']);
    expect(all.decisions.find((d) => d.item.id === 'a1')!.notKept).toEqual(['daily: 2024-01-02 already kept by the newer a2']);
    expect(parsePolicy({ keepDaily: 'unlimited' })).toEqual({ keepDaily: -1 });
    const off = applyPolicy(items, parsePolicy({ keepDaily: 0, keepLast: 1 }));
    expect(off.keep.map((i) => i.id)).toEqual(['a3']);
    expect(off.decisions[1]!.notKept).toEqual(['last: all 1 kept']);
  });

  it('keeps the newest snapshot of a bucket, not the first one', () => {
    const items = [snap('early', '2024-05-01 01:00:00'), snap('late', '2024-05-01 23:00:00'), snap('next', '2024-05-02 00:30:00')];
    const r = applyPolicy(items, { keepDaily: 1 });
    expect(r.keep.map((i) => i.id)).toEqual(['next']);
    const r2 = applyPolicy(items, { keepDaily: 2 });
    // 'early' is the oldest: the daily rule still has no counts left after 'late', so it goes.
    expect(r2.keep.map((i) => i.id)).toEqual(['next', 'late']);
  });

  it('the oldest snapshot is kept by a rule with counts left, marked "oldest"', () => {
    const items = [snap('a', '2024-05-01 01:00:00'), snap('b', '2024-05-01 23:00:00')];
    const r = applyPolicy(items, { keepDaily: 5 });
    expect(r.keep.map((i) => i.id)).toEqual(['b', 'a']);
    expect(r.decisions[1]!.reasons).toEqual([{ rule: 'daily', flag: '--keep-daily', bucket: '2024-05-01', oldest: true, text: 'oldest daily snapshot (2024-05-01)' }]);
    expect(r.decisions[1]!.counters).toEqual({ keepDaily: 3 });
  });

  it('buckets by local time: 23:30 UTC on 5 March is 6 March in Berlin', () => {
    const items = [
      { id: 'x', snapshot: { time: '2024-03-05T23:30:00.000Z', tags: [] } },
      { id: 'y', snapshot: { time: '2024-03-05T22:30:00.000Z', tags: [] } },
    ];
    const r = applyPolicy(items, { keepDaily: 10 });
    expect(r.decisions.map((d) => d.reasons[0]?.bucket)).toEqual(['2024-03-06', '2024-03-05']);
  });

  it('the two 02:30 of the night the clocks go back share one hourly bucket (as restic)', () => {
    // 2024-10-27 02:30 CEST = 00:30Z, 02:30 CET = 01:30Z
    const items = [
      { id: 'cest', snapshot: { time: '2024-10-27T00:30:00.000Z' } },
      { id: 'cet', snapshot: { time: '2024-10-27T01:30:00.000Z' } },
      { id: 'one', snapshot: { time: '2024-10-27T00:00:00.000Z' } },
    ];
    const r = applyPolicy(items, { keepHourly: 2 });
    expect(r.keep.map((i) => i.id)).toEqual(['cet', 'one']);
    expect(r.decisions[0]!.reasons[0]!.bucket).toBe('2024-10-27 02h');
  });

  it('keep-within is relative to the newest snapshot, exclusive, and calendar-aware', () => {
    const items = [snap('newest', '2024-03-31 12:00:00'), snap('edge', '2024-03-02 12:00:00'), snap('in', '2024-03-02 12:00:01'), snap('out', '2024-03-01 12:00:00')];
    // 31 March minus 1 month = "31 February" = 2 March (2024 is a leap year): exactly that instant is not "within".
    expect(new Date(subtractDuration(Date.parse(localIso('2024-03-31 12:00:00')), { years: 0, months: 1, days: 0, hours: 0 })).toISOString()).toBe(localIso('2024-03-02 12:00:00'));
    const r = applyPolicy(items, parsePolicy({ keepWithin: '1m' }));
    expect(r.keep.map((i) => i.id)).toEqual(['newest', 'in']);
    expect(r.decisions.find((d) => d.item.id === 'edge')!.notKept).toEqual(['within 1m: not after 2024-03-02 12:00:00']);
    // Hours are elapsed time, applied after the calendar part.
    const h = applyPolicy(items, parsePolicy({ keepWithin: '29d23h' }));
    expect(h.keep.map((i) => i.id)).toEqual(['newest', 'in', 'edge']);
  });

  it('snapshots in the future do not move the reference of keep-within', () => {
    const now = Date.parse(localIso('2024-06-10 00:00:00'));
    const items = [snap('future', '2030-01-01 00:00:00'), snap('recent', '2024-06-09 00:00:00'), snap('old', '2024-06-01 00:00:00')];
    const r = applyPolicy(items, parsePolicy({ keepWithin: '2d' }), { now });
    expect(r.keep.map((i) => i.id)).toEqual(['future', 'recent']);
    expect(r.newest).toBe(Date.parse(localIso('2024-06-09 00:00:00')));
  });

  it('orders snapshots of the same time by id, and accepts any input order', () => {
    const items = [snap('b', '2024-01-01 00:00:00'), snap('a', '2024-01-01 00:00:00'), snap('c', '2023-01-01 00:00:00')];
    expect(applyPolicy(items, { keepLast: 1 }).keep.map((i) => i.id)).toEqual(['a']);
    expect(applyPolicy([...items].reverse(), { keepLast: 1 }).keep.map((i) => i.id)).toEqual(['a']);
  });

  it('a keep-tag list needs every tag of the list; several lists are alternatives', () => {
    const items = [snap('ab', '2024-01-03 00:00:00', { tags: ['a', 'b'] }), snap('a', '2024-01-02 00:00:00', { tags: ['a'] }), snap('c', '2024-01-01 00:00:00', { tags: ['c'] })];
    expect(applyPolicy(items, parsePolicy({ keepTag: 'a,b' })).keep.map((i) => i.id)).toEqual(['ab']);
    expect(applyPolicy(items, parsePolicy({ keepTag: ['a,b', 'c'] })).keep.map((i) => i.id)).toEqual(['ab', 'c']);
    expect(applyPolicy(items, parsePolicy({ keepTag: 'a' })).decisions[0]!.reasons.map((r) => r.text)).toEqual(['has tag a']);
  });

  it('refuses a snapshot whose time does not parse, naming it', () => {
    const items = [snap('good', '2024-01-01 00:00:00'), { id: 'bad1', snapshot: { time: 'yesterday', tags: [] } }];
    expect(() => applyPolicy(items, { keepLast: 1 })).toThrow(IntegrityError);
    expect(() => applyPolicy(items, { keepLast: 1 })).toThrow(/snapshots\/bad1: its time "yesterday" is not a valid time/);
  });

  it('an empty list keeps and removes nothing', () => {
    expect(applyPolicy([], { keepLast: 3 })).toEqual({ keep: [], remove: [], decisions: [] });
  });
});

describe('calendar buckets', () => {
  it('ISO weeks across year ends', () => {
    expect(isoWeek(2024, 11, 30)).toEqual({ year: 2025, week: 1 });
    expect(isoWeek(2021, 0, 3)).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(2024, 0, 1)).toEqual({ year: 2024, week: 1 });
    expect(isoWeek(2026, 11, 31)).toEqual({ year: 2026, week: 53 });
    expect(bucketOf('week', Date.parse(localIso('2024-02-29 13:00:00'))).label).toBe('2024-W09');
  });
  it('labels', () => {
    const t = Date.parse(localIso('2024-02-29 13:05:00'));
    expect(['hour', 'day', 'month', 'year'].map((k) => bucketOf(k as 'day', t).label)).toEqual(['2024-02-29 13h', '2024-02-29', '2024-02', '2024']);
  });
});

describe('parsing durations, counts and policies', () => {
  it('durations: units in any order, each once', () => {
    expect(parseRetentionDuration('1y2m3d4h', '--keep-within')).toEqual({ years: 1, months: 2, days: 3, hours: 4 });
    expect(parseRetentionDuration(' 4h1y ', '--keep-within')).toEqual({ years: 1, months: 0, days: 0, hours: 4 });
  });

  it.each([
    ['', /--keep-within needs a duration/],
    ['-1d', /--keep-within "-1d": negative durations are not allowed/],
    ['7', /no unit after 7/],
    ['7w', /unknown unit "w".*for weeks write 49d/],
    ['2M', /unknown unit "M".*months are a lower-case m/],
    ['30min', /unknown unit "min".*hours at the finest/],
    ['1d2d', /unit "d" is given twice/],
    ['1.5d', /1\.5 is not a whole number/],
    ['d', /expected a number at "d"/],
    ['1d 2h', /expected a number at " 2h"/],
    ['99999999d', /too large/],
  ])('duration %j is refused', (text, message) => {
    expect(() => parseRetentionDuration(text, '--keep-within')).toThrow(PolicyError);
    expect(() => parseRetentionDuration(text, '--keep-within')).toThrow(message);
  });

  it('counts: whole numbers, -1 and unlimited', () => {
    expect(parseRetentionCount('7', '--keep-daily')).toBe(7);
    expect(parseRetentionCount('0', '--keep-daily')).toBe(0);
    expect(parseRetentionCount('-1', '--keep-daily')).toBe(-1);
    expect(parseRetentionCount('unlimited', '--keep-daily')).toBe(-1);
    expect(parseRetentionCount(3, 'forget.keepDaily')).toBe(3);
  });

  it.each([
    ['-2', /--keep-daily "-2": negative counts are not allowed \(only -1, which means unlimited\)/],
    ['abc', /--keep-daily "abc" is not a count/],
    ['1.5', /--keep-daily "1.5" is not a count/],
    ['7d', /--keep-daily "7d" is not a count/],
    ['', /--keep-daily needs a count/],
    ['10000000', /too large/],
  ])('count %j is refused', (text, message) => {
    expect(() => parseRetentionCount(text, '--keep-daily')).toThrow(message);
  });

  it('policies: names the option; a zero duration is refused; an empty policy is detected', () => {
    expect(() => parsePolicy({ keepWithinDaily: '0d' })).toThrow(/--keep-within-daily "0d" keeps nothing/);
    expect(() => parsePolicy({ keepDaily: 'x' }, (r) => `forget.${r.key}`)).toThrow(/^forget\.keepDaily "x" is not a count/);
    expect(() => parsePolicy({ keepDayly: 3 } as unknown as RetentionPolicyInput)).toThrow(/unknown retention rule "keepDayly"/);
    expect(() => parsePolicy({ keepTag: ' , ' })).toThrow(/--keep-tag needs a tag/);
    expect(isEmptyPolicy(parsePolicy({ keepDaily: 0, keepLast: '0' }))).toBe(true);
    expect(isEmptyPolicy(parsePolicy({ keepDaily: -1 }))).toBe(false);
    expect(() => planRetention([], { policy: {} })).toThrow(/no rule, so it would keep nothing: give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within, --keep-within-hourly.*--keep-tag$/);
  });

  it('describes a policy in one line', () => {
    expect(describePolicy(parsePolicy({ keepDaily: 7, keepWeekly: 4, keepMonthly: -1, keepWithinDaily: '1m', keepTag: ['keep', 'a,b'], keepWithin: '2d' }))).toBe(
      'keep 7 daily, 4 weekly, all monthly snapshots, daily snapshots within 1m of the newest, all snapshots with tags [keep] or [a,b] and all snapshots within 2d of the newest',
    );
    expect(describePolicy(parsePolicy({ keepLast: 3 }))).toBe('keep 3 latest snapshots');
  });
});

describe('selection and grouping', () => {
  const items = [
    snap('1', '2024-01-01 00:00:00', { hostname: 'a', paths: ['/x', '/y'], tags: ['t'] }),
    snap('2', '2024-01-02 00:00:00', { hostname: 'a', paths: ['/y', '/x'], tags: [] }),
    snap('3', '2024-01-03 00:00:00', { hostname: 'b', paths: ['/x'], tags: ['t', 'u'] }),
  ];

  it('groups by host and the set of paths by default; by nothing with []', () => {
    const plan = planRetention(items, { policy: { keepLast: 1 } });
    expect(plan.groups.map((g) => [g.key, g.result.keep.map((i) => i.id)])).toEqual([
      [{ hostname: 'a', paths: ['/x', '/y'] }, ['2']],
      [{ hostname: 'b', paths: ['/x'] }, ['3']],
    ]);
    expect(planRetention(items, { policy: { keepLast: 1 }, groupBy: [] }).keep.map((i) => i.id)).toEqual(['3']);
    expect(planRetention(items, { policy: { keepLast: 1 }, groupBy: ['tags'] }).groups.map((g) => g.key)).toEqual([{ tags: [] }, { tags: ['t'] }, { tags: ['t', 'u'] }]);
  });

  it('filters: hosts (any), tag lists (all tags of one list), paths (all given)', () => {
    const ids = (filter: Parameters<typeof planRetention>[1]['filter']) => planRetention(items, { policy: { keepLast: -1 }, ...(filter ? { filter } : {}) }).keep.map((i) => i.id).sort();
    expect(ids({ hosts: ['b'] })).toEqual(['3']);
    expect(ids({ tags: [['t', 'u']] })).toEqual(['3']);
    expect(ids({ tags: [['t']] })).toEqual(['1', '3']);
    expect(ids({ tags: [['u'], ['t']] })).toEqual(['1', '3']);
    expect(ids({ paths: ['/y'] })).toEqual(['1', '2']);
    expect(ids({ paths: ['/x', '/y'] })).toEqual(['1', '2']);
  });

  it('reports keep-tag lists no snapshot has, and groups that would lose everything', () => {
    const plan = planRetention(items, { policy: { keepTags: [['nosuch'], ['t']] } });
    expect(plan.unmatchedTagLists).toEqual([['nosuch']]);
    expect(plan.emptiedGroups).toEqual([]);
    const none = planRetention(items, { policy: { keepTags: [['nosuch']] } });
    expect(none.emptiedGroups).toEqual([{ hostname: 'a', paths: ['/x', '/y'] }, { hostname: 'b', paths: ['/x'] }]);
  });

  it('parses --group-by, refusing unknown fields', () => {
    expect(parseGroupBy('host,paths')).toEqual(['host', 'paths']);
    expect(parseGroupBy('tag, hosts')).toEqual(['tags', 'host']);
    expect(parseGroupBy('')).toEqual([]);
    expect(() => parseGroupBy('host,time')).toThrow(/--group-by "host,time": unknown field "time" \(use host, paths and\/or tags/);
  });
});
