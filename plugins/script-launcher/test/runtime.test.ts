/**
 * The plug-in and the docs' example loaded by Kiwi's real loader (data directory, factories), then run
 * through the real runtime with `@kiwi-backup/core/testing`.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PluginRuntime } from '@kiwi-backup/core';
import { memoryLogger, runBackupWithPlugins } from '@kiwi-backup/core/testing';
import scriptLauncher from '../src/index.js';

const docsFile = join(dirname(fileURLToPath(import.meta.url)), '../../../docs/writing-plugins.md');

let dataDir: string;
let trace: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kiwi-plugins-runtime-'));
  trace = join(dataDir, 'trace.log');
  await writeFile(trace, '');
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});


async function script(path: string, body: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
}

/** One backup through the runtime's session, the way the engine drives it. */
async function backup(runtime: PluginRuntime, body: () => Promise<void> = async () => undefined) {
  const run = await runBackupWithPlugins(runtime, { id: 'run-1', sources: ['/srv/a', '/srv/b'], snapshotId: 'snap-1', body });
  return { ...run, info: run.backup };
}

const lines = async () => (await readFile(trace, 'utf8')).split('\n').filter(Boolean);

describe.runIf(process.platform !== 'win32')('on the real plug-in runtime', () => {
  it('script-launcher finds its scripts in <datadir>/plugins/script-launcher/', async () => {
    const dir = join(dataDir, 'plugins', 'script-launcher');
    await script(join(dir, 'pre_backup.sh'), `echo "pre $KIWI_HOOK $KIWI_BACKUP_ID" >> "${trace}"`);
    await script(join(dir, 'post_backup.sh'), `echo "post $KIWI_STATUS $KIWI_SNAPSHOT_ID" >> "${trace}"`);
    const runtime = await PluginRuntime.fromModules([{ name: 'script-launcher', module: scriptLauncher }], { dataDir, logger: memoryLogger() });
    const { startError, stopErrors } = await backup(runtime, async () => {
      await writeFile(trace, 'body\n', { flag: 'a' });
    });
    expect(startError).toBeUndefined();
    expect(stopErrors).toEqual([]);
    expect(await lines()).toEqual(['pre pre_backup run-1', 'body', 'post success snap-1']);
  });

  it('a failing pre_backup aborts through the runtime, naming the plug-in and hook', async () => {
    await script(join(dataDir, 'plugins', 'script-launcher', 'pre_backup.sh'), 'echo "no disk" >&2; exit 5');
    const runtime = await PluginRuntime.fromModules([{ name: 'script-launcher', module: scriptLauncher }], { dataDir, logger: memoryLogger() });
    const { startError, info } = await backup(runtime);
    expect((startError as Error).name).toBe('BackupAbortedError');
    expect((startError as Error).message).toMatch(/^backup aborted by plug-in "script-launcher" in onBackupStart: pre_backup script .* failed with exit code 5/);
    expect((startError as Error).message).toContain('no disk');
    expect(info.status).toBe('aborted');
  });

  describe('docs/writing-plugins.md', () => {
    async function installExample(): Promise<void> {
      const text = await readFile(docsFile, 'utf8');
      const m = /<!-- example:run-scripts -->\n```js\n([\s\S]*?)\n```/.exec(text);
      expect(m, 'the run-scripts example block in docs/writing-plugins.md').not.toBeNull();
      const dir = join(dataDir, 'plugins', 'run-scripts');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'index.mjs'), m![1]!);
    }

    it('the complete example runs as written, loaded from the data directory', async () => {
      await installExample();
      const dir = join(dataDir, 'plugins', 'run-scripts');
      await script(join(dir, 'before.sh'), `echo "before $KIWI_HOOK $KIWI_STATUS $KIWI_BACKUP_ID" >> "${trace}"; echo hello from before`);
      await script(join(dir, 'after.sh'), `echo "after $KIWI_HOOK $KIWI_STATUS $KIWI_SNAPSHOT_ID" >> "${trace}"`);
      const logs = memoryLogger();
      const runtime = await PluginRuntime.load({ dataDir, logger: logs });
      expect(runtime.plugins.map((p) => [p.name, p.source, p.hooks])).toEqual([['run-scripts', 'datadir', ['onBackupStart', 'onBackupStop']]]);
      expect(runtime.warnings).toEqual([]);
      const { startError, stopErrors } = await backup(runtime, async () => {
        await writeFile(trace, 'body\n', { flag: 'a' });
      });
      expect(startError).toBeUndefined();
      expect(stopErrors).toEqual([]);
      expect(await lines()).toEqual(['before onBackupStart running run-1', 'body', 'after onBackupStop success snap-1']);
      expect(JSON.stringify(logs.entries)).toContain('hello from before');

      await script(join(dir, 'before.sh'), 'exit 3');
      const failed = await backup(runtime);
      expect((failed.startError as Error).message).toBe(
        `backup aborted by plug-in "run-scripts" in onBackupStart: ${join(dir, 'before.sh')} failed (exit code 3)`,
      );
    });

    it('kiwi plugins reports a misnamed hook with the closest valid name, as documented', async () => {
      const docs = await readFile(docsFile, 'utf8');
      const dir = join(dataDir, 'plugins', 'run-scripts');
      await mkdir(dir, { recursive: true });
      await writeFile(
        join(dir, 'index.mjs'),
        'export default { onStartBackup(ctx, next) { return next(); }, onBackupStop(ctx, next) { return next(); } };\n',
      );
      const runtime = await PluginRuntime.load({ dataDir, logger: memoryLogger(), logWarnings: false });
      expect(runtime.plugins[0]!.hooks).toEqual(['onBackupStop']);
      const warning = 'plug-in "run-scripts" exports "onStartBackup", which is not a hook; did you mean "onBackupStart"? (ignored)';
      expect(runtime.warnings).toEqual([warning]);
      expect(docs).toContain(`warning: ${warning}`);

      for (const name of ['on_backup_start', 'onBackupStarted', 'beforeBackup']) {
        await writeFile(join(dir, 'index.mjs'), `export default { ${name}(ctx, next) { return next(); } };\n`);
        const rt = await PluginRuntime.load({ dataDir, logger: memoryLogger(), logWarnings: false });
        expect(rt.warnings.join('\n')).toContain(`did you mean "onBackupStart"`);
      }
    });
  });
});
