/**
 * Snapshot selection on a repository shared by several machines: `latest` takes this host's
 * snapshot, --host/--tag/--path choose others, and unknown or ambiguous ids exit 13.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, jsonLines, snapshotList } from './helpers.js';

describe('snapshot selection: latest, --host, --tag, --path', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let mine: string;
  let mineEtc: string;
  let theirs: string;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    work = await tempDir();
    mine = join(work, 'mine');
    mineEtc = join(work, 'mine-etc');
    theirs = join(work, 'theirs');
    for (const [dir, text] of [
      [mine, 'this host'],
      [mineEtc, 'this host, other paths'],
      [theirs, 'the other host'],
    ] as const) {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'who.txt'), text);
    }
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    // Oldest to newest: mine (tag a), mine-etc (tag b), theirs on another host (newest of all).
    for (const [name, args] of [
      ['mine', [mine, '--tag', 'a']],
      ['mineEtc', [mineEtc, '--tag', 'b,daily']],
      ['theirs', [theirs, '--host', 'other-host', '--tag', 'a']],
    ] as const) {
      const b = await runKiwi(['backup', ...args], { env });
      expect(b.code, b.stderr).toBe(0);
      ids[name] = b.stdout.trim();
    }
  });
  afterAll(() => removeDir(work));

  it('latest is this host\'s newest snapshot, and it says which one and what else there is', async () => {
    const r = await runKiwi(['ls', 'latest'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${mineEtc}/who.txt`);
    expect(r.stdout).not.toContain(theirs);
    // Notes: a newer snapshot of another host, and snapshots of other paths.
    expect(r.stderr).toContain(`using snapshot ${ids.mineEtc!.slice(0, 8)} of ${hostname()}`);
    expect(r.stderr).toMatch(/1 newer snapshot of other hosts left out \(choose with --host\)/);
    expect(r.stderr).toContain(`other paths: ${mine}`);

    const j = await runKiwi(['ls', 'latest', '--json'], { env });
    const selected = jsonLines(j.stdout).find((l) => l.message_type === 'snapshot_selected')!;
    expect(selected).toMatchObject({ id: ids.mineEtc, hostname: hostname(), paths: [mineEtc], host_default: 'this-host', newer_on_other_hosts: 1, other_paths: [[mine]] });
    expect(j.stderr).toBe('');
  });

  it('restore latest never restores another machine\'s data by default; --host picks it on purpose', async () => {
    const target = join(work, 'restore-default');
    const r = await runKiwi(['restore', 'latest', '--target', target], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(target, mineEtc, 'who.txt'), 'utf8')).toBe('this host, other paths');
    await expect(readFile(join(target, theirs, 'who.txt'))).rejects.toThrow();

    const other = join(work, 'restore-other');
    const o = await runKiwi(['restore', 'latest', '--host', 'other-host', '--target', other], { env });
    expect(o.code, o.stderr).toBe(0);
    expect(await readFile(join(other, theirs, 'who.txt'), 'utf8')).toBe('the other host');
  });

  it('--path and --tag choose among this host\'s snapshots; --tag a,b needs both', async () => {
    const byPath = await runKiwi(['dump', 'latest', join(mine, 'who.txt'), '--path', mine], { env });
    expect(byPath.code, byPath.stderr).toBe(0);
    expect(byPath.stdout).toBe('this host');
    const byTag = await runKiwi(['ls', 'latest', '--tag', 'a', '--json'], { env });
    expect(jsonLines(byTag.stdout).find((l) => l.message_type === 'snapshot_selected')!.id).toBe(ids.mine);
    const both = await runKiwi(['ls', 'latest', '--tag', 'b,daily', '--json'], { env });
    expect(jsonLines(both.stdout).find((l) => l.message_type === 'snapshot_selected')!.id).toBe(ids.mineEtc);
    const none = await runKiwi(['ls', 'latest', '--tag', 'a,daily'], { env });
    expect(none.code).toBe(13);
    expect(none.stderr).toMatch(/no snapshot matches "latest" with tags a,daily/);
    const snaps = await runKiwi(['snapshots', '--json', '--tag', 'a'], { env });
    expect(snapshotList(snaps.stdout).map((s) => s.id)).toEqual([ids.mine, ids.theirs]);
  });

  it('diff takes the same options (for latest; an id names its snapshot whatever the filters)', async () => {
    const d = await runKiwi(['diff', ids.mine!.slice(0, 10), 'latest', '--tag', 'b'], { env });
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain(`+    ${mineEtc}/who.txt`);
    expect(d.stdout).toContain(`-    ${mine}/who.txt`);
  });

  it('an unknown or ambiguous id, or a latest that nothing matches: exit 13, one line, no stack trace', async () => {
    // Two ids that share a first hex digit make a one-digit prefix ambiguous; find one.
    const all = Object.values(ids);
    const shared = all.map((id) => id[0]!).find((c, i, a) => a.indexOf(c) !== i);
    const cases: Array<[string[], RegExp]> = [
      [['ls', 'ffffffffffff'], /no snapshot matches "ffffffffffff"/],
      [['restore', 'not-hex', '--target', join(work, 'never')], /no snapshot matches "not-hex"/],
      [['dump', 'latest', '/x', '--host', 'nobody'], /no snapshot matches "latest" with host nobody/],
      [['diff', '0000000000', 'latest'], /no snapshot matches "0000000000"/],
    ];
    if (shared) cases.push([['ls', shared], /ambiguous/]);
    for (const [args, message] of cases) {
      const r = await runKiwi(args, { env });
      expect(r.code, args.join(' ')).toBe(13);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
    const j = await runKiwi(['ls', 'ffffffff', '--json'], { env });
    expect(j.code).toBe(13);
    expect(jsonLines(j.stdout)).toEqual([expect.objectContaining({ message_type: 'error', error: 'SnapshotNotFoundError' })]);
  });
});
