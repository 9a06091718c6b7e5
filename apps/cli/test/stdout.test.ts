/**
 * One buffered stdout for every command, and a quiet exit 0 when its reader goes away
 * (`kiwi ls latest | head -1`).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { EventEmitter } from 'node:events';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { StdoutWriter, BrokenPipeError, STDOUT_CHUNK } from '../src/stdout.js';
import { KIWI_BIN, runKiwi, tempDir, removeDir, bytes } from './helpers.js';

/** A stream that records its writes and can be made to need a drain or fail. */
class FakeStream extends EventEmitter {
  writes: Array<string | Uint8Array> = [];
  writableNeedDrain = false;
  write(data: string | Uint8Array): boolean {
    this.writes.push(data);
    return !this.writableNeedDrain;
  }
}

describe('StdoutWriter', () => {
  it('batches lines into ~64 KiB writes, and flushes the rest when the event loop is free', async () => {
    const s = new FakeStream();
    const w = new StdoutWriter(s as unknown as NodeJS.WritableStream);
    const line = `${'x'.repeat(99)}\n`;
    for (let i = 0; i < 10_000; i++) w.write(line); // 1,000,000 bytes
    expect(s.writes.length).toBe(Math.floor((10_000 * 100) / (Math.ceil(STDOUT_CHUNK / 100) * 100)));
    await new Promise((r) => setImmediate(r));
    expect(s.writes.join('')).toBe(line.repeat(10_000));
    expect(s.writes.length).toBeLessThanOrEqual(17);
  });

  it('backpressure: a promise while the stream needs a drain, settled by the drain', async () => {
    const s = new FakeStream();
    const w = new StdoutWriter(s as unknown as NodeJS.WritableStream);
    expect(w.backpressure()).toBeUndefined();
    s.writableNeedDrain = true;
    const waiting = w.backpressure();
    expect(waiting).toBeInstanceOf(Promise);
    let settled = false;
    void waiting!.then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    s.writableNeedDrain = false;
    s.emit('drain');
    await waiting;
    expect(settled).toBe(true);
  });

  it('EPIPE: the next write and every waiter fail with BrokenPipeError; end() resolves quietly', async () => {
    const s = new FakeStream();
    const w = new StdoutWriter(s as unknown as NodeJS.WritableStream);
    s.writableNeedDrain = true;
    const waiting = w.backpressure()!;
    s.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    await expect(waiting).rejects.toBeInstanceOf(BrokenPipeError);
    expect(() => w.write('more\n')).toThrow(BrokenPipeError);
    await expect(w.end()).resolves.toBeUndefined();
  });
});

describe('a broken pipe ends a command quietly with exit code 0', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = await tempDir();
    const src = join(work, 'src');
    await mkdir(src);
    // Enough names that the listing is far larger than a pipe's buffer.
    for (let i = 0; i < 4000; i++) await writeFile(join(src, `a-file-with-a-rather-long-name-${String(i).padStart(5, '0')}.txt`), `${i}\n`);
    // And a deep hierarchy (400 directories, 8 levels): the listing is cut off while trees are
    // still being read ahead.
    for (let a = 0; a < 20; a++) {
      for (let b = 0; b < 20; b++) {
        const d = join(src, `deep-${a}`, 'x', 'y', 'z', 'w', 'v', `leaf-${b}`);
        await mkdir(d, { recursive: true });
        await writeFile(join(d, 'f.txt'), `${a}/${b}\n`);
      }
    }
    await writeFile(join(src, 'big.bin'), bytes(6 * 1024 * 1024, 5));
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(0);
  }, 120_000);
  afterAll(() => removeDir(work));

  /** `kiwi <args> | <reader>` in bash; kiwi's exit code (PIPESTATUS) and its stderr. */
  function pipeline(args: string[], reader: string): Promise<{ code: number; stderr: string; out: string }> {
    const quoted = [process.execPath, KIWI_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const script = `${quoted} 2>"$ERR" | ${reader}; echo "kiwi-exit=\${PIPESTATUS[0]}"; echo "kiwi-stderr=$(cat "$ERR")"`;
    return new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', script], { env: { ...process.env, ...env, ERR: join(work, `stderr-${Math.random()}`) } });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.on('error', reject);
      child.on('close', () => {
        const code = Number(/kiwi-exit=(\d+)/.exec(out)?.[1]);
        const stderr = out.slice(out.indexOf('kiwi-stderr=') + 'kiwi-stderr='.length).trim();
        resolve({ code, stderr, out: out.slice(0, out.indexOf('kiwi-exit=')) });
      });
    });
  }

  it('kiwi ls latest | head -1', async () => {
    const r = await pipeline(['ls', 'latest'], 'head -1');
    expect(r.out.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('kiwi ls latest | head -1 in the middle of a deep hierarchy (trees still being read ahead)', async () => {
    const all = await runKiwi(['ls', 'latest'], { env });
    expect(all.code).toBe(0);
    const lines = all.stdout.trim().split('\n');
    const firstDeep = lines.findIndex((l) => l.includes('/deep-0/'));
    expect(firstDeep).toBeGreaterThan(0);
    for (const reader of ['head -1', `head -${firstDeep + 5}`, `head -${firstDeep + 1500}`]) {
      const r = await pipeline(['ls', 'latest'], reader);
      expect(r.stderr, reader).toBe('');
      expect(r.code, reader).toBe(0);
    }
  });

  it('kiwi ls -l --json latest | head -c 100, and kiwi find | head -1', async () => {
    for (const [args, reader] of [
      [['ls', '-l', 'latest', '--json'], 'head -c 100'],
      [['find', '*.txt'], 'head -1'],
    ] as const) {
      const r = await pipeline([...args], reader);
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.code, args.join(' ')).toBe(0);
    }
  });

  it('kiwi dump of a 6 MiB file | head -c 1000', async () => {
    const r = await pipeline(['dump', 'latest', join(work, 'src', 'big.bin')], 'head -c 1000 | wc -c');
    expect(r.out.trim()).toBe('1000');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
