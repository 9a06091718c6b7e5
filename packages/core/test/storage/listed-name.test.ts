/** The rule every adapter's `list` applies: only what `load` reads under the same name is listed. */
import { describe, expect, it } from 'vitest';
import { listedNameProblem } from '../../src/storage/types.js';

describe('listedNameProblem', () => {
  it('accepts a pack only in its own data/xx directory, and only names assertValidHandle accepts', () => {
    const pack = 'a8'.repeat(32);
    expect(listedNameProblem('data', pack, 'a8')).toBeUndefined();
    expect(listedNameProblem('data', pack, '00')).toBe('a pack of that name belongs in data/a8/, where it is loaded from');
    expect(listedNameProblem('data', pack, undefined)).toMatch(/belongs in data\/a8\//);
    expect(listedNameProblem('data', pack, 'x/a8')).toMatch(/belongs in data\/a8\//);
    expect(listedNameProblem('data', 'a8', 'a8')).toBe('not a pack file name (64 lowercase hex digits)');
    expect(listedNameProblem('data', pack.toUpperCase(), 'A8')).toBe('not a pack file name (64 lowercase hex digits)');
    expect(listedNameProblem('index', 'a b')).toBe('not a valid index file name');
    expect(listedNameProblem('index', '..')).toBe('not a valid index file name');
    expect(listedNameProblem('lock', 'abc')).toBeUndefined();
    expect(listedNameProblem('snapshot', 'abc')).toBeUndefined();
  });
});
