import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nfs as n, skipNative as skip } from './load.js';

describe.skipIf(skip)('@kiwi-backup/native-fs: exitNow', () => {
  it('ends the process with its code while a threadpool thread is stuck in a system call (process.exit would wait for ever)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiwi-native-exit-'));
    try {
      const fifo = join(dir, 'fifo');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      const addon = join(__dirname, '..', 'index.cjs');
      const script = `const n = require(${JSON.stringify(addon)}); require('fs').open(${JSON.stringify(fifo)}, 'r', () => {}); setTimeout(() => n.exitNow(7), 100);`;
      const r = spawnSync(process.execPath, ['-e', script], { timeout: 20_000 });
      expect(r.signal).toBeNull();
      expect(r.status).toBe(7);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a code outside 0..255', () => {
    expect(() => n!.exitNow(-1)).toThrow(TypeError);
    expect(() => n!.exitNow(256)).toThrow(TypeError);
    expect(() => (n!.exitNow as (c: unknown) => never)('0')).toThrow(TypeError);
  });
});
