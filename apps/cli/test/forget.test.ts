/**
 * `kiwi forget`: forgetting by id, the policy from the config file, filters, and every kind of
 * bad input (each refused before anything is removed, with the option named).
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import { join } from 'node:path';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, jsonLines } from './helpers.js';

describe('kiwi forget', () => {
  let work: string;
  let template: string;
  let env: NodeJS.ProcessEnv;
  let src: string;
  let other: string;
  /** label → snapshot id of the template repository. */
  const ids = new Map<string, string>();

  const kiwi = (args: string[], extra: NodeJS.ProcessEnv = {}) => runKiwi(args, { env: { ...env, ...extra } });
  const snapshotIds = async () => {
    const r = await kiwi(['snapshots', '--json-lines']);
    expect(r.code, r.stderr).toBe(0);
    return jsonLines(r.stdout)
      .filter((l) => l.message_type === 'snapshot')
      .map((l) => String(l.id))
      .sort();
  };

  beforeAll(async () => {
    work = await tempDir('kiwi-forget-');
    src = join(work, 'src');
    other = join(work, 'other');
    await mkdir(src);
    await mkdir(other);
    await writeFile(join(src, 'a.txt'), 'a');
    await writeFile(join(other, 'b.txt'), 'b');
    template = join(work, 'template');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: template, KIWI_PASSWORD: 'pw', TZ: 'UTC' };
    expect((await kiwi(['init'])).code).toBe(0);
    const backups: Array<[string, string[]]> = [
      ['a1', [src, '--time', '2024-03-01T10:00:00Z', '--host', 'laptop']],
      ['a2', [src, '--time', '2024-03-02T10:00:00Z', '--host', 'laptop']],
      ['a3', [src, '--time', '2024-03-03T10:00:00Z', '--host', 'laptop', '--tag', 'important']],
      ['b1', [other, '--time', '2024-03-01T11:00:00Z', '--host', 'laptop']],
      ['b2', [other, '--time', '2024-03-02T11:00:00Z', '--host', 'laptop']],
      ['s1', [src, '--time', '2024-03-02T12:00:00Z', '--host', 'server']],
    ];
    for (const [label, args] of backups) {
      const r = await kiwi(['backup', ...args, '--json']);
      expect(r.code, r.stderr).toBe(0);
      ids.set(label, String(jsonLines(r.stdout).find((l) => l.message_type === 'summary')!.snapshot_id));
    }
  }, 120_000);
  afterAll(() => removeDir(work));

  // Each test works on a fresh copy of the template repository.
  beforeEach(async () => {
    const repo = join(work, `repo-${Math.random().toString(36).slice(2)}`);
    await cp(template, repo, { recursive: true });
    env = { ...env, KIWI_REPOSITORY: repo };
  });

  const label = (id: string) => [...ids].find(([, v]) => v === id)?.[0];

  it('a damaged snapshot file: prune refuses naming `kiwi forget <id>`, which removes it; then prune runs', async () => {
    const { open } = await import('node:fs/promises');
    const id = ids.get('a2')!;
    const fh = await open(join(String(env.KIWI_REPOSITORY), 'snapshots', id), 'r+');
    await fh.write(Buffer.from('X'), 0, 1, 50);
    await fh.close();
    // `snapshots --json` stays one valid array; the damaged file is a JSON warning on stderr.
    const list = await kiwi(['snapshots', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ id: string }>).map((x) => x.id)).not.toContain(id);
    expect(JSON.parse(list.stderr.trim().split('\n')[0]!)).toMatchObject({ message_type: 'error', severity: 'warning', file: `snapshots/${id}` });
    const p = await kiwi(['prune']);
    expect(p.code, p.stderr).toBe(1);
    expect(p.stderr).toContain(`refusing to prune: snapshots/${id}`);
    expect(p.stderr).toContain(`\`kiwi forget ${id.slice(0, 8)}\``);
    const f = await kiwi(['forget', id.slice(0, 8)]);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stderr).toMatch(/cannot be read .*its file is removed as asked/);
    expect(await snapshotIds()).not.toContain(id);
    expect((await kiwi(['snapshots'])).stderr).not.toMatch(/damaged/);
    const again = await kiwi(['prune']);
    expect(again.code, again.stderr).toBe(0);
  });

  it('prune removes the temporary files a killed backup left in the repository (older than 15 minutes), and says so', async () => {
    const { utimes, stat: statFile } = await import('node:fs/promises');
    const repo = String(env.KIWI_REPOSITORY);
    const stale = join(repo, 'data', 'ab', '.tmp-0123456789abcdef');
    const fresh = join(repo, 'data', 'cd', '.tmp-fedcba9876543210');
    await writeFile(stale, Buffer.alloc(4096));
    await writeFile(fresh, Buffer.alloc(10));
    const old = Date.now() / 1000 - 3600;
    await utimes(stale, old, old);
    const r = await kiwi(['prune', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLines(r.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ temporary_files_removed: 1 });
    await expect(statFile(stale)).rejects.toThrow();
    expect((await statFile(fresh)).size).toBe(10);
    const human = await kiwi(['prune']);
    expect(human.code).toBe(0);
    await writeFile(stale, 'x');
    await utimes(stale, old, old);
    expect((await kiwi(['prune'])).stderr).toMatch(/removed: +1 temporary file \(1 B\) left by interrupted writes/);
  });

  it('groups by host and paths by default; each group keeps its own newest', async () => {
    const r = await kiwi(['forget', '--keep-last', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const groups = jsonLines(r.stdout).filter((l) => l.message_type === 'forget_group');
    expect(groups.map((g) => [g.group, g.keep, g.remove])).toEqual([
      [{ host: 'laptop', paths: [other] }, 1, 1],
      [{ host: 'laptop', paths: [src] }, 1, 2],
      [{ host: 'server', paths: [src] }, 1, 0],
    ]);
    expect((await snapshotIds()).map(label).sort()).toEqual(['a3', 'b2', 's1']);
  });

  it('--group-by "" is one group; --host, --tag and --path choose the snapshots considered', async () => {
    const all = await kiwi(['forget', '--keep-last', '2', '--group-by', '', '--dry-run', '--json']);
    const kept = (r: typeof all) =>
      jsonLines(r.stdout)
        .filter((l) => l.message_type === 'forget_group')
        .flatMap((g) => (g.snapshots as Array<{ id: string; action: string }>).filter((s) => s.action === 'keep').map((s) => label(s.id)))
        .sort();
    expect(kept(all)).toEqual(['a3', 's1']);
    const host = await kiwi(['forget', '--keep-last', '1', '--host', 'laptop', '--group-by', '', '--dry-run', '--json']);
    expect(kept(host)).toEqual(['a3']);
    expect(jsonLines(host.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ would_remove: 4 });
    const path = await kiwi(['forget', '--keep-last', '1', '--path', other, '--dry-run', '--json']);
    expect(jsonLines(path.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ would_remove: 1 });
    const tag = await kiwi(['forget', '--keep-within', '1h', '--tag', 'important', '--dry-run', '--json']);
    expect(jsonLines(tag.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ would_remove: 0 });
    expect(await snapshotIds()).toHaveLength(6);
  });

  it('forgets snapshots by id prefix; an ambiguous prefix is refused (13) naming the candidates, and nothing is removed', async () => {
    const a1 = ids.get('a1')!;
    const ok = await kiwi(['forget', a1.slice(0, 10)]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`removing 1 snapshot named on the command line`);
    expect(ok.stdout).toContain(a1.slice(0, 8));
    expect(await snapshotIds()).not.toContain(a1);

    // An id prefix shared by two or more snapshots: back up until two ids share their first hex digit
    // (ids are random; 17 snapshots make it certain).
    let left = await snapshotIds();
    const shared = () => [...'0123456789abcdef'].find((c) => left.filter((id) => id.startsWith(c)).length >= 2);
    for (let i = 0; !shared() && i < 17; i++) {
      const r = await kiwi(['backup', src, '--time', `2023-01-${String(i + 1).padStart(2, '0')}T00:00:00Z`, '--host', 'extra', '-q']);
      expect(r.code, r.stderr).toBe(0);
      left = await snapshotIds();
    }
    const prefix = shared()!;
    const matching = left.filter((id) => id.startsWith(prefix));
    expect(matching.length).toBeGreaterThanOrEqual(2);
    const bad = await kiwi(['forget', ids.get('a2')!, prefix]);
    expect(bad.code).toBe(13);
    expect(bad.stderr).toContain(`snapshot reference "${prefix}" is ambiguous; it matches: ${matching.join(', ')}`);
    expect(bad.stderr).toContain('nothing was removed');
    expect(bad.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
    expect(await snapshotIds()).toEqual(left); // a2, named first, is still there
    expect(left).toContain(ids.get('a2'));

    const none = await kiwi(['forget', 'ffffffffff']);
    expect(none.code).toBe(13);
    expect(none.stderr).toContain('no snapshot matches "ffffffffff"');

    const both = await kiwi(['forget', ids.get('a2')!, '--keep-last', '1']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give either snapshot ids or a policy (--keep-last), not both');
  });

  it('a policy with no rule is refused, naming the flags', async () => {
    const r = await kiwi(['forget']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no retention policy: give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within');
    expect(r.stderr).toContain('--keep-tag');
    const zero = await kiwi(['forget', '--keep-last', '0', '--keep-daily', '0']);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('keeps nothing (every rule is 0)');
    expect(await snapshotIds()).toHaveLength(6);
  });

  it.each([
    [['--keep-daily', '-2'], '--keep-daily "-2": negative counts are not allowed (only -1, which means unlimited)'],
    [['--keep-daily', 'seven'], '--keep-daily "seven" is not a count'],
    [['--keep-last', '1.5'], '--keep-last "1.5" is not a count'],
    [['--keep-weekly'], '--keep-weekly needs a count'],
    [['--keep-within', '-3d'], '--keep-within "-3d": negative durations are not allowed'],
    [['--keep-within', '2w'], '--keep-within "2w": unknown unit "w"; for weeks write 14d'],
    [['--keep-within-daily', '10'], '--keep-within-daily "10": no unit after 10'],
    [['--keep-within', '0d'], '--keep-within "0d" keeps nothing'],
    [['--keep-last', '1', '--group-by', 'host,date'], '--group-by "host,date": unknown field "date"'],
    [['--keep-last', '1', '--max-unused', '5%'], '--max-unused goes with --prune'],
    [['--keep-last', '1', '--prune', '--max-unused', 'lots'], '--max-unused lots: expected a percentage'],
    [['--keep-last', '1', '--retry-lock', 'soon'], '--retry-lock "soon" is not a duration'],
  ])('%j is a usage error (2) naming the option', async (args, message) => {
    const r = await kiwi(['forget', ...args]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
    expect(await snapshotIds()).toHaveLength(6);
  });

  it('-1 and unlimited keep every bucket', async () => {
    for (const v of ['-1', 'unlimited']) {
      const r = await kiwi(['forget', '--keep-daily', v, '--dry-run', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(jsonLines(r.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ would_remove: 0 });
    }
  });

  it('--keep-tag for a tag no snapshot has: a warning; alone it would empty every group, so it is refused', async () => {
    const r = await kiwi(['forget', '--keep-tag', 'nosuch', '--keep-last', '1', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('warning: --keep-tag nosuch: no snapshot has this tag, so it keeps nothing');
    const json = await kiwi(['forget', '--keep-tag', 'nosuch', '--keep-tag', 'important', '--keep-last', '1', '--dry-run', '--json']);
    expect(jsonLines(json.stdout).filter((l) => l.message_type === 'error')).toEqual([
      expect.objectContaining({ severity: 'warning', keep_tag: ['nosuch'] }),
    ]);
    const alone = await kiwi(['forget', '--keep-tag', 'nosuch']);
    expect(alone.code).toBe(1);
    expect(alone.stderr).toContain('refusing to forget every snapshot of group host laptop, paths');
    expect(alone.stderr).toContain('nothing was removed');
    expect(await snapshotIds()).toHaveLength(6);
  });

  it('with no flags, applies the "forget" policy of the config file; a bad one is a config error naming the key', async () => {
    const cfg = join(work, 'forget-config.json');
    await writeFile(cfg, JSON.stringify({ forget: { keepLast: 1, groupBy: 'host' } }));
    const r = await kiwi(['forget', '--config', cfg, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Applying policy: keep 1 latest snapshots (from "forget" in ${cfg})`);
    expect(r.stdout).toContain('host laptop: keep 1, would remove 4 of 5 snapshots');
    // Flags replace the config's policy.
    const flags = await kiwi(['forget', '--config', cfg, '--keep-last', '2', '--dry-run', '--json']);
    expect(jsonLines(flags.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ policy: 'keep 2 latest snapshots' });

    await writeFile(cfg, '{\n  "forget": {\n    "keepDaily": "-5"\n  }\n}\n');
    const bad = await kiwi(['forget', '--config', cfg]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`config file ${cfg}: forget.keepDaily "-5": negative counts are not allowed (only -1, which means unlimited) (line 3)`);
    await rm(cfg);
  });

  it('takes an exclusive lock: a held lock makes it wait, then exit 11 naming the holder', async () => {
    const { Repository } = await import('@kiwi-backup/core');
    const { createLocalStorage } = await import('@kiwi-backup/storage-local');
    const repo = await Repository.open(createLocalStorage(env.KIWI_REPOSITORY!), 'pw');
    const lock = await repo.lock('shared');
    try {
      const r = await kiwi(['forget', '--keep-last', '1', '--retry-lock', '1s']);
      expect(r.code).toBe(11);
      expect(r.stderr).toContain(`a shared lock is held by pid ${process.pid}`);
      expect(r.stderr).toMatch(/cannot take an exclusive lock \(gave up after waiting \d+ s\)/);
      // A dry run takes a shared lock: it runs next to a backup.
      const dry = await kiwi(['forget', '--keep-last', '1', '--dry-run', '--retry-lock', '0']);
      expect(dry.code, dry.stderr).toBe(0);
    } finally {
      await lock.release();
      await repo.close();
    }
    expect(await snapshotIds()).toHaveLength(6);
  });
});
