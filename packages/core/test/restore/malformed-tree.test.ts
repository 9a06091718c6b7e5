import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { restoreSnapshot, type Snapshot } from '../../src/index.js';
import { FakeRepository } from '../backup/helpers/fake-repo.js';
import { MAX_TREE_DEPTH } from '../../src/repository/limits.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

const base = { type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: '1600000000000000000', ctimeNs: '0', inode: '1', dev: '1' } as const;

function snapshotOf(tree: string): Snapshot {
  return { time: new Date().toISOString(), hostname: 'h', username: 'u', paths: ['/x'], tags: [], tree, programVersion: 'test' };
}

/** Writes a tree as JSON (any shape: the point is hostile trees). */
async function saveRawTree(repo: FakeRepository, nodes: unknown[]): Promise<string> {
  return (await repo.saveBlob('tree', Buffer.from(JSON.stringify({ nodes })))).id;
}

describe('a malformed tree entry is one error; the rest restores', () => {
  it('null entries, bad mtimes, owner ids, NUL in a symlink target, bad names, bad attributes, bad devices', async () => {
    const repo = new FakeRepository();
    const { id: data } = await repo.saveBlob('data', Buffer.from('good'));
    const file = (name: string, extra: Record<string, unknown> = {}) => ({ ...base, name, size: 4, content: [data], ...extra });
    const sub = await saveRawTree(repo, [null, file('inner-ok'), file('inner-bad', { mtimeNs: 'soon' })]);
    const tree = await saveRawTree(repo, [
      null,
      42,
      'a string',
      [],
      file('a-ok'),
      file('bad-mtime', { mtimeNs: 'yesterday' }),
      file('bad-mtime-number', { mtimeNs: 1600000000 }),
      file('bad-mtime-huge', { mtimeNs: '99999999999999999999999999999' }),
      file('uid-negative', { uid: -7 }),
      file('uid-2^32', { uid: 2 ** 32 }),
      file('gid-fraction', { gid: 1.5 }),
      file('mode-big', { mode: 0o170000 }),
      file('size-negative', { size: -1 }),
      file('content-not-ids', { content: ['../../etc/passwd'] }),
      { ...base, type: 'symlink', name: 'link-nul', size: 0, linkTarget: 'a\0b' },
      { ...base, type: 'symlink', name: 'link-raw-nul', size: 0, linkTargetRaw: Buffer.from('x\0y').toString('base64') },
      { ...base, type: 'symlink', name: 'link-ok', size: 0, linkTarget: 'a-ok' },
      file('a/b'),
      file('..'),
      file('.'),
      file(''),
      file('x', { nameRaw: Buffer.from('../../escape').toString('base64') }),
      { ...file('no-name'), name: undefined },
      { ...file('weird-type'), type: 'door' },
      { ...base, type: 'chardev', name: 'dev-bad', size: 0, rdev: '-1' },
      file('xattr-not-list', { xattrs: 'user.a' }),
      file('xattr-bad-value', { xattrs: [{ name: 'user.a', value: '***' }] }),
      file('xattr-huge', { xattrs: [{ name: 'user.a', value: 'A'.repeat(200_000) }] }),
      file('xattr-nul-name', { xattrs: [{ name: 'user.\0a', value: '' }] }),
      { ...base, type: 'dir', name: 'd', size: 0, subtree: sub },
      file('z-ok'),
    ]);
    const target = join(work, 'target');
    const rr = await restoreSnapshot({ repository: repo, snapshot: snapshotOf(tree), target });
    // Each bad entry is an error (named by its path where it has a usable name; how the nameless ones are
    // named is up to the tree validator), and nothing else is.
    const named = ['/bad-mtime', '/bad-mtime-number', '/bad-mtime-huge', '/uid-negative', '/uid-2^32', '/gid-fraction', '/mode-big', '/size-negative', '/content-not-ids', '/link-nul', '/link-raw-nul', '/weird-type', '/dev-bad', '/xattr-not-list', '/xattr-bad-value', '/xattr-huge', '/xattr-nul-name', '/d/inner-bad'];
    const text = rr.errors.map((e) => `${e.path} ${e.message}`);
    for (const n of named) expect(text.some((t) => t.startsWith(`${n} `) || t.includes(n.slice(n.lastIndexOf('/') + 1))), n).toBe(true);
    // Without a usable name: null, 42, 'a string', [], no name, the null in d; 'a/b', '..', '.', '', '../../escape' (nameRaw).
    const nameless = 11;
    expect(rr.errorCount).toBeGreaterThan(named.length);
    expect(rr.errorCount).toBeLessThanOrEqual(named.length + nameless);
    for (const e of rr.errors) expect(e.message).not.toMatch(/\n\s+at /);
    // The sound entries are all there, and nothing else (nothing outside the target either).
    expect(await readFile(join(target, 'a-ok'), 'utf8')).toBe('good');
    expect(await readFile(join(target, 'z-ok'), 'utf8')).toBe('good');
    expect(await readFile(join(target, 'd/inner-ok'), 'utf8')).toBe('good');
    expect(await readlink(join(target, 'link-ok'))).toBe('a-ok');
    expect((await readdir(target)).sort()).toEqual(['a-ok', 'd', 'link-ok', 'z-ok']);
    expect(await readdir(join(target, 'd'))).toEqual(['inner-ok']);
    expect(await readdir(work)).toEqual(['target']);
    expect(rr.filesRestored).toBe(3);
    expect((await lstat(join(target, 'a-ok'))).mtimeMs).toBe(1600000000000);
  });

  it('the error list is capped in memory; the count goes on', async () => {
    const repo = new FakeRepository();
    const nodes: unknown[] = [];
    for (let i = 0; i < 2500; i++) nodes.push({ ...base, name: `bad-${String(i).padStart(5, '0')}`, size: 0, content: [], uid: -1 });
    nodes.push({ ...base, name: 'ok', size: 0, content: [] });
    const tree = await saveRawTree(repo, nodes);
    const seen: string[] = [];
    const rr = await restoreSnapshot({ repository: repo, snapshot: snapshotOf(tree), target: join(work, 't'), onError: (e) => seen.push(e.path) });
    expect(rr.errorCount).toBe(2500);
    expect(rr.errors).toHaveLength(1000);
    expect(seen).toHaveLength(2500);
    expect(rr.filesRestored).toBe(1);
  });

  it('directories nested deeper than the tree depth limit are one error; everything above restores', async () => {
    const repo = new FakeRepository();
    const levels = MAX_TREE_DEPTH + 6;
    let sub = await saveRawTree(repo, [{ ...base, name: 'bottom', size: 0, content: [] }]);
    for (let i = levels; i >= 1; i--) {
      sub = await saveRawTree(repo, [{ ...base, type: 'dir', mode: 0o755, name: 'd', size: 0, subtree: sub }, { ...base, name: `f${i}`, size: 0, content: [] }]);
    }
    const target = join(work, 't');
    const rr = await restoreSnapshot({ repository: repo, snapshot: snapshotOf(sub), target });
    const deepest = '/d'.repeat(MAX_TREE_DEPTH);
    expect(rr.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([`${deepest}/d: directories nested deeper than ${MAX_TREE_DEPTH} levels; not restored below`]);
    expect(await readdir(join(target, ...Array(MAX_TREE_DEPTH).fill('d')))).toEqual([`f${MAX_TREE_DEPTH + 1}`]);
    expect(rr.filesRestored).toBe(MAX_TREE_DEPTH + 1);
  });

  it('a directory whose tree cannot be loaded is one error; its siblings restore', async () => {
    const repo = new FakeRepository();
    const tree = await saveRawTree(repo, [{ ...base, type: 'dir', name: 'd', size: 0, subtree: 'f'.repeat(64) }, { ...base, name: 'after', size: 0, content: [] }]);
    const rr = await restoreSnapshot({ repository: repo, snapshot: snapshotOf(tree), target: join(work, 't') });
    expect(rr.errors.map((e) => e.path)).toEqual(['/d']);
    expect(await readdir(join(work, 't'))).toEqual(['after', 'd']);
  });
});


describe('through the repository (core tree validator first)', () => {
  it('bad extended attributes or a bad sparse flag are one error each; good attributes are restored', async () => {
    const { HostileRepo, fileNode } = await import('../../src/testing/hostile.js');
    const { Repository } = await import('../../src/repository/repository.js');
    const { FAST_KDF, newRepo, quietLogger } = await import('../repository/helpers.js');
    const { nativeFs } = await import('../../src/native/native-fs.js');
    const { repo: r0, storage } = await newRepo();
    await r0.close();
    const h = await HostileRepo.open(storage, 'secret');
    const data = await h.writeRawDataBlob(Buffer.from('abc'));
    const good = { name: 'user.good', value: Buffer.from('yes').toString('base64') };
    const root = await h.writeTree([
      fileNode('bad-xattr', { size: 3, content: [data], xattrs: [{ name: 'user.x', value: 'not base64!' }] }),
      fileNode('bad-sparse', { size: 3, content: [data], sparse: 'yes' }),
      fileNode('ok', { size: 3, content: [data], xattrs: [good], sparse: true }),
    ]);
    const repo = await Repository.open(storage, 'secret', { logger: quietLogger(), kdf: FAST_KDF });
    const snapshot = await repo.loadSnapshot(await h.writeRawSnapshot(h.snapshotJson(root)));
    const target = join(work, 't');
    const rr = await restoreSnapshot({ repository: repo, snapshot, target, owners: false });
    expect(rr.errors.map((e) => e.path).sort()).toEqual(['/bad-sparse', '/bad-xattr']);
    expect(await readFile(join(target, 'ok'), 'utf8')).toBe('abc');
    const nfs = nativeFs();
    if (nfs?.xattrSupported && process.platform === 'linux') expect(nfs.llistxattrSync(Buffer.from(join(target, 'ok'))).map(String)).toContain('user.good');
    await repo.close();
  });
});
