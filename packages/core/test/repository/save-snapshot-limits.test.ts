/**
 * saveSnapshot writes only what readers accept: a snapshot over the size limit, or with a field out of
 * its bounds, was saved before, and then did not restore and made every listing report damage.
 */
import { describe, expect, it } from 'vitest';
import { MAX_SNAPSHOT_SIZE } from '../../src/repository/limits.js';
import type { Snapshot } from '../../src/repository/types.js';
import { newRepo } from './helpers.js';

describe('saveSnapshot', () => {
  it('refuses a snapshot readers would refuse; nothing is written, and the repository lists as before', async () => {
    const { repo, storage } = await newRepo();
    const tree = await repo.saveTree({ nodes: [] });
    await repo.flush();
    const good: Snapshot = { time: new Date().toISOString(), hostname: 'h', username: 'u', paths: ['/src'], tags: [], tree, programVersion: 'test' };
    const id = await repo.saveSnapshot(good);
    const before = storage.paths('snapshots/');

    const huge = { ...good, plugins: { blob: 'x'.repeat(MAX_SNAPSHOT_SIZE) } };
    await expect(repo.saveSnapshot(huge)).rejects.toThrow(/refusing to save a snapshot that could not be read back: \d+ bytes, more than the limit of 16777216/);
    await expect(repo.saveSnapshot({ ...good, tags: ['a\0b'] })).rejects.toThrow(/refusing to save a snapshot that could not be read back: not a valid snapshot: tags\[0\]/);
    await expect(repo.saveSnapshot({ ...good, paths: ['relative/path'] })).rejects.toThrow(/paths\[0\] is not an absolute path/);
    // The copy markers too (copy, tag and repair carry them on).
    await expect(repo.saveSnapshot({ ...good, original: 'not-an-id' })).rejects.toThrow(/original is not a snapshot id/);
    await expect(repo.saveSnapshot({ ...good, repaired: { from: 42 } as unknown as Snapshot['repaired'] })).rejects.toThrow(/repaired is not a repair marker/);
    expect(await repo.saveSnapshot({ ...good, tags: ['ok'], original: id })).toMatch(/^[0-9a-f]{64}$/);

    const now = storage.paths('snapshots/');
    expect(now.length).toBe(before.length + 1);
    expect(now).toEqual(expect.arrayContaining(before));
    expect((await repo.listSnapshots()).map((s) => s.id)).toContain(id);
    await repo.close();
  });
});
