import { describe, expect, it } from 'vitest';
import { loadTarget } from '../../src/index.js';

describe('loadTarget (LoadOptions.into)', () => {
  it('is the first length bytes of into when into is long enough', () => {
    const into = Buffer.alloc(100);
    for (const length of [0, 1, 99, 100]) {
      const t = loadTarget({ offset: 7, length, into })!;
      expect(Buffer.isBuffer(t)).toBe(true);
      expect(t.buffer).toBe(into.buffer);
      expect(t.byteOffset).toBe(into.byteOffset);
      expect(t.byteLength).toBe(length);
    }
    // A view into a bigger buffer keeps its own start.
    const view = Buffer.alloc(64).subarray(16, 48);
    const t = loadTarget({ length: 8, into: view })!;
    expect(t.byteOffset).toBe(view.byteOffset);
    expect(t.byteLength).toBe(8);
  });

  it('is undefined without into, without length, or when into is too short', () => {
    expect(loadTarget(undefined)).toBeUndefined();
    expect(loadTarget({})).toBeUndefined();
    expect(loadTarget({ length: 10 })).toBeUndefined();
    expect(loadTarget({ offset: 3, into: Buffer.alloc(100) })).toBeUndefined();
    expect(loadTarget({ length: 101, into: Buffer.alloc(100) })).toBeUndefined();
    expect(loadTarget({ length: -1, into: Buffer.alloc(100) })).toBeUndefined();
    expect(loadTarget({ length: 1.5, into: Buffer.alloc(100) })).toBeUndefined();
    expect(loadTarget({ length: 1, into: 'nope' as unknown as Buffer })).toBeUndefined();
  });

  it('accepts a plain Uint8Array from JavaScript callers, as a Buffer view', () => {
    const u8 = new Uint8Array(new ArrayBuffer(32), 8, 16);
    const t = loadTarget({ length: 10, into: u8 as unknown as Buffer })!;
    expect(Buffer.isBuffer(t)).toBe(true);
    expect(t.buffer).toBe(u8.buffer);
    expect(t.byteOffset).toBe(8);
    expect(t.byteLength).toBe(10);
  });
});
