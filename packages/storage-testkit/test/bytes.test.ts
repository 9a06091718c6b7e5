import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { conformanceChecks, deterministicBytes, sha256Hex } from '../src/index.js';

describe('deterministicBytes', () => {
  it('depends only on the seed and the length', () => {
    expect(deterministicBytes(1000, 'a').equals(deterministicBytes(1000, 'a'))).toBe(true);
    expect(deterministicBytes(1000, 'a').equals(deterministicBytes(1000, 'b'))).toBe(false);
    expect(deterministicBytes(1000, 7).equals(deterministicBytes(1000, '7'))).toBe(true);
    // A prefix of a longer run is the shorter run.
    expect(deterministicBytes(4096, 's').subarray(0, 100).equals(deterministicBytes(100, 's'))).toBe(true);
    expect(deterministicBytes(0, 'x').length).toBe(0);
  });

  it('is stable across versions (pinned digest) and looks random', () => {
    const b = deterministicBytes(1 << 20, 'pin');
    expect(createHash('sha256').update(b).digest('hex')).toBe('8bbd55a5078f8e7c0214a1145cc9cff1617767d4d1f30fa4efac6f647949e8d3');
    expect(sha256Hex(deterministicBytes(32, 'kiwi')).length).toBe(64);
    const counts = new Uint32Array(256);
    for (const byte of b) counts[byte]!++;
    const expected = b.length / 256;
    for (const c of counts) expect(Math.abs(c - expected)).toBeLessThan(expected * 0.1);
  });

  it('rejects a bad length', () => {
    expect(() => deterministicBytes(-1)).toThrow(RangeError);
    expect(() => deterministicBytes(1.5)).toThrow(RangeError);
  });
});

describe('conformanceChecks', () => {
  it('have unique names and cover the contract', () => {
    const names = conformanceChecks.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const topic of ['create()', 'round-trip', 'ranged', 'stat', 'exactly once', 'empty type', 'remove', 'isNotFound', 'concurrent', 'partial', 'close()']) {
      expect(names.some((n) => n.includes(topic)), topic).toBe(true);
    }
  });
});
