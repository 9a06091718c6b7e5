import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupAbortedError, PluginError, PluginRuntime } from '../../src/index.js';
import { backupInfo, callLog, entry, tempDir, testLogger, writeTree } from './helpers.js';

let dataDir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir: dataDir, cleanup } = await tempDir());
  await writeTree(join(dataDir, 'plugins'), {
    'order/index.mjs': `
      const log = (s) => globalThis.__kiwiCalls.push(s);
      export default {
        async onServerStart(ctx, next) { log('server'); await next(); },
        async onBackupStart(ctx, next) {
          log('start');
          if (ctx.options.abort) ctx.abort('told to');
          try { await next(); } finally { log('start-finally'); }
        },
        async onFile(ctx, next) { log('file ' + ctx.file.path); await next(); },
        async onBackupStop(ctx, next) { log('stop ' + ctx.backup.status + (ctx.backup.error ? ' ' + ctx.backup.error.message : '')); await next(); },
      };`,
  });
});
afterEach(() => cleanup());

/** What the backup engine does, reduced to the hook calls. */
async function fakeBackup(
  rt: PluginRuntime,
  body: (s: ReturnType<PluginRuntime['createBackupSession']>, ac: AbortController) => Promise<void>,
) {
  const backup = backupInfo();
  const ac = new AbortController();
  const s = rt.createBackupSession({ backup, signal: ac.signal, abortController: ac, onAddFile() {} });
  let failure: unknown;
  try {
    await s.start(() => body(s, ac));
    backup.status = 'success';
  } catch (e) {
    failure = e;
    backup.status = e instanceof BackupAbortedError ? 'aborted' : ac.signal.aborted ? 'interrupted' : 'failure';
    backup.error = e as Error;
  } finally {
    await s.stop();
  }
  return failure;
}

describe('a data-dir plug-in with all four hooks', () => {
  it('sees server start, backup start, each file and stop, in order, after success', async () => {
    const calls = callLog();
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    expect(rt.plugins[0]!.hooks).toEqual(['onServerStart', 'onBackupStart', 'onFile', 'onBackupStop']);
    await rt.serverStart();
    await fakeBackup(rt, async (s) => {
      await s.file(entry('/src/a'));
      await s.file(entry('/src/b'));
    });
    expect(calls).toEqual(['server', 'start', 'file /src/a', 'file /src/b', 'start-finally', 'stop success']);
  });

  it('gets onBackupStop after a failed backup, with the error', async () => {
    const calls = callLog();
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    const failure = await fakeBackup(rt, async () => {
      throw new Error('repository is gone');
    });
    expect((failure as Error).message).toBe('repository is gone');
    expect(calls).toEqual(['start', 'start-finally', 'stop failure repository is gone']);
  });

  it('gets onBackupStop after an interrupt (SIGINT aborts the signal mid-walk)', async () => {
    const calls = callLog();
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    await fakeBackup(rt, async (s, ac) => {
      await s.file(entry('/src/a'));
      ac.abort(new Error('SIGINT'));
      s.signal.throwIfAborted();
      await s.file(entry('/src/never'));
    });
    expect(calls).toEqual(['start', 'file /src/a', 'start-finally', 'stop interrupted SIGINT']);
  });

  it('gets onBackupStop after it aborted the backup itself', async () => {
    const calls = callLog();
    const rt = await PluginRuntime.load({ dataDir, config: { plugins: [{ name: 'order', options: { abort: true } }] }, logger: testLogger().logger });
    const failure = await fakeBackup(rt, async () => void calls.push('body'));
    expect(failure).toBeInstanceOf(BackupAbortedError);
    expect(calls).toEqual(['start', 'stop aborted backup aborted by plug-in "order" in onBackupStart: told to']);
  });

  it('an onFile error names plug-in and hook and still lets onBackupStop run', async () => {
    await writeTree(join(dataDir, 'plugins'), { 'zz-broken/index.mjs': 'export default { onFile() { throw new Error("cannot classify"); } };' });
    const calls = callLog();
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    const failure = await fakeBackup(rt, async (s) => {
      await s.file(entry('/src/a'));
    });
    expect(failure).toBeInstanceOf(PluginError);
    expect((failure as Error).message).toBe('plug-in "zz-broken" failed in onFile: cannot classify');
    expect(calls.at(-1)).toBe('stop failure plug-in "zz-broken" failed in onFile: cannot classify');
  });
});
