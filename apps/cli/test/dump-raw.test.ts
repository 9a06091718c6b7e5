/**
 * `kiwi dump` of names, link targets, modes and times that a plain ustar/UTF-8 writer gets wrong:
 * names that are not UTF-8 (kept byte for byte, never merged), mode 0000, mtimes before 1970 with a
 * fraction and after 2242. Checked by extracting with GNU tar.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { chmod, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { kiwiToFile, runKiwi, tempDir, removeDir } from './helpers.js';


const b = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
const at = (dir: string, name: Buffer) => Buffer.concat([Buffer.from(`${dir}/`), name]);

describe('kiwi dump: raw names, mode 0000, times outside ustar', () => {
  let work: string;
  let src: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = await tempDir();
    src = join(work, 'src');
    await mkdir(src);
    // Two names that differ only in a byte that is not UTF-8 (both would be "a\uFFFD" in UTF-8).
    await writeFile(at(src, b('a', [0xfe])), 'first');
    await writeFile(at(src, b('a', [0xff])), 'second');
    // A directory with such a name, holding a file and a symlink whose target is not UTF-8 either.
    const rawDir = at(src, b('dir-', [0xff]));
    await mkdir(rawDir);
    await writeFile(at(src, b('dir-', [0xff], '/inner.txt')), 'inside');
    await symlink(b('target-', [0xfe]), at(src, b('dir-', [0xff], '/link')));
    // Mode 0000: must stay unreadable, not become 0644.
    await writeFile(join(src, 'locked'), 'keep out');
    await chmod(join(src, 'locked'), 0o000);
    await writeFile(join(src, 'before-1970'), 'x');
    await writeFile(join(src, 'y2400'), 'y');
    execFileSync('touch', ['-h', '-d', '1969-12-31 23:59:59.5 UTC', join(src, 'before-1970')]);
    execFileSync('touch', ['-h', '-d', '2400-01-01 00:00:00 UTC', join(src, 'y2400')]);
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    const r = await runKiwi(['backup', src], { env });
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('GNU tar extracts every raw name byte for byte (none merged), the raw symlink target, mode 0000 and the times', async () => {
    const file = join(work, 'src.tar');
    const r = await kiwiToFile(['dump', 'latest', src], file, env);
    expect(r.code, r.stderr).toBe(0);
    const dest = join(work, 'out');
    await mkdir(dest);
    execFileSync('tar', ['-xpf', file, '-C', dest]);
    const out = join(dest, 'src');
    const names = (await readdir(Buffer.from(out), { encoding: 'buffer' })).map((n) => n.toString('hex')).sort();
    const want = (await readdir(Buffer.from(src), { encoding: 'buffer' })).map((n) => n.toString('hex')).sort();
    expect(names).toEqual(want);
    expect((await readFile(at(out, b('a', [0xfe])))).toString()).toBe('first');
    expect((await readFile(at(out, b('a', [0xff])))).toString()).toBe('second');
    expect((await readFile(at(out, b('dir-', [0xff], '/inner.txt')))).toString()).toBe('inside');
    expect((await readlink(at(out, b('dir-', [0xff], '/link')), { encoding: 'buffer' })).equals(b('target-', [0xfe]))).toBe(true);
    expect((await lstat(join(out, 'locked'))).mode & 0o7777).toBe(0);
    expect((await lstat(join(out, 'before-1970'), { bigint: true })).mtimeNs).toBe(-500_000_000n);
    expect((await lstat(join(out, 'y2400'), { bigint: true })).mtimeNs).toBe(13_569_465_600_000_000_000n);
  });
});
