import { describe, expect, it } from 'vitest';
import { BufferPool } from '../src/buffer-pool.js';

const MiB = 1 << 20;

describe('BufferPool', () => {
  it('allocates exact sizes by default and hands back the smallest idle buffer that fits', () => {
    const pool = new BufferPool({ maxIdle: 4 });
    const a = pool.acquire(3000);
    const b = pool.acquire(1000);
    const c = pool.acquire(2000);
    expect([a.length, b.length, c.length]).toEqual([3000, 1000, 2000]);
    for (const x of [a, b, c]) pool.release(x);
    expect(pool.acquire(1500)).toBe(c);
    expect(pool.acquire(1500)).toBe(a);
    expect(pool.acquire(1500).length).toBe(1500); // b (1000) is too small
    expect(pool.idle).toBe(1);
  });

  it('with size classes, allocates powers of two from the minimum, so one buffer serves varying sizes', () => {
    const pool = new BufferPool({ maxIdle: 4, sizeClassesFrom: MiB });
    expect(pool.acquire(10).length).toBe(MiB);
    expect(pool.acquire(MiB).length).toBe(MiB);
    const x = pool.acquire(MiB + 1);
    expect(x.length).toBe(2 * MiB);
    expect(pool.acquire(5 * MiB).length).toBe(8 * MiB);
    pool.release(x);
    for (const size of [1.1, 1.5, 1.9, 2].map((m) => Math.floor(m * MiB))) {
      const b = pool.acquire(size);
      expect(b).toBe(x);
      pool.release(b);
    }
  });

  it('when full, a released buffer replaces a smaller idle one; oversized and repeated releases are not kept', () => {
    const pool = new BufferPool({ maxIdle: 2, maxPooledSize: 4096 });
    const small = pool.acquire(100);
    const mid = pool.acquire(200);
    const big = pool.acquire(300);
    const huge = pool.acquire(5000);
    pool.release(small);
    pool.release(mid);
    pool.release(big); // replaces `small`
    pool.release(huge); // over maxPooledSize
    pool.release(big); // already idle
    expect(pool.idle).toBe(2);
    expect(pool.acquire(150)).toBe(mid);
    expect(pool.acquire(150)).toBe(big);
    expect(pool.acquire(50)).not.toBe(small);
  });

  it('maxIdleBytes bounds what the idle buffers hold together: the smallest go first, and one larger than the bound is not kept', () => {
    const pool = new BufferPool({ maxIdle: 12, sizeClassesFrom: MiB, maxIdleBytes: 10 * MiB });
    const bufs = [1, 2, 8, 4, 1, 16].map((m) => pool.acquire(m * MiB));
    for (const b of bufs) {
      pool.release(b);
      expect(pool.idleSize).toBeLessThanOrEqual(10 * MiB);
    }
    // 1 + 2 + 8 is over: 1 goes; 4 then pushes out 2, and itself; the last 1 fits beside 8; 16 is over the bound.
    expect(pool.idleSize).toBe(9 * MiB);
    expect(pool.idle).toBe(2);
    expect(pool.acquire(3 * MiB)).toBe(bufs[2]);
    expect(pool.acquire(MiB)).toBe(bufs[4]);
    expect(pool.idleSize).toBe(0);
    // Many releases of the largest size never ratchet the idle set above the bound.
    const big = Array.from({ length: 12 }, () => pool.acquire(8 * MiB));
    for (const b of big) pool.release(b);
    expect(pool.idle).toBe(1);
    expect(pool.idleSize).toBe(8 * MiB);
    pool.clear();
    expect(pool.idleSize).toBe(0);
  });

  it('maxIdle 0 keeps nothing; clear drops the idle buffers', () => {
    const none = new BufferPool({ maxIdle: 0 });
    none.release(none.acquire(10));
    expect(none.idle).toBe(0);
    const pool = new BufferPool();
    pool.release(pool.acquire(10));
    expect(pool.idle).toBe(1);
    pool.clear();
    expect(pool.idle).toBe(0);
  });
});
