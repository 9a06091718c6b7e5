import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFile, mkdir, readdir, stat, readFile, open, cp } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { runKiwi, tempDir, removeDir, bytes, jsonLines, snapshotTree } from './helpers.js';

async function packFiles(repo: string): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  for (const sub of await readdir(join(repo, 'data'))) {
    for (const name of await readdir(join(repo, 'data', sub))) {
      if (name.startsWith('.')) continue;
      const p = join(repo, 'data', sub, name);
      out.push({ path: p, size: (await stat(p)).size });
    }
  }
  return out.sort((a, b) => b.size - a.size);
}

describe('a corrupted pack is named by check and never silently restored', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;

  beforeAll(async () => {
    work = await tempDir();
    src = join(work, 'src');
    await mkdir(src);
    for (let i = 0; i < 8; i++) await writeFile(join(src, `file-${i}.bin`), bytes(200_000 + i, 100 + i));
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('flipping one byte: check --read-data names the pack, restore fails for the affected file only', async () => {
    const [pack] = await packFiles(env.KIWI_REPOSITORY!);
    const fh = await open(pack!.path, 'r+');
    const buf = Buffer.alloc(1);
    await fh.read(buf, 0, 1, 1000);
    buf[0] = buf[0]! ^ 0x01;
    await fh.write(buf, 0, 1, 1000);
    await fh.close();

    const check = await runKiwi(['check', '--read-data', '--json'], { env });
    expect(check.code).toBe(1);
    const errors = jsonLines(check.stdout).filter((l) => l.message_type === 'error');
    const packName = pack!.path.split('/').pop()!;
    expect(JSON.stringify(errors)).toContain(packName);

    const target = join(work, 'restore');
    const r = await runKiwi(['restore', 'latest', '--target', target, '--json'], { env });
    expect(r.code).toBe(1);
    const restoreErrors = jsonLines(r.stdout).filter((l) => l.message_type === 'error');
    expect(restoreErrors.length).toBeGreaterThanOrEqual(1);
    const failed = new Set(restoreErrors.map((e) => String(e.item ?? e.message).split('/').pop()));
    expect(failed.size).toBe(1);
    const restored = await snapshotTree(join(target, src));
    const source = await snapshotTree(src);
    let good = 0;
    for (const [name, info] of source) {
      if (failed.has(name)) {
        // the affected file must not appear as if complete
        expect(restored.get(name)?.content).not.toBe(info.content);
        continue;
      }
      expect(restored.get(name), name).toEqual(info);
      good++;
    }
    expect(good).toBe(7);
  });
});

describe('kill -9 during backups leaves a consistent repository', () => {
  const rounds = Number(process.env.KIWI_CRASH_ROUNDS ?? 4);
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;

  beforeAll(async () => {
    work = await tempDir();
    src = join(work, 'src');
    for (let d = 0; d < 20; d++) {
      await mkdir(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 40; f++) await writeFile(join(src, `d${d}`, `f${f}.bin`), bytes(20_000 + ((d * 40 + f) % 7) * 3000, d * 1000 + f + 1));
    }
    for (let i = 0; i < 3; i++) await writeFile(join(src, `large-${i}.bin`), bytes(24 * 1024 * 1024, 77 + i));
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
  });
  afterAll(() => removeDir(work));

  it(`survives ${rounds} kills at random moments; check is clean; every snapshot restores exactly`, async () => {
    const snapshots: Array<{ id: string; copy: string }> = [];
    // one good snapshot first
    const t0 = Date.now();
    const first = await runKiwi(['backup', src, '--json'], { env });
    const fullRun = Date.now() - t0;
    expect(first.code, first.stderr).toBe(0);
    const firstId = String(jsonLines(first.stdout).find((l) => l.message_type === 'summary')!.snapshot_id);
    const copy0 = join(work, 'expected-0');
    await cp(src, copy0, { recursive: true, preserveTimestamps: true });
    snapshots.push({ id: firstId, copy: copy0 });

    let killed = 0;
    for (let round = 0; round < rounds; round++) {
      // change the data so the backup has real work to do
      for (let i = 0; i < 3; i++) await writeFile(join(src, `large-${i}.bin`), bytes(24 * 1024 * 1024, 1000 * (round + 1) + i));
      // a random moment within a typical run (process start, walk, uploads, index, snapshot)
      const delay = 30 + Math.floor(Math.random() * fullRun * 0.9);
      const r = await runKiwi(['backup', src], {
        env,
        onSpawn: (child) => setTimeout(() => child.kill('SIGKILL'), delay),
      });
      expect(r.signal === 'SIGKILL' || r.code === 0).toBe(true);
      if (r.signal === 'SIGKILL') killed++;
      const check = await runKiwi(['check'], { env });
      expect(check.code, `after kill at ${delay} ms: ${check.stderr}`).toBe(0);
    }
    // the kills must really have interrupted backups, or this test proves nothing
    expect(killed).toBeGreaterThanOrEqual(Math.ceil(rounds / 2));
    const check = await runKiwi(['check', '--read-data'], { env });
    expect(check.code, check.stderr).toBe(0);
    const next = await runKiwi(['backup', src, '--json'], { env });
    expect(next.code, next.stderr).toBe(0);
    const nextId = String(jsonLines(next.stdout).find((l) => l.message_type === 'summary')!.snapshot_id);
    snapshots.push({ id: nextId, copy: src });
    for (const s of snapshots) {
      const target = join(work, `restore-${s.id.slice(0, 8)}`);
      const r = await runKiwi(['restore', s.id.slice(0, 10), '--target', target], { env });
      expect(r.code, r.stderr).toBe(0);
      const got = await snapshotTree(join(target, src));
      const want = await snapshotTree(s.copy);
      for (const [k, v] of want) expect(got.get(k)?.content, k).toBe(v.content);
      expect(got.size).toBe(want.size);
    }
    // the copy of the first state must equal the restore of the first snapshot byte for byte
    const sha = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');
    expect(await sha(join(work, `restore-${firstId.slice(0, 8)}`, src, 'large-0.bin'))).toBe(await sha(join(copy0, 'large-0.bin')));
  }, 300_000); // a dozen backups, checks and restores of ~80 MiB: about 25 s on a quiet 2-core machine
});
