import { describe, expect, it } from 'vitest';
import { compareText, compareTimes } from '../src/time-order.js';

describe('time order', () => {
  it('orders by the instant, whatever the offset or the precision', () => {
    const times = ['2026-12-07T02:00:00.000Z', '2026-12-07T02:30:00+01:00', '2026-12-07T01:00:00.123456789Z', '2026-12-07T01:59:59.999Z'];
    expect([...times].sort(compareTimes)).toEqual(['2026-12-07T01:00:00.123456789Z', '2026-12-07T02:30:00+01:00', '2026-12-07T01:59:59.999Z', '2026-12-07T02:00:00.000Z']);
  });

  it('the same millisecond: by the text, so nanoseconds still count', () => {
    expect(compareTimes('2026-12-07T01:00:00.000000002Z', '2026-12-07T01:00:00.000000001Z')).toBe(1);
    expect(compareTimes('2026-12-07T01:00:00Z', '2026-12-07T01:00:00Z')).toBe(0);
  });

  it('a text that is no date is still ordered (by its text), so sorting stays total', () => {
    const list = ['zzz', '2026-12-07T01:00:00Z', 'aaa'].sort(compareTimes);
    expect(list).toHaveLength(3);
    expect(compareTimes('aaa', 'zzz')).toBe(-1);
  });

  it('text by code point, not by locale', () => {
    expect(['b', 'B', 'a', '_'].sort(compareText)).toEqual(['B', '_', 'a', 'b']);
  });
});
