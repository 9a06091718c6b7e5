/**
 * Issue #13 end to end: `check` names damage and the command that repairs it; `repair index`,
 * `repair packs` and `repair snapshots` leave a repository that `check --read-data` passes and
 * whose snapshots restore exactly.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { join } from 'node:path';
import { mkdir, readdir, writeFile, open, stat } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, bytes, jsonLines, snapshotTree } from './helpers.js';

let work: string;
let env: NodeJS.ProcessEnv;
let src: string;

beforeEach(async () => {
  work = await tempDir();
  src = join(work, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 6; i++) await writeFile(join(src, `file-${i}.bin`), bytes(150_000 + i, 10 + i));
  await writeFile(join(src, 'sub/notes.txt'), 'notes\n');
  env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
  expect((await runKiwi(['init'], { env })).code).toBe(0);
  const b = await runKiwi(['backup', src], { env });
  expect(b.code, b.stderr).toBe(0);
});
afterEach(() => removeDir(work));

async function filesOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await readdir(dir)) {
    const p = join(dir, sub);
    if ((await stat(p)).isDirectory()) for (const n of await readdir(p)) out.push(join(p, n));
    else out.push(p);
  }
  return out.filter((p) => !p.split('/').pop()!.startsWith('.'));
}

async function flip(path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, at);
  b[0] = b[0]! ^ 0x20;
  await fh.write(b, 0, 1, at);
  await fh.close();
}

async function expectRestoresExactly(ref: string): Promise<void> {
  const target = join(work, `restore-${Math.random().toString(36).slice(2)}`);
  const r = await runKiwi(['restore', ref, '--target', target], { env });
  expect(r.code, r.stderr).toBe(0);
  expect(await snapshotTree(join(target, src))).toEqual(await snapshotTree(src));
}

describe('kiwi repair', () => {
  it('a flipped byte in a data pack: check names the pack, the affected file and the repair; repair packs + backup make check clean', async () => {
    const packs = await filesOf(join(env.KIWI_REPOSITORY!, 'data'));
    const largest = (await Promise.all(packs.map(async (p) => ({ p, size: (await stat(p)).size })))).sort((a, b) => b.size - a.size)[0]!;
    await flip(largest.p, 500);
    const packId = largest.p.split('/').pop()!;

    const check = await runKiwi(['check', '--read-data', '--json'], { env });
    expect(check.code).toBe(1);
    const lines = jsonLines(check.stdout);
    const errors = lines.filter((l) => l.message_type === 'error');
    expect(errors.some((e) => String(e.file).endsWith(packId) && String(e.hint).includes(`kiwi repair packs ${packId.slice(0, 12)}`))).toBe(true);
    const affected = lines.filter((l) => l.message_type === 'affected');
    expect(JSON.stringify(affected)).toMatch(/file-\d\.bin/);
    const human = await runKiwi(['check', '--read-data'], { env });
    expect(human.stderr).toContain('to repair, run:');
    expect(human.stderr).not.toMatch(/\n\s+at /); // no stack trace

    const rp = await runKiwi(['repair', 'packs', packId.slice(0, 12)], { env });
    expect(rp.code, rp.stderr).toBe(3); // repaired, but a blob is lost (exit 3: partial)
    expect(rp.stderr).toMatch(/1 lost/);
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(0);
    const clean = await runKiwi(['check', '--read-data'], { env });
    expect(clean.code, clean.stderr).toBe(0);
    await expectRestoresExactly('latest');
  });

  it('a damaged index file: restore still works and names it; repair index replaces it; check is clean', async () => {
    const [indexFile] = await filesOf(join(env.KIWI_REPOSITORY!, 'index'));
    await flip(indexFile!, 60);
    const name = indexFile!.split('/').pop()!;

    const target = join(work, 'restored');
    const r = await runKiwi(['restore', 'latest', '--target', target], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`index/${name}`);
    expect(r.stderr).toContain('kiwi repair index');
    expect(await snapshotTree(join(target, src))).toEqual(await snapshotTree(src));

    const check = await runKiwi(['check', '--json'], { env });
    expect(check.code).toBe(1);
    expect(jsonLines(check.stdout).some((l) => l.message_type === 'error' && l.hint === 'kiwi repair index')).toBe(true);

    const ri = await runKiwi(['repair', 'index'], { env });
    expect(ri.code, ri.stderr).toBe(0);
    expect(ri.stderr).toMatch(/index rebuilt/);
    const clean = await runKiwi(['check', '--read-data'], { env });
    expect(clean.code, clean.stderr).toBe(0);
    await expectRestoresExactly('latest');
  });

  it('a deleted pack: repair index drops it, repair snapshots --forget writes a snapshot without the lost files; check is clean', async () => {
    const packs = await filesOf(join(env.KIWI_REPOSITORY!, 'data'));
    const largest = (await Promise.all(packs.map(async (p) => ({ p, size: (await stat(p)).size })))).sort((a, b) => b.size - a.size)[0]!;
    const { rm } = await import('node:fs/promises');
    await rm(largest.p);
    expect((await runKiwi(['repair', 'index'], { env })).code).toBe(0);
    const rs = await runKiwi(['repair', 'snapshots', '--forget', '--json'], { env });
    expect(rs.code, rs.stderr).toBe(0);
    const snap = jsonLines(rs.stdout).find((l) => l.message_type === 'snapshot')!;
    expect(snap.new_id).toBeTruthy();
    expect(Number(snap.removed_count)).toBeGreaterThan(0);
    const clean = await runKiwi(['check', '--read-data'], { env });
    expect(clean.code, clean.stderr).toBe(0);
    // The repaired snapshot restores what was not lost, exactly.
    const target = join(work, 'partial');
    const r = await runKiwi(['restore', 'latest', '--target', target], { env });
    expect(r.code, r.stderr).toBe(0);
    const want = await snapshotTree(src);
    const got = await snapshotTree(join(target, src));
    const removed = (snap.removed as string[]).map((p) => p.split('/').pop());
    for (const [k, v] of want) {
      if (removed.includes(k.split('/').pop())) expect(got.has(k)).toBe(false);
      else expect(got.get(k), k).toEqual(v);
    }
  });

  it('`kiwi repair` without a subcommand is a usage error (exit 2), and `repair packs` without ids too', async () => {
    const r = await runKiwi(['repair'], { env });
    expect(r.code).toBe(2);
    const p = await runKiwi(['repair', 'packs'], { env });
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/name the packs/);
  });
});
