import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PluginRuntime, recoveryDir, type PluginDefinition, type RecoveryHandle, type UndoContext } from '../../src/index.js';
import { backupInfo, tempDir, testLogger } from './helpers.js';

/** A pid that was alive a moment ago and is not any more (as after `kill -9`). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

async function writeEntry(dataDir: string, fields: Record<string, unknown>): Promise<string> {
  const id = (fields.id as string | undefined) ?? 'a'.repeat(31) + String(Math.floor(Math.random() * 10));
  const dir = recoveryDir(dataDir);
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, `${id}.json`),
    JSON.stringify({ id, plugin: 'svc', action: 'start', data: { unit: 'db' }, registeredAt: new Date().toISOString(), pid: deadPid(), host: hostname(), ...fields }),
  );
  return id;
}

describe('recovery journal', () => {
  let dataDir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir: dataDir, cleanup } = await tempDir('kiwi-recovery-'));
  });
  afterEach(async () => cleanup());

  async function load(plugins: Array<[string, PluginDefinition]>) {
    const { logger, mem } = testLogger();
    const rt = await PluginRuntime.fromModules(plugins.map(([name, module]) => ({ name, module, options: { o: 1 } })), { dataDir, logger });
    return { rt, mem };
  }

  it('register() writes a private entry before the change, clear() removes it; the next start has nothing to undo', async () => {
    const undone: unknown[] = [];
    let during: string[] = [];
    const plugin: PluginDefinition = {
      async onBackupStart(ctx, next) {
        const handle = await ctx.recovery.register('start', { unit: 'db' });
        during = await readdir(recoveryDir(dataDir));
        try {
          await next();
        } finally {
          await handle.clear();
        }
      },
      undo: { start: (data) => void undone.push(data) },
    };
    const { rt } = await load([['svc', plugin]]);
    const s = rt.createBackupSession({ backup: backupInfo({ id: 'b-1' }), signal: new AbortController().signal, onAddFile: () => {} });
    await s.start(async () => {
      const files = await readdir(recoveryDir(dataDir));
      expect(files).toHaveLength(1);
      const file = join(recoveryDir(dataDir), files[0]!);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(recoveryDir(dataDir))).mode & 0o777).toBe(0o700);
      const entry = JSON.parse(await readFile(file, 'utf8'));
      expect(entry).toMatchObject({ plugin: 'svc', action: 'start', data: { unit: 'db' }, pid: process.pid, host: hostname(), backupId: 'b-1' });
    });
    await s.stop();
    expect(during).toHaveLength(1);
    expect(await readdir(recoveryDir(dataDir))).toEqual([]);
    // A fresh runtime (the next start) finds nothing to undo.
    const next = await load([['svc', plugin]]);
    expect(await next.rt.recover()).toEqual([]);
    expect(undone).toEqual([]);
  });

  it('an entry left by a dead process is undone at the next start with its data, logged, and removed', async () => {
    const calls: Array<{ data: unknown; ctx: UndoContext }> = [];
    const { rt, mem } = await load([
      ['svc', { onBackupStart: (_c, n) => n(), undo: { start: (data, ctx) => { calls.push({ data, ctx }); return 'started db'; } } }],
    ]);
    await writeEntry(dataDir, {});
    const outcomes = await rt.recover();
    expect(outcomes).toEqual([expect.objectContaining({ plugin: 'svc', action: 'start', status: 'done', message: 'started db' })]);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.data).toEqual({ unit: 'db' });
    expect(calls[0]!.ctx.options).toEqual({ o: 1 });
    expect(await readdir(recoveryDir(dataDir))).toEqual([]);
    expect(mem.lines().join('\n')).toMatch(/recovery: svc "start" \(registered .* by pid \d+\) was not cleared/);
    expect(mem.lines().join('\n')).toMatch(/recovery: svc "start": started db/);
    // Nothing twice.
    expect(await rt.recover()).toEqual([]);
    expect(calls).toHaveLength(1);
  });

  it('an entry of a process that still runs is left alone', async () => {
    const child = spawn('sleep', ['30']);
    try {
      const calls: unknown[] = [];
      const { rt } = await load([['svc', { onBackupStart: (_c, n) => n(), undo: { start: (d) => void calls.push(d) } }]]);
      await writeEntry(dataDir, { pid: child.pid });
      await writeEntry(dataDir, { id: 'b'.repeat(32), pid: process.pid });
      const outcomes = await rt.recover();
      expect(outcomes.map((o) => o.status)).toEqual(['skipped', 'skipped']);
      expect(calls).toEqual([]);
      expect(await readdir(recoveryDir(dataDir))).toHaveLength(2);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('an entry whose pid was reused by another process (different start time) is undone', async () => {
    const calls: unknown[] = [];
    const { rt } = await load([['svc', { onBackupStart: (_c, n) => n(), undo: { start: (d) => void calls.push(d) } }]]);
    await writeEntry(dataDir, { pid: process.pid, processStart: '1' });
    const outcomes = await rt.recover();
    expect(outcomes.map((o) => o.status)).toEqual(process.platform === 'linux' ? ['done'] : ['skipped']);
  });

  it('a failing undo handler keeps the entry for the next start; a missing plug-in or handler keeps it too', async () => {
    let fail = true;
    const plugin: PluginDefinition = {
      onBackupStart: (_c, n) => n(),
      undo: {
        start: () => {
          if (fail) throw new Error('service manager not answering');
          return 'started';
        },
      },
    };
    const { rt, mem } = await load([['svc', plugin]]);
    await writeEntry(dataDir, {});
    await writeEntry(dataDir, { id: 'c'.repeat(32), plugin: 'gone' });
    await writeEntry(dataDir, { id: 'd'.repeat(32), action: 'unmount' });
    const first = await rt.recover();
    expect(first.map((o) => o.status)).toEqual(['failed', 'failed', 'failed']);
    expect(first.map((o) => o.message).join('\n')).toMatch(/service manager not answering/);
    expect(first.map((o) => o.message).join('\n')).toMatch(/plug-in "gone" is not loaded/);
    expect(first.map((o) => o.message).join('\n')).toMatch(/no undo handler "unmount"/);
    expect(mem.lines().join('\n')).toMatch(/undoing svc "start" .* failed: service manager not answering/);
    expect(await readdir(recoveryDir(dataDir))).toHaveLength(3);
    fail = false;
    const second = await rt.recover();
    expect(second.filter((o) => o.status === 'done')).toHaveLength(1);
    expect(await readdir(recoveryDir(dataDir))).toHaveLength(2);
  });

  it('malformed journal files are set aside as .invalid and reported, never executed', async () => {
    const calls: unknown[] = [];
    const { rt, mem } = await load([['svc', { onBackupStart: (_c, n) => n(), undo: { start: (d) => void calls.push(d) } }]]);
    const dir = recoveryDir(dataDir);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${'e'.repeat(32)}.json`), '{"id": "eeee", truncated');
    await writeEntry(dataDir, { id: 'f'.repeat(32), pid: -4 });
    await writeEntry(dataDir, { id: '0'.repeat(32), action: '../../etc' });
    expect(await rt.recover()).toEqual([]);
    expect(calls).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual([`${'0'.repeat(32)}.json.invalid`, `${'e'.repeat(32)}.json.invalid`, `${'f'.repeat(32)}.json.invalid`]);
    expect(mem.lines().filter((l) => /not a valid journal entry/.test(l))).toHaveLength(3);
  });

  it('register() refuses bad names and data, and fails clearly when the journal cannot be written', async () => {
    const { rt } = await load([['svc', { onBackupStart: (_c, n) => n() }]]);
    const api = rt.recoveryJournal.api('svc');
    await expect(api.register('')).rejects.toThrow(/invalid action name/);
    await expect(api.register('a/b')).rejects.toThrow(/invalid action name/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(api.register('x', cyclic)).rejects.toThrow(/JSON-serialisable/);
    await expect(api.register('x', 'y'.repeat(70_000))).rejects.toThrow(/larger than/);
    // The data directory is a file: nothing can be journalled, so the plug-in must not make its change.
    const file = join(dataDir, 'not-a-dir');
    await writeFile(file, '');
    const blocked = await PluginRuntime.fromModules([{ name: 'svc', module: { onBackupStart: (_c, n) => n() } }], { dataDir: file });
    await expect(blocked.recoveryJournal.api('svc').register('x')).rejects.toThrow(/cannot write the recovery journal in .*not-a-dir/);
  });

  it('ctx.recovery is there in onServerStart too, and a handle clears only once', async () => {
    let handle: RecoveryHandle | undefined;
    const { rt } = await load([['svc', { async onServerStart(ctx, next) { handle = await ctx.recovery.register('start', 1); await next(); } }]]);
    await rt.serverStart();
    expect(await readdir(recoveryDir(dataDir))).toHaveLength(1);
    await handle!.clear();
    await handle!.clear();
    expect(await readdir(recoveryDir(dataDir))).toEqual([]);
  });

  it('a plug-in whose undo is not an object of functions fails to load, naming it', async () => {
    await expect(PluginRuntime.fromModules([{ name: 'bad', module: { onBackupStart: (_c, n) => n(), undo: { start: 'sh start.sh' } as never } }])).rejects.toThrow(
      /plug-in "bad".*undo\.start must be a function/,
    );
    await expect(PluginRuntime.fromModules([{ name: 'bad', module: { onBackupStart: (_c, n) => n(), undo: [] as never } }])).rejects.toThrow(/undo must be an object/);
  });

  it('an unreadable journal folder is an error at start (not silently nothing to undo)', async () => {
    if (process.getuid?.() === 0) return; // root reads anything
    await mkdir(recoveryDir(dataDir), { recursive: true });
    await chmod(recoveryDir(dataDir), 0o000);
    const { rt } = await load([['svc', { onBackupStart: (_c, n) => n() }]]);
    await expect(rt.recover()).rejects.toThrow(/cannot read the recovery journal/);
    await chmod(recoveryDir(dataDir), 0o700);
    expect(existsSync(recoveryDir(dataDir))).toBe(true);
  });
});
