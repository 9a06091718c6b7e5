import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import * as assert from 'node:assert/strict';
import { describe, expect, it } from 'vitest';
import type { BackupInfo, HookContext, PluginDefinition, PluginModule } from '@kiwi-backup/core';
import * as testing from '@kiwi-backup/core/testing';
import {
  BackupAbortedError,
  BackupInterruptedError,
  PluginError,
  fakeFileEntry,
  instantiatePlugin,
  loadTestPlugins,
  memoryLogger,
  readContent,
  runBackupWithPlugins,
} from '@kiwi-backup/core/testing';

const here = dirname(fileURLToPath(import.meta.url));

/** A plug-in that records what it saw into `trace`. */
function tracer(name: string, trace: string[], extra: PluginDefinition = {}): { name: string; module: PluginModule } {
  return {
    name,
    module: {
      async onBackupStart(ctx, next) {
        trace.push(`${name}:start`);
        await next();
        trace.push(`${name}:after-next`);
      },
      onBackupStop(ctx, next) {
        trace.push(`${name}:stop ${ctx.backup.status}${ctx.backup.error ? ` (${ctx.backup.error.message})` : ''}`);
        return next();
      },
      ...extra,
    },
  };
}

describe('runBackupWithPlugins', () => {
  it('wraps the body in every onBackupStart (innermost next) and runs onBackupStop after it', async () => {
    const trace: string[] = [];
    const run = await runBackupWithPlugins([tracer('a', trace), tracer('b', trace)], {
      id: 'run-1',
      snapshotId: 'snap-1',
      body: (ctx) => {
        trace.push(`body ${ctx.backup.status}`);
      },
    });
    expect(trace).toEqual(['a:start', 'b:start', 'body running', 'b:after-next', 'a:after-next', 'a:stop success', 'b:stop success']);
    expect(run).toMatchObject({ status: 'success', bodyRan: true, stopErrors: [], errors: [] });
    expect(run.error).toBeUndefined();
    expect(run.backup).toMatchObject({ id: 'run-1', status: 'success', snapshotId: 'snap-1' });
  });

  it('gives a success a snapshot id, and none to a dry run', async () => {
    expect((await runBackupWithPlugins([])).backup.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    const dry = await runBackupWithPlugins([], { dryRun: true });
    expect(dry.status).toBe('success');
    expect(dry.backup.snapshotId).toBeUndefined();
  });

  it('a failing body: status failure, the error unchanged, onBackupStop sees both', async () => {
    const trace: string[] = [];
    const run = await runBackupWithPlugins([tracer('a', trace)], {
      body: () => {
        throw new Error('disk on fire');
      },
    });
    expect(run.status).toBe('failure');
    expect(run.error?.message).toBe('disk on fire');
    expect(run.startError).toBe(run.error);
    expect(trace).toEqual(['a:start', 'a:stop failure (disk on fire)']);
  });

  it('ctx.abort(): status aborted, the body never runs, the abort reaches ctx.signal and onBackupStop', async () => {
    const trace: string[] = [];
    let signalReason: unknown;
    const aborter: PluginModule = {
      onBackupStart(ctx) {
        ctx.abort('not today');
      },
    };
    const watcher = tracer('w', trace, {
      onBackupStop(ctx, next) {
        signalReason = ctx.signal.reason;
        trace.push(`w:stop ${ctx.backup.status}`);
        return next();
      },
    });
    const run = await runBackupWithPlugins([watcher, { name: 'aborter', module: aborter }]);
    expect(run.status).toBe('aborted');
    expect(run.bodyRan).toBe(false);
    expect(run.error).toBeInstanceOf(BackupAbortedError);
    expect(run.error!.message).toBe('backup aborted by plug-in "aborter" in onBackupStart: not today');
    expect((run.error as BackupAbortedError).reason).toBe('not today');
    expect(signalReason).toBe(run.error);
    expect(trace).toEqual(['w:start', 'w:stop aborted']);
    expect(run.logs).toContainEqual(expect.objectContaining({ level: 'warn', message: run.error!.message, scope: '' }));
  });

  it('the run signal interrupts: status interrupted, error a BackupInterruptedError, startError what the chain threw', async () => {
    const controller = new AbortController();
    const trace: string[] = [];
    const run = await runBackupWithPlugins([tracer('a', trace)], {
      signal: controller.signal,
      body: async (ctx) => {
        setTimeout(() => controller.abort(new Error('SIGINT')), 20);
        await new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('walk stopped'))));
      },
    });
    expect(run.status).toBe('interrupted');
    expect(run.error).toBeInstanceOf(BackupInterruptedError);
    expect(run.error!.message).toBe('backup interrupted: SIGINT');
    expect((run.startError as Error).message).toBe('walk stopped');
    expect(trace).toEqual(['a:start', 'a:stop interrupted (backup interrupted: SIGINT)']);
  });

  it('a signal aborted before the run: the body does not get to work', async () => {
    const run = await runBackupWithPlugins([], { signal: AbortSignal.abort('SIGTERM'), body: () => assert.fail('body ran its work') });
    expect(run.status).toBe('interrupted');
    expect(run.error!.message).toBe('backup interrupted: SIGTERM');
  });

  it('a plug-in error is a PluginError naming the plug-in and hook (status failure)', async () => {
    const run = await runBackupWithPlugins([{ name: 'broken', module: { onBackupStart: () => Promise.reject(new Error('boom')) } }]);
    expect(run.status).toBe('failure');
    expect(run.error).toBeInstanceOf(PluginError);
    expect(run.error!.message).toBe('plug-in "broken" failed in onBackupStart: boom');
  });

  it('a plug-in that forgets next(): the backup does not run, and the error says why', async () => {
    const run = await runBackupWithPlugins([{ name: 'lazy', module: { async onBackupStart() {} } }]);
    expect(run.bodyRan).toBe(false);
    expect(run.status).toBe('failure');
    expect(run.error!.message).toMatch(/plug-in "lazy" failed in onBackupStart: it returned without calling next\(\)/);
  });

  it('every onBackupStop runs; their errors land in stopErrors and the status stands', async () => {
    const trace: string[] = [];
    const run = await runBackupWithPlugins([
      { name: 'bad-stop', module: { onBackupStop: () => Promise.reject(new Error('upload failed')) } },
      tracer('b', trace),
    ]);
    expect(run.status).toBe('success');
    expect(run.stopErrors.map((e) => e.message)).toEqual(['plug-in "bad-stop" failed in onBackupStop: upload failed']);
    expect(trace).toContain('b:stop success');
  });

  it('collects ctx.addFile files (bytes, strings, streams) read the way the engine reads them', async () => {
    let tooLate: unknown;
    const dumper: PluginModule = {
      async onBackupStart(ctx, next) {
        ctx.addFile('db/a.sql', 'CREATE TABLE a;');
        ctx.addFile('db/b.bin', Buffer.from([1, 2, 3]), { mode: 0o640 });
        ctx.addFile('db/c.txt', () => Readable.from([Buffer.from('str'), Buffer.from('eam')]));
        expect(() => ctx.addFile('db/a.sql', 'again')).toThrow(/clashes with the virtual file 'db\/a\.sql'/);
        expect(() => ctx.addFile('srv/x', 'x')).toThrow(/clashes with the backed-up path '\/srv'/);
        expect(() => ctx.addFile('../up', 'x')).toThrow(/invalid path/);
        await next();
        try {
          ctx.addFile('late.txt', 'x');
        } catch (err) {
          tooLate = err;
        }
      },
    };
    const seen: string[] = [];
    const run = await runBackupWithPlugins([dumper], {
      sources: ['/srv/app'],
      body: (ctx) => void seen.push(...ctx.addedFiles.keys()),
    });
    expect(run.status).toBe('success');
    expect(seen).toEqual(['db/a.sql', 'db/b.bin', 'db/c.txt']);
    expect(run.addedFiles.map((f) => [f.path, f.content.toString('latin1'), f.options.mode])).toEqual([
      ['db/a.sql', 'CREATE TABLE a;', undefined],
      ['db/b.bin', '\x01\x02\x03', 0o640],
      ['db/c.txt', 'stream', undefined],
    ]);
    expect((tooLate as Error).message).toMatch(/too late/);
  });

  it('an unreadable virtual file makes the backup partial; one that aborts makes it aborted', async () => {
    const partial = await runBackupWithPlugins([
      { name: 'p', module: { onBackupStart: (ctx, next) => (ctx.addFile('x.txt', () => Promise.reject(new Error('EIO'))), next()) } },
    ]);
    expect(partial.status).toBe('partial');
    expect(partial.errors).toEqual([{ path: 'x.txt', message: 'virtual file: EIO' }]);
    expect(partial.backup.snapshotId).toBeDefined();

    const aborting: PluginModule = {
      onBackupStart(ctx, next) {
        ctx.addFile('dump.sql', async function* () {
          yield Buffer.from('partial dump');
          ctx.abort('the dump failed');
        });
        return next();
      },
    };
    const aborted = await runBackupWithPlugins([{ name: 'dumper', module: aborting }]);
    expect(aborted.status).toBe('aborted');
    expect(aborted.error!.message).toBe('backup aborted by plug-in "dumper" in onBackupStart: the dump failed');
    expect(aborted.addedFiles).toEqual([]);
  });

  it('runs files through onFile: skip, replaceContent, metadata; a skipped directory hides its subtree', async () => {
    const filter: PluginModule = {
      onFile(ctx, next) {
        const { path } = ctx.file;
        if (path.endsWith('.tmp') || path === '/srv/cache') ctx.skip();
        if (path === '/srv/secret.env') ctx.replaceContent('REDACTED\n');
        if (path === '/srv/app.log') ctx.file.metadata = { rotated: true };
        return next();
      },
    };
    const run = await runBackupWithPlugins([filter], {
      files: ['/srv/a.tmp', '/srv/secret.env', fakeFileEntry('/srv/cache', 'dir'), '/srv/cache/big', '/srv/app.log', fakeFileEntry('/srv/link', 'symlink')],
    });
    expect(run.status).toBe('success');
    expect(run.fileDecisions.map(({ path, visited, skip }) => [path, visited, skip])).toEqual([
      ['/srv/a.tmp', true, true],
      ['/srv/secret.env', true, false],
      ['/srv/cache', true, true],
      ['/srv/cache/big', false, true],
      ['/srv/app.log', true, false],
      ['/srv/link', true, false],
    ]);
    expect(run.fileDecisions[1]!.content?.toString()).toBe('REDACTED\n');
    expect(run.fileDecisions[4]!.metadata).toEqual({ rotated: true });
  });

  it('without onFile plug-ins every entry is kept; onFile errors fail the backup', async () => {
    const kept = await runBackupWithPlugins([], { files: ['/srv/a', '/srv/b'] });
    expect(kept.fileDecisions.map((d) => d.skip)).toEqual([false, false]);
    const bad = await runBackupWithPlugins([{ name: 'f', module: { onFile: (ctx) => ctx.replaceContent('x') } }], {
      files: [fakeFileEntry('/srv/d', 'dir')],
    });
    expect(bad.status).toBe('failure');
    expect(bad.error!.message).toMatch(/^plug-in "f" failed in onFile: replaceContent: \/srv\/d is a dir/);
  });

  it('keeps each plug-in\'s log lines apart, with secrets in data redacted', async () => {
    const talk = (name: string): { name: string; module: PluginModule } => ({
      name,
      module: {
        onBackupStart(ctx, next) {
          ctx.log.info(`hello from ${name}`, { password: 'hunter2' });
          return next();
        },
      },
    });
    const run = await runBackupWithPlugins([talk('one'), talk('two')]);
    expect(run.logs.filter((l) => l.plugin === 'one')).toEqual([
      { level: 'info', message: 'hello from one', data: { password: '[redacted]' }, scope: 'plugin:one', plugin: 'one' },
    ]);
    expect(run.logs.filter((l) => l.plugin === 'two').map((l) => l.message)).toEqual(['hello from two']);
  });

  it('a runtime from loadTestPlugins: onServerStart once, state per backup, logs per run', async () => {
    let serverStarts = 0;
    let factoryApi: unknown;
    const counter: PluginModule = (options, api) => {
      factoryApi = { name: api.name, dataDir: api.dataDir, pluginDir: api.pluginDir, options };
      return {
        onServerStart(ctx, next) {
          serverStarts++;
          return next();
        },
        onBackupStart(ctx, next) {
          ctx.log.info(`backup ${ctx.backup.id}, state ${JSON.stringify(ctx.state)}`);
          ctx.state.seen = true;
          return next();
        },
      };
    };
    const runtime = await loadTestPlugins([{ name: 'counter', module: counter, options: { every: 2 } }], { dataDir: '/var/lib/kiwi' });
    expect(factoryApi).toEqual({ name: 'counter', dataDir: '/var/lib/kiwi', pluginDir: '/var/lib/kiwi/plugins/counter', options: { every: 2 } });
    const first = await runBackupWithPlugins(runtime, { id: 'r1' });
    const second = await runBackupWithPlugins(runtime, { id: 'r2', state: { from: 'test' } });
    expect(serverStarts).toBe(1);
    expect(first.logs.map((l) => l.message)).toEqual(['backup r1, state {}']);
    expect(second.logs.map((l) => l.message)).toEqual(['backup r2, state {"from":"test"}']);
    expect(second.state).toEqual({ from: 'test', seen: true });
  });

  it('rejects when the plug-in fails to load or onServerStart fails', async () => {
    const picky: PluginModule = (options) => {
      if (options.mode === undefined) throw new Error('option "mode" is required');
      return {};
    };
    await expect(runBackupWithPlugins([{ name: 'picky', module: picky }])).rejects.toThrow(
      'plug-in "picky" (<inline:picky>) failed to load: its factory threw: option "mode" is required',
    );
    await expect(runBackupWithPlugins([{ name: 's', module: { onServerStart: () => Promise.reject(new Error('no')) } }])).rejects.toThrow(
      'plug-in "s" failed in onServerStart: no',
    );
  });

  it('plug-ins may change tags and metadata; the run reports them', async () => {
    const tagger: PluginModule = {
      name: 'tagger',
      onBackupStart(ctx: HookContext, next) {
        ctx.backup.tags.push('tagged');
        ctx.backup.metadata.tagger = { at: 'start' };
        return next();
      },
    };
    const run = await runBackupWithPlugins([tagger], { tags: ['daily'] });
    expect(run.backup.tags).toEqual(['daily', 'tagged']);
    expect(run.metadata).toEqual({ tagger: { at: 'start' } });
    expect(run.logs).toEqual([]);
  });
});

