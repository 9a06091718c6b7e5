import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walk, type WalkEvent, type WalkOptions } from '../../src/index.js';
import { nativeScanAvailable, ScanStats } from '../../src/walker/scan.js';
import { walkTesting } from '../../src/walker/walk.js';

// Under CI the addon is built (.ci/run): the scanner must be there, not silently replaced by fs.
const haveScan = nativeScanAvailable();
if (process.env.CI === 'true' && process.platform === 'linux' && process.env.KIWI_NATIVE_FS !== 'off' && !haveScan) {
  throw new Error('the native-fs addon has no scanDirs under CI (is it built from these sources?)');
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiwi-scan-walk-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Everything a walk tells, atime aside (reading a symlink moves it). */
async function record(options: WalkOptions): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const e of walk([root], options) as AsyncIterable<WalkEvent>) {
    if (e.kind === 'error') {
      out.push({ kind: e.kind, op: e.op, path: e.pathBuf.toString('latin1'), code: e.error.code, depth: e.depth });
      continue;
    }
    const st = e.entry.stat;
    out.push({
      kind: e.kind,
      incomplete: e.kind === 'leave' ? e.incomplete : undefined,
      path: e.entry.pathBuf.toString('latin1'),
      name: e.entry.name.toString('latin1'),
      type: e.entry.type,
      depth: e.entry.depth,
      stat: [st.dev, st.ino, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.blocks, st.mtimeNs, st.ctimeNs, st.mtimeMs, st.ctimeMs],
      dates: [st.mtime.getTime(), st.ctime.getTime()],
      is: [st.isFile(), st.isDirectory(), st.isSymbolicLink(), st.isFIFO(), st.isSocket(), st.isCharacterDevice(), st.isBlockDevice()],
    });
  }
  return out;
}

function build(): void {
  for (const d of ['a', 'a/b', 'a/b/c', 'a/b/c/d', 'e', 'skip-me', 'skip-me/inner', 'node_modules', 'many']) mkdirSync(join(root, d));
  for (let i = 0; i < 40; i++) mkdirSync(join(root, 'many', `sub${String(i).padStart(2, '0')}`));
  for (let i = 0; i < 40; i += 3) writeFileSync(join(root, 'many', `sub${String(i).padStart(2, '0')}`, 'f'), String(i));
  writeFileSync(join(root, 'a', 'b', 'c', 'd', 'deep.txt'), 'deep');
  writeFileSync(join(root, 'a', 'x.tmp'), 'tmp');
  writeFileSync(join(root, 'a', 'keep.txt'), 'keep');
  writeFileSync(join(root, 'skip-me', 'inner', 'f'), 'f');
  writeFileSync(join(root, 'node_modules', 'm'), 'm');
  writeFileSync(join(root, 'e', '.kiwiignore'), 'ignored-*\n');
  writeFileSync(join(root, 'e', 'ignored-1'), '1');
  writeFileSync(join(root, 'e', 'kept'), '2');
  writeFileSync(Buffer.concat([Buffer.from(join(root, 'e') + '/'), Buffer.from([0x62, 0xff])]), 'not utf-8');
  symlinkSync('../a/keep.txt', join(root, 'e', 'link'));
  symlinkSync('a', join(root, 'dirlink'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
}

describe.runIf(process.platform === 'linux').each([
  { mode: 'read on the main thread', ahead: false },
  { mode: 'read ahead on the threadpool', ahead: true },
])('walk with the native scanner, $mode', ({ ahead }) => {
  beforeEach(() => {
    walkTesting.scanAhead = ahead;
  });
  afterEach(() => {
    walkTesting.scanAhead = false;
  });

  it.runIf(haveScan)('gives the same events, names, types and lstat data as the walk through Node’s fs', async () => {
    build();
    const opts: WalkOptions = { exclude: ['*.tmp', 'node_modules/'] };
    const viaFs = await record({ ...opts, statMode: 'sync' });
    const viaScan = await record(opts);
    expect(viaScan).toEqual(viaFs);
    expect(viaScan.length).toBeGreaterThan(60);
    // The walk really took the scanner's path.
    for await (const e of walk([root]) as AsyncIterable<WalkEvent>) {
      if (e.kind === 'entry') expect(e.entry.stat).toBeInstanceOf(ScanStats);
    }
  });

  it.runIf(haveScan)('skipped directories (read ahead or not) leave no trace, and the walk goes on in order', async () => {
    build();
    const seen: string[] = [];
    const gen = walk([root]) as AsyncGenerator<WalkEvent, void, boolean | undefined>;
    let step = await gen.next();
    while (!step.done) {
      const e = step.value;
      if (e.kind !== 'error') seen.push(`${e.kind} ${e.entry.pathBuf.subarray(root.length).toString('latin1') || '/'}`);
      const skip = e.kind === 'enter' && /\/(skip-me|sub0[5-9]|sub1\d)$/.test(e.entry.path);
      step = await gen.next(skip);
    }
    expect(seen).not.toContain('entry /skip-me/inner/f');
    expect(seen).toContain('leave /skip-me');
    expect(seen).toContain('entry /many/sub21/f');
    expect(seen).not.toContain('entry /many/sub06/f');
    const files = seen.filter((s) => s.startsWith('entry /many/')).map((s) => s.slice(6));
    expect(files).toEqual([...files].sort());
    expect(files).toEqual(['/many/sub00/f', '/many/sub03/f', '/many/sub21/f', '/many/sub24/f', '/many/sub27/f', '/many/sub30/f', '/many/sub33/f', '/many/sub36/f', '/many/sub39/f']);
  });

  it.runIf(haveScan)('carries symlink targets with the entries', async () => {
    build();
    for await (const e of walk([root]) as AsyncIterable<WalkEvent>) {
      if (e.kind === 'entry' && e.entry.type === 'symlink') expect(e.entry._link?.toString()).toBe(e.entry.name.toString() === 'link' ? '../a/keep.txt' : 'a');
    }
  });

  it.runIf(haveScan)('a directory that cannot be read is an error event and the walk goes on', async () => {
    build();
    const events: string[] = [];
    // Swap a directory for a file between its parent's listing and its own read (at its enter event).
    for await (const e of walk([root]) as AsyncIterable<WalkEvent>) {
      if (e.kind === 'enter' && e.entry.path.endsWith('/a/b/c')) {
        await rm(join(root, 'a', 'b', 'c'), { recursive: true });
        writeFileSync(join(root, 'a', 'b', 'c'), 'now a file');
      }
      if (e.kind === 'error') events.push(`${e.op} ${e.error.code} ${e.pathBuf.subarray(root.length).toString()}`);
      if (e.kind === 'leave' && e.incomplete) events.push(`leave ${e.entry.path.slice(root.length)} (${e.incomplete})`);
      if (e.kind === 'entry' && e.entry.name.toString() === 'kept') events.push('kept');
    }
    expect(lstatSync(join(root, 'a', 'b', 'c')).isFile()).toBe(true);
    if (ahead) {
      // c may have been read ahead with its siblings before the swap: its old listing, or the error.
      expect(events).toContain('kept');
    } else {
      // Read at its turn: the read fails (O_DIRECTORY on a file), c is left incomplete, the walk goes on.
      expect(events).toEqual(['readdir ENOTDIR /a/b/c', 'leave /a/b/c (error)', 'kept']);
    }
  });
});
