import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/repository/canonical.js';

describe('canonicalJson', () => {
  it('sorts keys at every level, drops undefined members, keeps array order and nulls', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, undefined, { z: 1, y: 2 }], c: undefined }, A: 'x' })).toBe('{"A":"x","a":{"d":[3,null,{"y":2,"z":1}]},"b":1}');
  });
  it('gives the same bytes whatever order the keys were inserted in', () => {
    const one = { name: 'f', type: 'file', size: 3, content: ['ab'], mtimeNs: '1' };
    const two = { content: ['ab'], mtimeNs: '1', size: 3, type: 'file', name: 'f' };
    expect(canonicalJson({ nodes: [one] })).toBe(canonicalJson({ nodes: [two] }));
  });
  it('keeps a "__proto__" key as a key, and refuses non-finite numbers and bigints', () => {
    expect(canonicalJson(JSON.parse('{"z":1,"__proto__":{"x":1}}'))).toBe('{"__proto__":{"x":1},"z":1}');
    expect(() => canonicalJson({ a: Infinity })).toThrow(/non-finite/);
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
  });
});
