import { describe, expect, it } from 'vitest';
import { mapLimitBytes } from '../../src/repository/blob-reader.js';

const tick = () => new Promise<void>((r) => setTimeout(r, 2));

describe('mapLimitBytes', () => {
  it('keeps the bytes in flight within the budget, and the count within the limit', async () => {
    const sizes = [30, 30, 30, 10, 10, 10, 10, 60, 5, 5];
    let held = 0;
    let running = 0;
    let maxHeld = 0;
    let maxRunning = 0;
    const out = await mapLimitBytes(sizes, 4, 64, (s) => s, async (s, i) => {
      held += s;
      running++;
      maxHeld = Math.max(maxHeld, held);
      maxRunning = Math.max(maxRunning, running);
      await tick();
      held -= s;
      running--;
      return i;
    });
    expect(out).toEqual(sizes.map((_, i) => i));
    expect(maxHeld).toBeLessThanOrEqual(64);
    expect(maxRunning).toBeLessThanOrEqual(4);
    expect(maxRunning).toBeGreaterThan(1);
  });

  it('an item larger than the whole budget still runs, alone', async () => {
    const sizes = [10, 500, 10];
    const log: string[] = [];
    await mapLimitBytes(sizes, 8, 64, (s) => s, async (s) => {
      log.push(`start ${s}`);
      await tick();
      log.push(`end ${s}`);
    });
    const big = log.indexOf('start 500');
    // Nothing else runs while the big one does.
    expect(log[big + 1]).toBe('end 500');
    expect(log.filter((l) => l.startsWith('end'))).toHaveLength(3);
  });

  it('a failure rejects, and the budget it held is freed for the others', async () => {
    await expect(
      mapLimitBytes([40, 40, 40], 3, 64, (s) => s, async (_s, i) => {
        await tick();
        if (i === 0) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
  });
});
