/** check --read-data-subset (issue #10). */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { parseReadDataSubset, selectPacks } from '../../src/index.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';
import { generations } from './helpers.js';

let work: string;
beforeEach(async () => {
  work = await tempDir('kiwi-subset-');
});
afterEach(async () => {
  await removeDir(work);
});

describe('check --read-data-subset', () => {
  it('n/m groups partition the packs: m runs read every pack exactly once; x% and sizes pick random packs', async () => {
    const packs = Array.from({ length: 500 }, (_, i) => ({ name: createHash('sha256').update(String(i)).digest('hex'), size: 1000 + i }));
    const seen = new Map<string, number>();
    for (let n = 1; n <= 7; n++) for (const p of selectPacks(packs, parseReadDataSubset(`${n}/7`))) seen.set(p.name, (seen.get(p.name) ?? 0) + 1);
    expect(seen.size).toBe(500);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    expect(selectPacks(packs, parseReadDataSubset('10%'))).toHaveLength(50);
    const sized = selectPacks(packs, parseReadDataSubset('10k'));
    expect(sized.reduce((n, p) => n + p.size, 0)).toBeGreaterThanOrEqual(10 * 1024);
    expect(sized.length).toBeLessThan(12);
    expect(() => parseReadDataSubset('0/5')).toThrow(/1 ≤ n ≤ m/);
    expect(() => parseReadDataSubset('6/5')).toThrow(/1 ≤ n ≤ m/);
    expect(() => parseReadDataSubset('0%')).toThrow(/above 0/);
    expect(() => parseReadDataSubset('some')).toThrow(/expected n\/m/);
  });

  it('a damaged pack is found by the subset that holds it, and only by that one', async () => {
    const { storage, open } = await generations(work);
    const packs: string[] = [];
    for await (const f of storage.list('data')) packs.push(f.name);
    const victim = packs[0]!;
    const bytes = Buffer.from(await storage.load({ type: 'data', name: victim }));
    bytes[10] = bytes[10]! ^ 1;
    await storage.remove({ type: 'data', name: victim });
    await storage.save({ type: 'data', name: victim }, bytes);
    const repo = await open();
    const group = (parseInt(victim.slice(0, 8), 16) % 3) + 1;
    for (let n = 1; n <= 3; n++) {
      const report = await repo.check({ readDataSubset: parseReadDataSubset(`${n}/3`) });
      const named = report.errors.some((e) => e.file.endsWith(victim));
      expect(named, `group ${n}`).toBe(n === group);
    }
    await repo.close();
  });
});
