import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PluginError, PluginRuntime, type KiwiConfig } from '../../src/index.js';
import { backupInfo, callLog, tempDir, testLogger, writeTree } from './helpers.js';
import { rejectionOf } from './helpers.js';

let dataDir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir: dataDir, cleanup } = await tempDir());
});
afterEach(() => cleanup());

/** A plug-in file recording `<name>:<hook>` in the shared call log. */
const recorder = (name: string, extra = '') => `
const log = (h) => globalThis.__kiwiCalls.push('${name}:' + h);
export default {
  async onBackupStart(ctx, next) { log('start'); await next(); log('start-after'); },
  async onBackupStop(ctx, next) { log('stop'); await next(); },
  ${extra}
};
`;

describe('plug-in loading', () => {
  it('loads index.mjs, package.json main and package.json exports from <dataDir>/plugins, sorted by name', async () => {
    await writeTree(join(dataDir, 'plugins'), {
      'c-exports/package.json': JSON.stringify({ name: 'c', type: 'module', exports: { '.': { import: './lib/entry.js' } } }),
      'c-exports/lib/entry.js': recorder('c'),
      'b-main/package.json': JSON.stringify({ type: 'module', main: 'main.js' }),
      'b-main/main.js': recorder('b'),
      'a-index/index.mjs': recorder('a'),
      '.hidden/index.mjs': 'throw new Error("must not load")',
      'node_modules/x/index.js': 'throw new Error("must not load")',
    });
    await writeTree(dataDir, { 'plugins/stray-file.mjs': 'throw new Error("files are not plug-ins")' });
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    expect(rt.plugins.map((p) => [p.name, p.source, p.path])).toEqual([
      ['a-index', 'datadir', join(dataDir, 'plugins/a-index/index.mjs')],
      ['b-main', 'datadir', join(dataDir, 'plugins/b-main/main.js')],
      ['c-exports', 'datadir', join(dataDir, 'plugins/c-exports/lib/entry.js')],
    ]);
    expect(rt.plugins[0]!.hooks).toEqual(['onBackupStart', 'onBackupStop']);
    const calls = callLog();
    const s = rt.createBackupSession({ backup: backupInfo(), signal: new AbortController().signal, onAddFile() {} });
    await s.start(async () => void calls.push('body'));
    await s.stop();
    expect(calls).toEqual(['a:start', 'b:start', 'c:start', 'body', 'c:start-after', 'b:start-after', 'a:start-after', 'a:stop', 'b:stop', 'c:stop']);
  });

  it('loads CommonJS index.js (module.exports)', async () => {
    await writeTree(join(dataDir, 'plugins'), {
      'cjs/index.js': 'module.exports = { onFile: async (ctx, next) => { await next(); } };',
    });
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    expect(rt.plugins[0]).toMatchObject({ name: 'cjs', hooks: ['onFile'] });
  });

  it('a missing plugins folder means no plug-ins', async () => {
    const rt = await PluginRuntime.load({ dataDir: join(dataDir, 'nope'), logger: testLogger().logger });
    expect(rt.plugins).toEqual([]);
    expect(rt.has('onFile')).toBe(false);
  });

  it('calls a factory with the options from the config and an api', async () => {
    await writeTree(join(dataDir, 'plugins'), {
      'fact/index.mjs': `
        export default function (options, api) {
          globalThis.__kiwiCalls.push(JSON.stringify({ options, name: api.name, dataDir: api.dataDir, pluginDir: api.pluginDir }));
          api.log.info('hello from factory', { password: 'hunter2' });
          return { onBackupStart: async (ctx, next) => { globalThis.__kiwiCalls.push('opt=' + ctx.options.greeting); await next(); } };
        }`,
    });
    const calls = callLog();
    const { logger, mem } = testLogger();
    const config: KiwiConfig = { plugins: [{ name: 'fact', options: { greeting: 'hi' } }] };
    const rt = await PluginRuntime.load({ dataDir, config, logger });
    expect(JSON.parse(calls[0]!)).toEqual({ options: { greeting: 'hi' }, name: 'fact', dataDir, pluginDir: join(dataDir, 'plugins/fact') });
    expect(mem.lines()).toContain('[plugin:fact] info: hello from factory password=[redacted]');
    expect(rt.plugins[0]!.options).toEqual({ greeting: 'hi' });
    const s = rt.createBackupSession({ backup: backupInfo(), signal: new AbortController().signal, onAddFile() {} });
    await s.start(async () => {});
    expect(calls[1]).toBe('opt=hi');
  });

  it('orders config plug-ins first (data-dir ones named there take that position), then the rest by name', async () => {
    await writeTree(join(dataDir, 'plugins'), {
      'zeta/index.mjs': recorder('zeta'),
      'alpha/index.mjs': recorder('alpha'),
      'mid/index.mjs': recorder('mid'),
      'off/index.mjs': recorder('off'),
    });
    await writeTree(dataDir, {
      'extra/by-path.mjs': recorder('path'),
      'etc/node_modules/kiwi-plugin-pkg/package.json': JSON.stringify({ name: 'kiwi-plugin-pkg', type: 'module', exports: './main.js' }),
      'etc/node_modules/kiwi-plugin-pkg/main.js': recorder('pkg'),
    });
    const config: KiwiConfig = {
      plugins: ['zeta', join(dataDir, 'extra/by-path.mjs'), { package: 'kiwi-plugin-pkg' }, { name: 'off', enabled: false }],
    };
    const rt = await PluginRuntime.load({ dataDir, config, configPath: join(dataDir, 'etc/config.json'), logger: testLogger().logger });
    expect(rt.plugins.map((p) => `${p.name}/${p.source}`)).toEqual([
      'zeta/datadir',
      'by-path/config',
      'kiwi-plugin-pkg/package',
      'alpha/datadir',
      'mid/datadir',
    ]);
    expect(rt.disabled).toEqual([{ name: 'off', source: 'datadir', path: join(dataDir, 'plugins/off') }]);
    const calls = callLog();
    const s = rt.createBackupSession({ backup: backupInfo(), signal: new AbortController().signal, onAddFile() {} });
    await s.start(async () => {});
    expect(calls.filter((c) => c.endsWith(':start'))).toEqual(['zeta:start', 'path:start', 'pkg:start', 'alpha:start', 'mid:start']);
  });

  it('pluginOptions set options without changing the order; entry options win; unknown names warn', async () => {
    await writeTree(join(dataDir, 'plugins'), {
      'alpha/index.mjs': 'export default (o) => ({ onFile: (c, n) => n() });',
      'beta/index.mjs': 'export default (o) => ({ onFile: (c, n) => n() });',
    });
    const rt = await PluginRuntime.load({
      dataDir,
      config: {
        plugins: [{ name: 'beta', options: { b: 2 } }],
        pluginOptions: { alpha: { a: 1 }, beta: { b: 1, c: 3 }, alhpa: {} },
      },
      logger: testLogger().logger,
    });
    expect(rt.plugins.map((p) => [p.name, p.options])).toEqual([
      ['beta', { b: 2, c: 3 }],
      ['alpha', { a: 1 }],
    ]);
    expect(rt.warnings).toEqual(['config pluginOptions."alhpa": no plug-in named "alhpa" is loaded (did you mean "alpha"?)']);
  });

  it('a config name overrides the derived name; a definition name is used otherwise', async () => {
    await writeTree(dataDir, {
      'p/a.mjs': `export default { name: 'from-def', onFile: (c, n) => n() };`,
      'p/b.mjs': `export default { name: 'ignored', onFile: (c, n) => n() };`,
    });
    const rt = await PluginRuntime.load({
      dataDir,
      config: { plugins: [join(dataDir, 'p/a.mjs'), { path: join(dataDir, 'p/b.mjs'), name: 'bee' }] },
      logger: testLogger().logger,
    });
    expect(rt.plugins.map((p) => p.name)).toEqual(['from-def', 'bee']);
  });

  it('two plug-ins with the same name are an error', async () => {
    await writeTree(dataDir, { 'p/x.mjs': `export default { onFile: (c, n) => n() };`, 'q/x.mjs': `export default { onFile: (c, n) => n() };` });
    await expect(
      PluginRuntime.load({ dataDir, config: { plugins: [join(dataDir, 'p/x.mjs'), join(dataDir, 'q/x.mjs')] }, logger: testLogger().logger }),
    ).rejects.toThrow(/two plug-ins are named "x"/);
  });

  it('a config entry naming a missing data-dir plug-in, a missing path or package is an error', async () => {
    const { logger } = testLogger();
    await expect(PluginRuntime.load({ dataDir, config: { plugins: [{ name: 'ghost' }] }, logger })).rejects.toThrow(
      `config plugins[0] names plug-in "ghost", but there is no folder ${join(dataDir, 'plugins/ghost')}`,
    );
    await expect(PluginRuntime.load({ dataDir, config: { plugins: [join(dataDir, 'nope.mjs')] }, logger })).rejects.toThrow(/does not exist/);
    await expect(PluginRuntime.load({ dataDir, config: { plugins: ['kiwi-no-such-package-xyz'] }, cwd: dataDir, logger })).rejects.toThrow(
      /cannot find package "kiwi-no-such-package-xyz"/,
    );
  });

  it('a plug-in named like a member of Object.prototype is an unknown plug-in, not a crash', async () => {
    // The CLI's map of built-ins is a plain object: `constructor`, `toString`… once found Object.prototype's
    // functions there and failed with a TypeError (exit 1) instead of a PluginError (a config error, exit 2).
    const builtins = Object.fromEntries([['script-launcher', join(dataDir, 'builtin.mjs')]]) as Record<string, string>;
    const { logger } = testLogger();
    for (const name of ['constructor', 'toString', '__proto__', 'valueOf', 'hasOwnProperty']) {
      for (const entry of [name, { name }]) {
        const err = await rejectionOf(PluginRuntime.load({ dataDir, config: { plugins: [entry] }, cwd: dataDir, logger, builtins }));
        expect(err, `${JSON.stringify(entry)}`).toBeInstanceOf(PluginError);
        expect((err as Error).message).toContain(`"${name}"`);
      }
    }
    // A data-directory folder of such a name, without a module of its own, is a plug-in without an entry.
    await writeTree(join(dataDir, 'plugins'), { 'constructor/pre_backup.sh': '#!/bin/sh\n' });
    const err = await rejectionOf(PluginRuntime.load({ dataDir, logger, builtins }));
    expect(err).toBeInstanceOf(PluginError);
    expect((err as Error).message).toMatch(/has no index\.mjs, index\.js or package\.json entry/);
  });

  it('reports misnamed hooks with the closest valid name, and ignores them', async () => {
    await writeTree(join(dataDir, 'plugins'), {
      'typos/index.mjs': `
        export default {
          onStartBackup() {}, on_backup_start() {}, onfile() {}, onBackupEnd() {}, beforeBackup() {},
          onServerStarted() {}, onFiles() {}, helper() {}, version: '1.0',
          onBackupStop: async (ctx, next) => next(),
        };`,
    });
    const { logger, mem } = testLogger();
    const rt = await PluginRuntime.load({ dataDir, logger });
    const p = rt.plugins[0]!;
    expect(p.hooks).toEqual(['onBackupStop']);
    const suggestion = (k: string) => p.warnings.find((w) => w.includes(`"${k}"`));
    expect(suggestion('onStartBackup')).toBe('plug-in "typos" exports "onStartBackup", which is not a hook; did you mean "onBackupStart"? (ignored)');
    expect(suggestion('on_backup_start')).toContain('did you mean "onBackupStart"?');
    expect(suggestion('onfile')).toContain('did you mean "onFile"?');
    expect(suggestion('onBackupEnd')).toContain('did you mean "onBackupStop"?');
    expect(suggestion('beforeBackup')).toContain('did you mean "onBackupStart"?');
    expect(suggestion('onServerStarted')).toContain('did you mean "onServerStart"?');
    expect(suggestion('onFiles')).toContain('did you mean "onFile"?');
    expect(suggestion('helper')).toBeUndefined();
    expect(suggestion('version')).toBeUndefined();
    expect(rt.warnings).toEqual(p.warnings);
    expect(mem.events.filter((e) => e.level === 'warn').map((e) => e.message)).toEqual(p.warnings);
    expect(rt.describe()).toMatchObject({
      dataDir,
      pluginsDir: join(dataDir, 'plugins'),
      plugins: [{ name: 'typos', source: 'datadir', hooks: ['onBackupStop'], warnings: p.warnings }],
      disabled: [],
    });
  });

  it('a valid hook name that is not a function is an error naming the plug-in and path', async () => {
    await writeTree(join(dataDir, 'plugins'), { 'bad/index.mjs': `export default { onFile: 'yes' };` });
    const err = await rejectionOf<PluginError>(PluginRuntime.load({ dataDir, logger: testLogger().logger }));
    expect(err).toBeInstanceOf(PluginError);
    expect(err.plugin).toBe('bad');
    expect(err.hook).toBe('load');
    expect(err.message).toBe(`plug-in "bad" (${join(dataDir, 'plugins/bad/index.mjs')}): onFile must be a function (ctx, next), got string`);
  });

  it('a syntax error, a throwing module or a throwing factory is a PluginError naming plug-in and path', async () => {
    const cases: Record<string, [string, RegExp]> = {
      syntax: ['export default { onFile(ctx, next) { return next( };', /plug-in "syntax" \(.*syntax\/index\.mjs\) failed to load: /],
      throws: ['throw new Error("top-level boom"); export default {};', /plug-in "throws" \(.*\) failed to load: top-level boom/],
      factory: ['export default () => { throw new Error("factory boom"); };', /plug-in "factory" \(.*\) failed to load: its factory threw: factory boom/],
      nothing: ['export default 42;', /must export an object of hooks or a factory returning one, got number/],
      nofile: ['', /has no index\.mjs, index\.js or package\.json entry/],
    };
    for (const [name, [src, re]] of Object.entries(cases)) {
      const { dir, cleanup: done } = await tempDir();
      try {
        await writeTree(join(dir, 'plugins'), name === 'nofile' ? { 'nofile/readme.txt': 'x' } : { [`${name}/index.mjs`]: src });
        const err = await PluginRuntime.load({ dataDir: dir, logger: testLogger().logger }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, name).toBeInstanceOf(PluginError);
        expect((err as PluginError).plugin, name).toBe(name);
        expect((err as Error).message, name).toMatch(re);
      } finally {
        await done();
      }
    }
  });

  it('an empty module loads with a "registers no hooks" warning', async () => {
    await writeTree(join(dataDir, 'plugins'), { 'empty/index.mjs': '' });
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    expect(rt.plugins[0]).toMatchObject({ name: 'empty', hooks: [] });
    expect(rt.warnings).toEqual([expect.stringContaining('plug-in "empty" registers no hooks')]);
  });

  it('warns about named hook exports shadowed by a default export', async () => {
    await writeTree(join(dataDir, 'plugins'), {
      'mixed/index.mjs': 'export const onFile = (c, n) => n(); export default { onBackupStart: (c, n) => n() };',
      'named/index.mjs': 'export const onFile = (c, n) => n(); export const name = "named-plugin";',
    });
    const rt = await PluginRuntime.load({ dataDir, logger: testLogger().logger });
    expect(rt.plugins.map((p) => [p.name, p.hooks])).toEqual([
      ['mixed', ['onBackupStart']],
      ['named-plugin', ['onFile']],
    ]);
    expect(rt.plugins[0]!.warnings[0]).toContain('named export "onFile" is ignored');
  });
});
