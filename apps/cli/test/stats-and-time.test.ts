/**
 * `kiwi stats` (restore-size, raw-data) and `kiwi backup --time`.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, jsonLines, bytes } from './helpers.js';

describe('kiwi stats and backup --time', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;
  const ids: string[] = [];

  beforeAll(async () => {
    work = await tempDir('kiwi-stats-');
    src = join(work, 'src');
    await mkdir(join(src, 'd'), { recursive: true });
    await writeFile(join(src, 'one.bin'), bytes(100_000, 1));
    await writeFile(join(src, 'd', 'two.bin'), bytes(2_500_000, 2));
    await writeFile(join(src, 'd', 'copy.bin'), bytes(100_000, 1)); // same content as one.bin
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw', TZ: 'America/New_York' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    for (const time of ['2024-01-10T08:00:00Z', '2024-01-11 08:00:00']) {
      const r = await runKiwi(['backup', src, '--time', time, '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      ids.push(String(jsonLines(r.stdout).find((l) => l.message_type === 'summary')!.snapshot_id));
    }
  }, 120_000);
  afterAll(() => removeDir(work));

  it('backup --time records the time; without an offset it is local time', async () => {
    const r = await runKiwi(['snapshots', '--json-lines'], { env });
    const times = jsonLines(r.stdout).filter((l) => l.message_type === 'snapshot').map((l) => l.time);
    // 08:00 in New York in January is 13:00 UTC.
    expect(times).toEqual(['2024-01-10T08:00:00.000Z', '2024-01-11T13:00:00.000Z']);
  });

  it.each([
    ['yesterday', 'is not an ISO-8601 time'],
    ['2024-02-30', 'no such date'],
    ['2024-01-01T25:00:00Z', 'no such date or time'],
    ['2024-03-10 02:30:00', 'this local time does not exist (skipped by a daylight-saving change)'],
  ])('backup --time %j is refused (2) before anything is written', async (time, message) => {
    const r = await runKiwi(['backup', src, '--time', time], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--time ${JSON.stringify(time)}`);
    expect(r.stderr).toContain(message);
  });

  it('restore-size: files, directories and bytes a restore writes, per snapshot and in total', async () => {
    const r = await runKiwi(['stats', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    const per = lines.filter((l) => l.message_type === 'snapshot_stats');
    expect(per.map((l) => l.id)).toEqual(ids);
    const dirs = src.split('/').filter(Boolean).length + 1; // the ancestors of src, and d
    for (const p of per) expect(p).toMatchObject({ files: 3, dirs, others: 0, size: 2_700_000 });
    expect(lines.find((l) => l.message_type === 'summary')).toMatchObject({ mode: 'restore-size', snapshots: 2, total_file_count: 6, total_size: 5_400_000 });

    const one = await runKiwi(['stats', ids[1]!.slice(0, 8)], { env });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/Snapshots: +1\n/);
    expect(one.stdout).toMatch(/Restore size: +2\.57 MiB \(2700000 bytes\)/);
  });

  it('raw-data: the unique blobs, their size before and after compression, packs, and the dedup ratio', async () => {
    const r = await runKiwi(['stats', '--mode', 'raw-data', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const s = jsonLines(r.stdout).find((l) => l.message_type === 'summary')!;
    // Unique data: one.bin (= copy.bin) once and two.bin once, in both snapshots.
    expect(s.total_size).toBe(5_400_000);
    expect(Number(s.total_uncompressed_size)).toBeGreaterThan(2_600_000);
    expect(s.dedup_ratio).toBeCloseTo(5_400_000 / 2_600_000, 2);
    expect(Number(s.total_stored_size)).toBeGreaterThan(2_600_000); // random data does not compress
    expect(s.pack_count).toBeGreaterThanOrEqual(2); // data and tree packs
    expect(s.missing_blobs).toBe(0);
    expect(Number(s.data_blob_count) + Number(s.tree_blob_count)).toBe(s.total_blob_count);

    const human = await runKiwi(['stats', '--mode', 'raw-data'], { env });
    expect(human.stdout).toMatch(/Dedup ratio: +2\.08x/);
    expect(human.stdout).toMatch(/Stored size: +[\d.]+ MiB \(\d+ bytes\) in \d+ packs/);
  });

  it('bad input: an unknown mode (2), an unknown snapshot (13)', async () => {
    const mode = await runKiwi(['stats', '--mode', 'files'], { env });
    expect(mode.code).toBe(2);
    expect(mode.stderr).toContain('--mode "files": use restore-size or raw-data');
    const snap = await runKiwi(['stats', 'deadbeef'], { env });
    expect(snap.code).toBe(13);
    expect(snap.stderr).toContain('no snapshot matches "deadbeef"');
    expect(snap.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
  });
});
