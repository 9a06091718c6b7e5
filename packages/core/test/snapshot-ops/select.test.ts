import { describe, expect, it } from 'vitest';
import { matchesSelection, selectSnapshot, selectSnapshots, type SnapshotLister, type SnapshotRef } from '../../src/snapshot-ops/select.js';
import { SnapshotNotFoundError } from '../../src/repository/errors.js';
import type { Snapshot } from '../../src/repository/types.js';

function snap(id: string, time: string, hostname: string, paths: string[], tags: string[] = []): SnapshotRef {
  const snapshot: Snapshot = { time, hostname, username: 'u', paths, tags, tree: 'f'.repeat(64), programVersion: 'test' };
  return { id: id.padEnd(64, '0'), snapshot };
}

/** A lister over fixed snapshots, with `findSnapshot` by prefix as the repository does it. */
function lister(list: SnapshotRef[]): SnapshotLister {
  return {
    listSnapshots: async () => [...list].sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time)),
    findSnapshot: async (ref) => {
      const m = list.filter((s) => s.id.startsWith(ref));
      if (m.length !== 1) throw new SnapshotNotFoundError(ref, m.map((s) => s.id));
      return m[0]!;
    },
  };
}

const repo = lister([
  snap('a1', '2024-01-01T00:00:00Z', 'laptop', ['/home/me'], ['daily']),
  snap('a2', '2024-01-02T00:00:00Z', 'laptop', ['/etc'], ['weekly']),
  snap('a3', '2024-01-03T00:00:00Z', 'laptop', ['/home/me'], ['daily', 'manual']),
  snap('b1', '2024-01-04T00:00:00Z', 'server', ['/srv', '/etc'], ['daily']),
]);

describe('snapshot selection', () => {
  it('latest prefers this host, says other hosts had newer ones and which other paths exist', async () => {
    const s = await selectSnapshot(repo, 'latest', {}, { thisHost: 'laptop' });
    expect(s.id.slice(0, 2)).toBe('a3');
    expect(s.hostDefault).toBe('this-host');
    expect(s.newerOnOtherHosts).toBe(1);
    expect(s.otherPaths).toEqual([['/etc']]);
  });

  it('latest of a host with no snapshots takes the newest of all hosts and says so', async () => {
    const s = await selectSnapshot(repo, 'latest', {}, { thisHost: 'elsewhere' });
    expect(s.id.slice(0, 2)).toBe('b1');
    expect(s.hostDefault).toBe('all-hosts');
  });

  it('--host, --tag (groups: a,b = both; repeated = either) and --path narrow latest', async () => {
    expect((await selectSnapshot(repo, 'latest', { hosts: ['server'] }, { thisHost: 'laptop' })).id.slice(0, 2)).toBe('b1');
    expect((await selectSnapshot(repo, 'latest', { tags: [['weekly']] }, { thisHost: 'laptop' })).id.slice(0, 2)).toBe('a2');
    expect((await selectSnapshot(repo, 'latest', { tags: [['daily', 'manual']] }, { thisHost: 'laptop' })).id.slice(0, 2)).toBe('a3');
    expect((await selectSnapshot(repo, 'latest', { tags: [['weekly'], ['nothing']] }, { thisHost: 'laptop' })).id.slice(0, 2)).toBe('a2');
    const byPath = await selectSnapshot(repo, 'latest', { paths: ['/etc'] }, { thisHost: 'laptop' });
    expect(byPath.id.slice(0, 2)).toBe('a2');
    expect(byPath.otherPaths).toEqual([]);
    // A path filter that only another host matches: that host's snapshot (this host has none matching).
    expect((await selectSnapshot(repo, 'latest', { paths: ['/srv'] }, { thisHost: 'laptop' })).id.slice(0, 2)).toBe('b1');
  });

  it('nothing matching, an unknown id and an ambiguous prefix fail with SnapshotNotFoundError; an id is taken as named', async () => {
    await expect(selectSnapshot(repo, 'latest', { hosts: ['nobody'] })).rejects.toThrow(/no snapshot matches "latest" with host nobody/);
    await expect(selectSnapshot(repo, 'ffff')).rejects.toBeInstanceOf(SnapshotNotFoundError);
    await expect(selectSnapshot(repo, 'a')).rejects.toThrow(/ambiguous/);
    const named = await selectSnapshot(repo, 'a1', { hosts: ['server'] });
    expect([named.id.slice(0, 2), named.latest]).toEqual(['a1', false]);
  });

  it('selectSnapshots: all matching, oldest first; named ones deduplicated', async () => {
    expect((await selectSnapshots(repo, [], { tags: [['daily']] })).map((s) => s.id.slice(0, 2))).toEqual(['a1', 'a3', 'b1']);
    expect((await selectSnapshots(repo, ['a3', 'a1', 'a3'])).map((s) => s.id.slice(0, 2))).toEqual(['a1', 'a3']);
  });

  it('an empty tag group matches snapshots without tags', () => {
    expect(matchesSelection(snap('x', '2024-01-01T00:00:00Z', 'h', ['/'], []).snapshot, { tags: [[]] })).toBe(true);
    expect(matchesSelection(snap('x', '2024-01-01T00:00:00Z', 'h', ['/'], ['t']).snapshot, { tags: [[]] })).toBe(false);
  });
});
