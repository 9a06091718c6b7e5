import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nfs as n, skipNative as skip } from './load.js';

// Freed memory given back: a 16 MiB block mapped and freed raises glibc's thresholds by themselves, after
// which 48 MiB of 1 MiB blocks freed at the heap's top stay resident; with the limits they go back.
const glibc = process.platform === 'linux' && (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime !== undefined;

function residentAfterFree(fix: boolean): { during: number; after: number; set: unknown } {
  const addon = join(__dirname, '..', 'index.cjs');
  const script = `
    const n = require(${JSON.stringify(addon)});
    const set = ${fix} ? n.mallocLimits(128 * 1024, 2 * 1024 * 1024) : null;
    const anon = () => Number(/RssAnon:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) >> 10;
    let big = Buffer.allocUnsafeSlow(16 << 20); big.fill(1); big = null; gc(); gc();
    let list = []; for (let i = 0; i < 48; i++) { const b = Buffer.allocUnsafeSlow(1 << 20); b.fill(2); list.push(b); }
    const during = anon(); list = null; gc(); gc();
    process.stdout.write(JSON.stringify({ during, after: anon(), set }));`;
  const env = { ...process.env };
  delete env.MALLOC_MMAP_THRESHOLD_;
  delete env.MALLOC_TRIM_THRESHOLD_;
  delete env.GLIBC_TUNABLES;
  // From a file: a script run with -e keeps more of its memory alive.
  const dir = mkdtempSync(join(tmpdir(), 'kiwi-malloc-'));
  try {
    writeFileSync(join(dir, 'script.cjs'), script);
    const r = spawnSync(process.execPath, ['--expose-gc', join(dir, 'script.cjs')], { encoding: 'utf8', timeout: 30_000, env });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { during: number; after: number; set: unknown };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(skip)('@kiwi-backup/native-fs: mallocLimits', () => {
  it.runIf(glibc)('pinned thresholds give freed blocks back, where glibc by itself keeps them', () => {
    const before = residentAfterFree(false);
    const fixed = residentAfterFree(true);
    expect(fixed.set).toBe(true);
    expect(before.during).toBeGreaterThanOrEqual(48);
    // glibc alone: the 48 MiB stay; pinned: given back.
    expect(before.after, JSON.stringify({ before, fixed })).toBeGreaterThanOrEqual(before.during - 24);
    expect(fixed.after, JSON.stringify({ before, fixed })).toBeLessThan(before.after - 32);
  });

  it('refuses thresholds that are no sizes', () => {
    expect(() => n!.mallocLimits(0, 1)).toThrow(TypeError);
    expect(() => n!.mallocLimits(64 << 20, 1)).toThrow(TypeError);
    expect(() => n!.mallocLimits(1024, -1)).toThrow(TypeError);
    expect(() => (n!.mallocLimits as (a: unknown, b: unknown) => boolean)('1', 1)).toThrow(TypeError);
  });
});