describe('helpers', () => {
  it('fakeFileEntry builds a stat that matches the type, with overrides', () => {
    const f = fakeFileEntry('/srv/x', 'file', { size: 42, uid: 1000 });
    expect([f.stat.isFile(), f.stat.isDirectory(), f.stat.size, f.stat.uid, f.stat.mode & 0o170000]).toEqual([true, false, 42, 1000, 0o100000]);
    const d = fakeFileEntry('/srv', 'dir');
    expect([d.type, d.stat.isDirectory(), d.stat.mode & 0o777]).toEqual(['dir', true, 0o755]);
  });

  it('instantiatePlugin calls a factory like the loader does', async () => {
    const def = await instantiatePlugin((opts, api) => ({ name: `${api.name}:${String(opts.x)}:${api.pluginDir}` }), { x: 1 }, { name: 'p', dataDir: '/d' });
    expect(def.name).toBe('p:1:/d/plugins/p');
  });

  it('memoryLogger captures children and filters by plug-in', () => {
    const log = memoryLogger({ secrets: ['s3cret'] });
    log.child('plugin:x').warn('token s3cret');
    log.info('root');
    expect(log.forPlugin('x')).toEqual([{ level: 'warn', message: 'token [redacted]', scope: 'plugin:x', plugin: 'x' }]);
    expect(log.entries).toHaveLength(2);
    log.clear();
    expect(log.entries).toEqual([]);
  });

  it('readContent copies bytes and drains streams', async () => {
    const src = Buffer.from('abc');
    const out = await readContent(src);
    src[0] = 0x7a;
    expect(out.toString()).toBe('abc');
    expect((await readContent(() => Readable.from(['x', 'y']))).toString()).toBe('xy');
  });

  it('does not depend on a test runner', async () => {
    const dir = join(here, '../../src/testing');
    for (const name of await readdir(dir)) {
      expect(await readFile(join(dir, name), 'utf8'), name).not.toMatch(/from ['"](vitest|jest|@jest\/|mocha)/);
    }
  });
});

describe('docs/writing-plugins.md, "Testing your plug-in"', () => {
  it('the example runs as written', async () => {
    const docs = await readFile(join(here, '../../../../docs/writing-plugins.md'), 'utf8');
    const m = /<!-- example:plugin-test -->\n```js\n([\s\S]*?)\n```/.exec(docs);
    expect(m, 'the plugin-test example block').not.toBeNull();
    let code = m![1]!;
    // The block is an ES module; run it as a function body with its two imports provided.
    const imports: Array<[RegExp, string]> = [
      [/^import assert from 'node:assert\/strict';$/m, 'const assert = __assert;'],
      [/^import \{([^}]+)\} from '@kiwi-backup\/core\/testing';$/m, 'const {$1} = __testing;'],
    ];
    for (const [re, replacement] of imports) {
      expect(code).toMatch(re);
      code = code.replace(re, replacement);
    }
    expect(code).not.toMatch(/^import /m);
    const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<void>;
    await new AsyncFunction('__assert', '__testing', code)(assert, testing);
  });
});

export type { BackupInfo };
