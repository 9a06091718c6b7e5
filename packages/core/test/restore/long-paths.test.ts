/**
 * Paths longer than PATH_MAX (4096 bytes): the restore names every entry one name below a
 * directory descriptor (restore/anchors.ts), so depth and name length do not add up.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { restoreSnapshot, type Node, type Snapshot } from '../../src/index.js';
import { anchorsAvailable } from '../../src/restore/anchors.js';
import { FakeRepository } from '../backup/helpers/fake-repo.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  // (rm walks with openat: Node's rm cannot remove a tree this deep.)
  spawnSync('rm', ['-rf', work]);
  await removeDir(work);
});

const MTIME = '1600000000123456789';

function node(name: string, extra: Partial<Node>): Node {
  return { name, type: 'file', mode: 0o640, uid: 0, gid: 0, mtimeNs: MTIME, ctimeNs: '0', inode: '1', dev: '1', size: 0, ...extra } as Node;
}

describe.runIf(anchorsAvailable())('restore of paths longer than 4096 bytes', () => {
  it('restores a file 30 directories of 200-byte names deep (6,000+ bytes), with its mode and the directories’ modes', async () => {
    const repo = new FakeRepository();
    const { id } = await repo.saveBlob('data', Buffer.from('deep down'));
    const name = 'n'.repeat(200);
    let tree = await repo.saveTree({ nodes: [node('file', { size: 9, content: [id] })] });
    const levels = 30;
    for (let i = 0; i < levels; i++) tree = await repo.saveTree({ nodes: [node(name, { type: 'dir', mode: 0o750, subtree: tree })] });
    const snap: Snapshot = { time: new Date().toISOString(), hostname: 'h', username: 'u', paths: ['/x'], tags: [], tree, programVersion: 'test' };
    const target = join(work, 'target');
    for (const round of [1, 2]) {
      // (Round 2: into the restored tree, where every directory is found and looked at.)
      const rr = await restoreSnapshot({ repository: repo, snapshot: snap, target, overwrite: 'always' });
      expect(rr.errors, `round ${round}`).toEqual([]);
      expect(rr.filesRestored).toBe(1);
      expect(rr.dirsRestored).toBe(levels);
    }
    // Walk down one name at a time (the whole path is too long for open(2)).
    let fd = openSync(target, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      for (let i = 0; i < levels; i++) {
        const next = openSync(`/proc/self/fd/${fd}/${name}`, constants.O_RDONLY | constants.O_DIRECTORY);
        closeSync(fd);
        fd = next;
        expect(fstatSync(fd).mode & 0o7777).toBe(0o750);
      }
      expect(readFileSync(`/proc/self/fd/${fd}/file`, 'utf8')).toBe('deep down');
      const f = openSync(`/proc/self/fd/${fd}/file`, constants.O_RDONLY);
      const st = fstatSync(f, { bigint: true });
      closeSync(f);
      expect(Number(st.mode) & 0o7777).toBe(0o640);
    } finally {
      closeSync(fd);
    }
  });
});
