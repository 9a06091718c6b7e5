import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/repository/errors.js';
import { canonicalJson } from '../../src/repository/canonical.js';
import { MAX_REPORTED_ERRORS, MAX_TREE_ENTRIES } from '../../src/repository/limits.js';
import { invalidNodeCount, invalidNodes, parseSnapshot, parseTree } from '../../src/repository/validate.js';
import { dirNode, fileNode, treeJson } from '../../src/testing/hostile.js';

const ID = 'ab'.repeat(32);
const BLOB = 'cd'.repeat(32);

/** The reasons parseTree gives for each stored entry that is not valid (by index). */
function reasons(nodes: unknown[]): Map<number, string> {
  const t = parseTree(treeJson(nodes), ID);
  return new Map(invalidNodes(t).map((i) => [i.index, i.reason]));
}

describe('tree validation', () => {
  it('keeps valid entries and describes each invalid one, with its index and name', () => {
    const nodes: unknown[] = [
      fileNode('ok', { size: 3, content: [BLOB] }),
      null,
      fileNode('mtime', { mtimeNs: 12 }),
      fileNode('uid-7', { uid: -7 }),
      fileNode('uid2^32', { uid: 2 ** 32 }),
      { ...fileNode('link'), type: 'symlink', content: undefined, linkTarget: 'a\0b' },
      fileNode('a/b'),
      fileNode('..'),
      fileNode(''),
      fileNode('type', { type: 'door' }),
      fileNode('content', { size: 5, content: 'x' }),
      fileNode('content-id', { size: 5, content: ['nope'] }),
      dirNode('subtree', 'not-an-id'),
      fileNode('size-neg', { size: -1 }),
      fileNode('size-frac', { size: 1.5 }),
      fileNode('meta', { metadata: { big: 'x'.repeat(70_000) } }),
      fileNode('too-many-ids', { size: 1, content: [BLOB, BLOB] }),
      fileNode('nameRaw', { nameRaw: '!!!' }),
      fileNode('mode', { mode: 0o170000 }),
      42,
      [],
      fileNode('okdir-is-fine'),
    ];
    const t = parseTree(treeJson(nodes), ID);
    expect(t.nodes.map((n) => n.name)).toEqual(['ok', 'okdir-is-fine']);
    const inv = invalidNodes(t);
    expect(inv.map((i) => i.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(inv[0]).toEqual({ index: 1, reason: 'entry is null, not an object' });
    expect(inv[1]).toEqual({ index: 2, name: 'mtime', reason: 'mtimeNs is not a time in nanoseconds (a decimal string, its seconds within 64 bits)' });
    const r = new Map(inv.map((i) => [i.name ?? String(i.index), i.reason]));
    expect(r.get('uid-7')).toMatch(/uid -7 is not an integer/);
    expect(r.get('uid2^32')).toMatch(/uid 4294967296/);
    expect(r.get('link')).toMatch(/NUL/);
    expect(r.get('a/b')).toMatch(/'\/'/);
    expect(r.get('..')).toMatch(/name is \.\./);
    expect(r.get('8')).toMatch(/empty name/);
    expect(r.get('type')).toMatch(/unknown type "door"/);
    expect(r.get('content')).toMatch(/without a content list/);
    expect(r.get('content-id')).toMatch(/content\[0\] is not a blob id/);
    expect(r.get('subtree')).toMatch(/subtree/);
    expect(r.get('size-neg')).toMatch(/size -1/);
    expect(r.get('size-frac')).toMatch(/size 1.5/);
    expect(r.get('meta')).toMatch(/metadata of 700\d\d bytes/);
    expect(r.get('too-many-ids')).toMatch(/2 blobs for 1 bytes/);
    expect(r.get('nameRaw')).toMatch(/nameRaw is not base64/);
    expect(r.get('mode')).toMatch(/mode/);
    expect(invalidNodeCount(t)).toBe(20);
  });

  it('the invalid list is never stored: saving a loaded tree writes only its valid nodes', () => {
    const t = parseTree(treeJson([fileNode('a'), null]), ID);
    expect(JSON.parse(canonicalJson(t))).toEqual({ nodes: [fileNode('a')] });
    expect(Object.keys(t)).toEqual(['nodes']);
  });

  it('entries that share a name are all invalid (raw names compared)', () => {
    const r = reasons([fileNode('x'), fileNode('x', { inode: '2' }), fileNode('y'), fileNode('\ufffd', { nameRaw: Buffer.from('y').toString('base64') })]);
    expect([...r.keys()]).toEqual([0, 1, 2, 3]);
    expect([...r.values()].every((v) => v === 'duplicate name in this tree')).toBe(true);
  });

  it('accepts every node type Kiwi writes', () => {
    const r = reasons([
      fileNode('f', { size: 10, content: [BLOB], links: 2, user: 'u', group: 'g', metadata: { p: { x: 1 } } }),
      dirNode('d', BLOB),
      { ...fileNode('l'), type: 'symlink', content: undefined, linkTarget: '../x' },
      { ...fileNode('lr'), type: 'symlink', content: undefined, linkTargetRaw: Buffer.from([0xff, 0x41]).toString('base64') },
      { ...fileNode('c'), type: 'chardev', content: undefined, rdev: '259' },
      { ...fileNode('p'), type: 'fifo', content: undefined },
      fileNode('old', { mtimeNs: '-1000000000' }),
      fileNode('\ufffd', { nameRaw: Buffer.from([0xff, 0xfe]).toString('base64') }),
      // Seconds within 64 bits: beyond 64 bits of nanoseconds after 2262, and the extremes.
      fileNode('y2400', { mtimeNs: '13569465600000000123', ctimeNs: '9223372036854775807999999999' }),
      fileNode('ancient', { mtimeNs: '-9223372036854775808000000000' }),
    ]);
    expect(r.size).toBe(0);
  });

  it('refuses times whose seconds do not fit in 64 bits, and times that are not decimal strings', () => {
    const t = parseTree(
      treeJson([
        fileNode('a', { mtimeNs: '9223372036854775808000000000' }),
        fileNode('b', { mtimeNs: '-9223372036854775808000000001' }),
        fileNode('c', { mtimeNs: '10000000000000000000000000000' }),
        fileNode('d', { ctimeNs: '1e9' }),
        fileNode('e', { mtimeNs: '' }),
      ]),
      ID,
    );
    expect(invalidNodes(t).map((x) => x.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('refuses a tree that is not one, or has too many entries, as a whole', () => {
    expect(() => parseTree(Buffer.from('nope'), ID)).toThrow(IntegrityError);
    expect(() => parseTree(Buffer.from('{"nodes":{}}'), ID)).toThrow(/no nodes array/);
    expect(() => parseTree(Buffer.from('null'), ID)).toThrow(/no nodes array/);
    const many = Buffer.from(`{"nodes":[${'0,'.repeat(MAX_TREE_ENTRIES)}0]}`);
    expect(() => parseTree(many, ID)).toThrow(/far denser than any tree|more than the limit/);
  });

  it('refuses JSON far denser than a tree before parsing it', () => {
    const dense = Buffer.from(`{"nodes":[${'{},'.repeat(500_000)}{}]}`); // 1.5 MB → ~35 MB of heap
    expect(() => parseTree(dense, ID)).toThrow(/far denser than any tree/);
  });

  it('lists at most MAX_REPORTED_ERRORS invalid entries but counts all', () => {
    const t = parseTree(Buffer.from(`{"nodes":[${Array(5000).fill('null').join(',')}]}`), ID);
    expect(invalidNodes(t)).toHaveLength(MAX_REPORTED_ERRORS);
    expect(invalidNodeCount(t)).toBe(5000);
  });
});

describe('snapshot validation', () => {
  const snap = (over: Record<string, unknown> = {}) =>
    Buffer.from(JSON.stringify({ time: '2026-01-01T00:00:00Z', hostname: 'h', username: 'u', paths: ['/a', 'C:\\b'], tags: ['t'], tree: BLOB, programVersion: 'k', ...over }));
  it('accepts a snapshot and fills in missing tags', () => {
    expect(parseSnapshot(snap(), 'snapshots/x').tree).toBe(BLOB);
    expect(parseSnapshot(snap({ tags: undefined }), 'snapshots/x').tags).toEqual([]);
  });
  it.each([
    ['time', { time: 'yesterday' }, /time is not a date/],
    ['time type', { time: 5 }, /time/],
    ['hostname', { hostname: null }, /hostname/],
    ['relative path', { paths: ['rel'] }, /paths\[0\] is not an absolute path/],
    ['paths not array', { paths: '/a' }, /paths is not an array/],
    ['NUL in path', { paths: ['/a\0b'] }, /NUL/],
    ['tag', { tags: [1] }, /tags\[0\]/],
    ['tree', { tree: 'x' }, /tree is not a blob id/],
    ['parent', { parent: 7 }, /parent/],
    ['summary', { summary: [] }, /summary is not an object/],
    ['uid', { uid: -1 }, /uid/],
  ])('refuses a bad %s', (_w, over, re) => {
    expect(() => parseSnapshot(snap(over), 'snapshots/x')).toThrow(re);
    expect(() => parseSnapshot(snap(over), 'snapshots/x')).toThrow(/^snapshots\/x: /);
  });
  it('refuses a snapshot that is not an object or not JSON', () => {
    expect(() => parseSnapshot(Buffer.from('[]'), 'snapshots/x')).toThrow(/not a JSON object/);
    expect(() => parseSnapshot(Buffer.from('{'), 'snapshots/x')).toThrow(/not valid JSON/);
  });
});
