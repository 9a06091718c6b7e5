/**
 * Issue 10, acceptance 1: 60 daily snapshots made with `kiwi backup --time`, plus hourly and
 * tagged ones; for each policy of the table `forget --dry-run --json` keeps exactly the
 * snapshots the documented rules say (docs/retention.md works the same cases by hand). The
 * engine is tested over the same table in packages/core/test/retention/policy.test.ts; this is
 * the end-to-end run through the real CLI and repository.
 *
 * The second part compares with restic on the same times when `restic` is installed. It is a
 * comparison with another program, not a server the suite depends on: without restic it is
 * skipped (also under CI), and it says so.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, jsonLines } from './helpers.js';
import { POLICY_CASES, SERIES_TZ, series } from '../../../packages/core/test/retention/acceptance-cases.js';

const HOST = 'kiwi-acceptance';

/** Local `YYYY-MM-DD HH:MM:SS` in the series' zone → ms (the zone is CET, UTC+1, for every time of the series). */
function seriesMs(t: string): number {
  return Date.parse(`${t.replace(' ', 'T')}+01:00`);
}

describe('acceptance 1: forget --dry-run --json on 65 snapshots made with backup --time', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;
  const labelById = new Map<string, string>();

  beforeAll(async () => {
    work = await tempDir('kiwi-retention-');
    src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'file.txt'), 'small on purpose: the test is about snapshot times');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw', TZ: SERIES_TZ };
    const init = await runKiwi(['init'], { env });
    expect(init.code, init.stderr).toBe(0);
    // Two backups at a time (shared locks: allowed together).
    const todo = series();
    const worker = async () => {
      for (let s = todo.shift(); s; s = todo.shift()) {
        const r = await runKiwi(['backup', src, '--time', s.time, '--host', HOST, ...s.tags.flatMap((t) => ['--tag', t]), '--json'], { env });
        expect(r.code, r.stderr).toBe(0);
        const summary = jsonLines(r.stdout).find((l) => l.message_type === 'summary')!;
        labelById.set(String(summary.snapshot_id), s.label);
      }
    };
    await Promise.all([worker(), worker()]);
  }, 300_000);
  afterAll(() => removeDir(work));

  it('the snapshots carry the given times', async () => {
    const r = await runKiwi(['snapshots', '--json-lines'], { env });
    const snaps = jsonLines(r.stdout).filter((l) => l.message_type === 'snapshot');
    expect(snaps).toHaveLength(65);
    const byLabel = new Map(series().map((s) => [s.label, s]));
    for (const s of snaps) {
      const want = byLabel.get(labelById.get(String(s.id))!)!;
      expect(Date.parse(String(s.time)), want.label).toBe(seriesMs(want.time));
      expect(s.tags).toEqual(want.tags);
    }
  });

  for (const c of POLICY_CASES) {
    it(`forget --dry-run --json ${c.flags.join(' ')}: ${c.name}`, async () => {
      const r = await runKiwi(['forget', ...c.flags, '--dry-run', '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      const lines = jsonLines(r.stdout);
      const groups = lines.filter((l) => l.message_type === 'forget_group');
      type Row = { id: string; action: string; reasons: Array<{ text: string }>; not_kept?: string[] };
      const rows = groups.flatMap((g) => g.snapshots as Row[]);
      expect(rows).toHaveLength(65);
      const kept = rows.filter((s) => s.action === 'keep').map((s) => labelById.get(s.id)!);
      expect(kept.sort()).toEqual([...c.keep].sort());
      for (const [label, texts] of Object.entries(c.reasons ?? {})) {
        const row = rows.find((s) => labelById.get(s.id) === label)!;
        expect(row.reasons.map((x) => x.text), label).toEqual(texts);
      }
      for (const s of rows.filter((x) => x.action === 'remove')) expect(s.not_kept!.length).toBeGreaterThan(0);
      const summary = lines.find((l) => l.message_type === 'summary')!;
      expect(summary).toMatchObject({ dry_run: true, would_remove: 65 - c.keep.length });
      if (c.flags.includes('--group-by')) expect(groups.map((g) => g.group)).toEqual([{ host: HOST, paths: [src], tags: [] }, { host: HOST, paths: [src], tags: ['manual'] }]);
      else expect(groups.map((g) => g.group)).toEqual([{ host: HOST, paths: [src] }]);
    });
  }

  it('the human dry run shows every snapshot with its action and reasons, and changes nothing', async () => {
    const r = await runKiwi(['forget', '--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '-1', '--dry-run'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Applying policy: keep 7 daily, 4 weekly, all monthly snapshots');
    expect(r.stdout).toContain(`host ${HOST}, paths ${src}: keep 11, would remove 54 of 65 snapshots`);
    expect(r.stdout).toMatch(/2024-02-29 13:00:00 +keep +daily snapshot \(2024-02-29\), weekly snapshot \(2024-W09\), monthly snapshot \(2024-02\)/);
    expect(r.stdout).toMatch(/2024-01-01 10:00:00 +keep +oldest monthly snapshot \(2024-01\)/);
    expect(r.stdout).toMatch(/2024-02-29 10:00:00 +remove +daily: 2024-02-29 already kept by the newer [0-9a-f]{8}; weekly: week 2024-W09 already kept/);
    expect(r.stdout).toContain('dry run: would remove 54 snapshots, nothing changed');
    const snaps = await runKiwi(['snapshots', '--json-lines'], { env });
    expect(jsonLines(snaps.stdout).filter((l) => l.message_type === 'snapshot')).toHaveLength(65);
  });

  it('forget without --dry-run removes exactly the snapshots the dry run named; a second run removes nothing', async () => {
    const flags = ['--keep-within', '7d', '--keep-within-weekly', '1m'];
    const expected = POLICY_CASES.find((c) => c.flags.join(' ') === flags.join(' '))!.keep;
    const r = await runKiwi(['forget', ...flags, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const summary = jsonLines(r.stdout).find((l) => l.message_type === 'summary')!;
    expect(summary).toMatchObject({ dry_run: false, removed: 65 - expected.length });
    const snaps = await runKiwi(['snapshots', '--json-lines'], { env });
    const left = jsonLines(snaps.stdout).filter((l) => l.message_type === 'snapshot').map((s) => labelById.get(String(s.id))!);
    expect(left.sort()).toEqual([...expected].sort());
    const again = await runKiwi(['forget', ...flags], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('removed 0 snapshots');
    const check = await runKiwi(['check'], { env });
    expect(check.code, check.stderr + check.stdout).toBe(0);
  });
});

function resticVersion(): [number, number] | undefined {
  const r = spawnSync('restic', ['version'], { encoding: 'utf8' });
  const m = /restic (\d+)\.(\d+)/.exec(r.stdout ?? '');
  return r.status === 0 && m ? [Number(m[1]), Number(m[2])] : undefined;
}

const restic = resticVersion();

// A comparison with another program, not a server: skipped (also under CI) when restic is not installed.
describe.skipIf(!restic)(`the same series and policies with restic${restic ? ` ${restic.join('.')}` : ' (not installed: skipped)'}`, () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  const labelByMs = new Map(series().map((s) => [seriesMs(s.time), s.label]));
  // restic < 0.16 has no -1/unlimited and no "oldest snapshot" rule (both came in 0.16.0).
  const old = restic !== undefined && (restic[0] === 0 && restic[1] < 16);

  const run = (args: string[]) => spawnSync('restic', args, { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const runAsync = (args: string[]) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn('restic', args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('close', (status) => resolve({ status, stderr }));
    });

  beforeAll(async () => {
    work = await tempDir('kiwi-vs-restic-');
    const src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'file.txt'), 'x');
    env = { ...process.env, RESTIC_REPOSITORY: join(work, 'repo'), RESTIC_PASSWORD: 'pw', RESTIC_CACHE_DIR: join(work, 'cache'), TZ: SERIES_TZ };
    const init = run(['init']);
    expect(init.status, init.stderr).toBe(0);
    // Two at a time, as for Kiwi (restic's backups take non-exclusive locks too).
    const todo = series();
    const worker = async () => {
      for (let s = todo.shift(); s; s = todo.shift()) {
        const b = await runAsync(['backup', '--quiet', '--host', HOST, '--time', s.time, ...s.tags.flatMap((t) => ['--tag', t]), src]);
        expect(b.status, b.stderr).toBe(0);
      }
    };
    await Promise.all([worker(), worker()]);
  }, 300_000);
  afterAll(() => removeDir(work));

  for (const c of POLICY_CASES) {
    it(`restic forget ${c.flags.join(' ')} keeps what Kiwi keeps`, () => {
      const flags = old ? c.flags.map((f) => (f === '-1' ? '1000' : f)) : c.flags.map((f) => (f === '-1' ? 'unlimited' : f));
      const r = run(['forget', '--dry-run', '--json', ...flags]);
      expect(r.status, r.stderr).toBe(0);
      const groups = JSON.parse(r.stdout.trim().split('\n').pop()!) as Array<{ keep: Array<{ time: string }> | null }>;
      const kept = groups.flatMap((g) => g.keep ?? []).map((s) => labelByMs.get(Date.parse(s.time)) ?? `unknown time ${s.time}`);
      const expected = old ? c.keep.filter((l) => !(c.keptOnlyAsOldest ?? []).includes(l)) : c.keep;
      expect(kept.sort()).toEqual([...expected].sort());
    });
  }
});
