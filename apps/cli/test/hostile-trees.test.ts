/**
 * kiwi ls, diff and check over a repository with a crafted tree (issue 13 item 4): each bad
 * entry is one error, the rest is listed, the exit code says something was wrong, no stack trace.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostileRepo, dirNode, fileNode } from '@kiwi-backup/core/testing';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { jsonLines, removeDir, runKiwi, tempDir } from './helpers.js';

describe('crafted trees: ls, diff and check report each bad entry and go on', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let bad: string;
  let good: string;

  beforeAll(async () => {
    work = await tempDir();
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    const storage = createLocalStorage(join(work, 'repo'));
    const h = await HostileRepo.open(storage, 'pw');
    const data = await h.writeRawDataBlob(Buffer.from('hello'));
    const inner = await h.writeTree([fileNode('ok.txt', { size: 5, content: [data] }), fileNode('late', { mtimeNs: 'tomorrow' })]);
    const root = await h.writeTree([dirNode('dir', inner), null, fileNode('neg', { uid: -7 }), fileNode('top.txt', { size: 5, content: [data] })]);
    bad = await h.writeRawSnapshot(h.snapshotJson(root, { time: '2026-01-02T00:00:00Z' }));
    const clean = await h.writeTree([fileNode('top.txt', { size: 5, content: [data] })]);
    good = await h.writeRawSnapshot(h.snapshotJson(clean, { time: '2026-01-01T00:00:00Z' }));
    await storage.close();
  });
  afterAll(() => removeDir(work));

  it('ls lists the valid entries, reports each bad one, exits 1', async () => {
    const r = await runKiwi(['ls', bad.slice(0, 12), '--json'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const lines = jsonLines(r.stdout);
    expect(lines.filter((l) => l.message_type === 'node').map((l) => l.path)).toEqual(['/dir', '/dir/ok.txt', '/top.txt']);
    const errors = lines.filter((l) => l.message_type === 'error');
    expect(errors.map((e) => e.path)).toEqual(['/#1', '/neg', '/dir/late']);
    expect(String(errors[1]!.message)).toMatch(/uid -7 is not an integer/);
    expect(lines.find((l) => l.message_type === 'summary')).toMatchObject({ entries: 3, errors: 3 });
    const human = await runKiwi(['ls', '-l', bad.slice(0, 12)], { env });
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('/dir/ok.txt');
    expect(human.stderr).toContain("error: /dir/late: invalid entry 1 of tree");
  });

  it('diff compares the valid entries and reports the bad ones, exits 1', async () => {
    const r = await runKiwi(['diff', good.slice(0, 12), bad.slice(0, 12), '--json'], { env });
    expect(r.code).toBe(1);
    const lines = jsonLines(r.stdout);
    expect(lines.filter((l) => l.message_type === 'change').map((l) => `${l.modifier} ${l.path}`)).toEqual(['added /dir', 'added /dir/ok.txt']);
    expect(lines.filter((l) => l.message_type === 'error').map((e) => e.path)).toEqual(['/#1', '/neg', '/dir/late']);
  });

  it('find and dump search and write the valid entries, report the trees with bad ones, exit 1', async () => {
    const f = await runKiwi(['find', '*.txt', '--snapshot', bad.slice(0, 12), '--json'], { env });
    expect(f.code).toBe(1);
    const lines = jsonLines(f.stdout);
    expect(lines.filter((l) => l.message_type === 'match').map((l) => l.path)).toEqual(['/dir/ok.txt', '/top.txt']);
    expect(lines.filter((l) => l.message_type === 'error').map((e) => e.item)).toEqual(['/', '/dir']);
    const d = await runKiwi(['dump', bad.slice(0, 12), '/dir/ok.txt'], { env });
    expect([d.code, d.stdout]).toEqual([0, 'hello']);
    expect(d.stderr).toBe('');
  });

  it('check names each bad entry with its snapshot and path (it used to say "no errors were found")', async () => {
    const r = await runKiwi(['check'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('no errors were found');
    for (const p of ['/#1', '/neg', '/dir/late']) expect(r.stderr).toContain(`error: snapshots/${bad}: ${p}: invalid entry`);
    expect(r.stderr).toContain('check found 3 errors');
  });
});
