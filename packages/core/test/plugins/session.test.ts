import { describe, expect, it } from 'vitest';
import {
  BackupAbortedError,
  PluginError,
  PluginRuntime,
  type FileContext,
  type HookContext,
  type InlinePlugin,
  type PluginDefinition,
} from '../../src/index.js';
import { backupInfo, entry, testLogger } from './helpers.js';
import { rejectionOf } from './helpers.js';

function runtime(plugins: Array<[string, PluginDefinition | InlinePlugin['module'], Record<string, unknown>?]>) {
  const { logger, mem } = testLogger();
  return PluginRuntime.fromModules(
    plugins.map(([name, module, options]) => ({ name, module, options })),
    { dataDir: '/data', logger },
  ).then((rt) => ({ rt, mem }));
}

function session(rt: PluginRuntime, added: unknown[] = [], ac = new AbortController()) {
  const backup = backupInfo();
  const s = rt.createBackupSession({
    backup,
    signal: ac.signal,
    abortController: ac,
    onAddFile: (path, content, options) => void added.push({ path, content, options }),
  });
  return { s, backup, ac };
}

/** A plug-in recording each hook's before/after in `calls`. */
function recorder(name: string, calls: string[]): PluginDefinition {
  return {
    async onBackupStart(ctx, next) {
      calls.push(`${name}:start`);
      try {
        await next();
      } finally {
        calls.push(`${name}:start-finally`);
      }
    },
    async onFile(ctx, next) {
      calls.push(`${name}:file ${ctx.file.path}`);
      await next();
      calls.push(`${name}:file-after`);
    },
    async onBackupStop(ctx, next) {
      calls.push(`${name}:stop ${ctx.backup.status}`);
      await next();
      calls.push(`${name}:stop-after`);
    },
  };
}

describe('BackupSession', () => {
  it('wraps the backup in onBackupStart with Koa order across plug-ins, then runs onBackupStop', async () => {
    const calls: string[] = [];
    const { rt } = await runtime([
      ['a', recorder('a', calls)],
      ['b', recorder('b', calls)],
    ]);
    const { s, backup } = session(rt);
    await s.start(async () => {
      calls.push('body');
      const d = await s.file(entry('/src/x'));
      expect(d).toEqual({ skip: false });
    });
    backup.status = 'success';
    expect(await s.stop()).toEqual([]);
    expect(calls).toEqual([
      'a:start', 'b:start', 'body',
      'a:file /src/x', 'b:file /src/x', 'b:file-after', 'a:file-after',
      'b:start-finally', 'a:start-finally',
      'a:stop success', 'b:stop success', 'b:stop-after', 'a:stop-after',
    ]);
  });

  it('file() returns undefined synchronously when no plug-in has onFile', async () => {
    const { rt } = await runtime([['a', { onBackupStart: (c, n) => n(), onBackupStop: (c, n) => n() }]]);
    expect(rt.has('onFile')).toBe(false);
    expect(rt.has('onBackupStart')).toBe(true);
    const { s } = session(rt);
    await s.start(async () => {
      expect(s.file(entry('/a'))).toBeUndefined();
    });
    const empty = session(PluginRuntime.empty()).s;
    expect(empty.file(entry('/a'))).toBeUndefined();
    let ran = false;
    await empty.start(async () => void (ran = true));
    expect(ran).toBe(true);
    expect(await empty.stop()).toEqual([]);
  });

  it('collects skip, replaced content and metadata into the decision', async () => {
    const { rt } = await runtime([
      ['skipper', { onFile: async (ctx, next) => { if (ctx.file.path.endsWith('.tmp')) ctx.skip(); await next(); } }],
      [
        'replacer',
        {
          onFile: async (ctx, next) => {
            if (ctx.file.path.endsWith('.db')) ctx.replaceContent(Buffer.from('dump'));
            ctx.file.metadata = { ...ctx.file.metadata, seenBy: ctx.options.tag };
            await next();
          },
        },
        { tag: 'r' },
      ],
    ]);
    const { s } = session(rt);
    await s.start(async () => {
      expect(await s.file(entry('/a.tmp'))).toEqual({ skip: true, metadata: { seenBy: 'r' } });
      const d = await s.file(entry('/b.db'));
      expect(d?.skip).toBe(false);
      expect(d?.content).toEqual(Buffer.from('dump'));
      expect(d?.metadata).toEqual({ seenBy: 'r' });
      // State is per file: nothing leaks into the next entry.
      const plain = entry('/c.txt');
      plain.metadata = { engine: 1 };
      expect(await s.file(plain)).toEqual({ skip: false, metadata: { engine: 1, seenBy: 'r' } });
    });
  });

  it('gives each plug-in its own options and logger, and reuses context objects across files', async () => {
    const seen: Array<{ name: string; ctx: HookContext; opt: unknown }> = [];
    const mk = (name: string): PluginDefinition => ({
      onFile: async (ctx, next) => {
        seen.push({ name, ctx, opt: ctx.options.n });
        ctx.log.info(`file ${ctx.file.path}`, { token: 'abc' });
        await next();
      },
    });
    const { rt, mem } = await runtime([
      ['one', mk('one'), { n: 1 }],
      ['two', mk('two'), { n: 2 }],
    ]);
    const { s } = session(rt);
    await s.start(async () => {
      await s.file(entry('/x'));
      await s.file(entry('/y'));
    });
    expect(seen.map((x) => `${x.name}=${String(x.opt)}`)).toEqual(['one=1', 'two=2', 'one=1', 'two=2']);
    expect(seen[0]!.ctx).toBe(seen[2]!.ctx);
    expect(seen[0]!.ctx).not.toBe(seen[1]!.ctx);
    expect(mem.lines()).toEqual([
      '[plugin:one] info: file /x token=[redacted]',
      '[plugin:two] info: file /x token=[redacted]',
      '[plugin:one] info: file /y token=[redacted]',
      '[plugin:two] info: file /y token=[redacted]',
    ]);
  });

  it('shares state across hooks and plug-ins; ctx exposes backup, dataDir and signal', async () => {
    const { rt } = await runtime([
      ['w', { onBackupStart: async (ctx, next) => { ctx.state.dumped = true; ctx.backup.tags.push('db'); await next(); } }],
      ['r', { onFile: async (ctx, next) => { ctx.file.metadata = { dumped: ctx.state.dumped, dataDir: ctx.dataDir, hook: ctx.hook }; await next(); } }],
    ]);
    const { s, backup } = session(rt);
    await s.start(async () => {
      expect((await s.file(entry('/a')))?.metadata).toEqual({ dumped: true, dataDir: '/data', hook: 'onFile' });
    });
    expect(backup.tags).toEqual(['db']);
  });

  it('rejects replaceContent on a directory, attributed to the plug-in', async () => {
    const { rt } = await runtime([['r', { onFile: async (ctx, next) => { ctx.replaceContent('x'); await next(); } }]]);
    const { s } = session(rt);
    const err = await rejectionOf<PluginError>(s.file(entry('/dir', 'dir'))!);
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toBe('plug-in "r" failed in onFile: replaceContent: /dir is a dir; only regular files can have their content replaced');
  });

  it('a concurrent file() call rejects; skip() after the hook returned throws', async () => {
    let stash: FileContext | undefined;
    const { rt } = await runtime([['s', { onFile: async (ctx, next) => { stash = ctx; await new Promise((r) => setTimeout(r, 5)); await next(); } }]]);
    const { s } = session(rt);
    const first = s.file(entry('/a'))!;
    await expect(s.file(entry('/b'))!).rejects.toThrow(/call it sequentially/);
    await first;
    expect(() => stash!.skip()).toThrow(/outside of a running onFile hook/);
  });

  it('contexts are read-only: plug-ins keep data in ctx.state', async () => {
    const errors: string[] = [];
    let stash: FileContext | undefined;
    const { rt } = await runtime([
      ['w', {
        onFile: async (ctx, next) => {
          stash = ctx;
          for (const f of [
            () => { (ctx as { file: unknown }).file = null; },
            () => { (ctx as { state: unknown }).state = {}; },
            () => { (ctx as unknown as { mine: number }).mine = 1; },
          ]) {
            try { f(); } catch (e) { errors.push((e as Error).constructor.name); }
          }
          ctx.state.count = ((ctx.state.count as number) ?? 0) + 1;
          await next();
        },
      }],
    ]);
    const { s } = session(rt);
    await s.file(entry('/a'));
    await s.file(entry('/b'));
    expect(errors).toEqual(['TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError']);
    expect(stash!.state.count).toBe(2);
    expect(stash!.file).toBeUndefined();
  });

  it('addFile hands validated virtual files to the engine', async () => {
    const added: unknown[] = [];
    const { rt } = await runtime([
      ['dump', { onBackupStart: async (ctx, next) => { ctx.addFile('mysql/app.sql', 'SQL', { mode: 0o640 }); await next(); } }],
    ]);
    const { s } = session(rt, added);
    await s.start(async () => {});
    expect(added).toEqual([{ path: 'mysql/app.sql', content: 'SQL', options: { mode: 0o640 } }]);

    for (const bad of ['/abs', '../up', 'a/../b', 'a//b', '', 'a\\b', 'dir/', 'x\0y', './a']) {
      const { rt: r2 } = await runtime([['bad', { onBackupStart: async (ctx, next) => { ctx.addFile(bad, 'x'); await next(); } }]]);
      const err = await session(r2).s.start(async () => {}).catch((e: unknown) => e);
      expect(err, JSON.stringify(bad)).toBeInstanceOf(PluginError);
      expect((err as Error).message, bad).toMatch(/^plug-in "bad" failed in onBackupStart: addFile: /);
    }
  });
});

describe('error attribution', () => {
  it('names the plug-in and the hook for each hook', async () => {
    const boom = (h: string) => () => {
      throw new Error(`${h} broke`);
    };
    const { rt } = await runtime([
      ['ok', { onServerStart: (c, n) => n(), onBackupStart: (c, n) => n(), onFile: (c, n) => n(), onBackupStop: (c, n) => n() }],
      ['bad', { onServerStart: boom('server'), onBackupStart: boom('start'), onFile: boom('file'), onBackupStop: boom('stop') }],
    ]);
    const e1 = await rejectionOf<PluginError>(rt.serverStart());
    expect(e1).toBeInstanceOf(PluginError);
    expect([e1.plugin, e1.hook, e1.message]).toEqual(['bad', 'onServerStart', 'plug-in "bad" failed in onServerStart: server broke']);
    expect((e1.cause as Error).message).toBe('server broke');

    const { s } = session(rt);
    const e2 = await rejectionOf<PluginError>(s.start(async () => {}));
    expect(e2.message).toBe('plug-in "bad" failed in onBackupStart: start broke');
    const e3 = await rejectionOf<PluginError>(s.file(entry('/f'))!);
    expect([e3.plugin, e3.hook, e3.message]).toEqual(['bad', 'onFile', 'plug-in "bad" failed in onFile: file broke']);
    const errors = await s.stop();
    expect(errors.map((e) => e.message)).toEqual(['plug-in "bad" failed in onBackupStop: stop broke']);
  });

  it('an error from downstream next() is not re-attributed to the upstream plug-in', async () => {
    const { rt } = await runtime([
      ['outer', { onBackupStart: async (ctx, next) => { await next(); }, onFile: async (ctx, next) => { await next(); } }],
      ['inner', { onFile: async () => { throw new TypeError('inner failed'); } }],
    ]);
    const { s } = session(rt);
    const e = await rejectionOf<PluginError>(s.file(entry('/f'))!);
    expect([e.plugin, e.hook]).toEqual(['inner', 'onFile']);
    expect(e.cause).toBeInstanceOf(TypeError);
    // The backup body's own error passes through every plug-in unchanged.
    const bodyError = new Error('disk full');
    await expect(s.start(async () => { throw bodyError; })).rejects.toBe(bodyError);
  });

  it('a plug-in that catches a downstream error and throws its own is blamed', async () => {
    const { rt } = await runtime([
      ['outer', { onBackupStart: async (ctx, next) => { try { await next(); } catch { throw new Error('cleanup failed'); } } }],
    ]);
    const e = await rejectionOf<PluginError>(session(rt).s.start(async () => { throw new Error('disk full'); }));
    expect(e.message).toBe('plug-in "outer" failed in onBackupStart: cleanup failed');
  });

  it('a non-Error throw is wrapped with a readable message', async () => {
    const { rt } = await runtime([['s', { onFile: () => { throw 'just a string'; } }]]);
    await expect(session(rt).s.file(entry('/f'))!).rejects.toThrow('plug-in "s" failed in onFile: just a string');
  });

  it('calling next() twice is blamed on that plug-in', async () => {
    const { rt } = await runtime([
      ['twice', { onBackupStart: async (ctx, next) => { await next(); await next(); } }],
      ['after', { onBackupStart: (ctx, next) => next() }],
    ]);
    let bodies = 0;
    const e = await rejectionOf<PluginError>(session(rt).s.start(async () => void bodies++));
    expect(e.message).toBe('plug-in "twice" failed in onBackupStart: next() called multiple times');
    expect(bodies).toBe(1);
  });

  it('calling next() twice without awaiting the second is blamed on that plug-in, and nothing is left unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const { rt } = await runtime([['careless', { onBackupStart: async (ctx, next) => { await next(); void next(); } }]]);
      const e = await rejectionOf<PluginError>(session(rt).s.start(async () => undefined));
      expect(e.message).toBe('plug-in "careless" failed in onBackupStart: next() called multiple times');
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('onBackupStart returning without calling next() is an error (the backup would silently not run)', async () => {
    const { rt } = await runtime([['lazy', { onBackupStart: async () => {} }]]);
    let ran = false;
    const e = await rejectionOf<PluginError>(session(rt).s.start(async () => void (ran = true)));
    expect(ran).toBe(false);
    expect(e).toBeInstanceOf(PluginError);
    expect(e.message).toMatch(/plug-in "lazy" failed in onBackupStart: it returned without calling next\(\)/);
  });
});

describe('abort', () => {
  it('ctx.abort() in onBackupStart throws BackupAbortedError unwrapped, aborts the signals and skips the body', async () => {
    const calls: string[] = [];
    const { rt } = await runtime([
      ['outer', { onBackupStart: async (ctx, next) => { try { await next(); } finally { calls.push(`outer sees aborted=${ctx.signal.aborted}`); } } }],
      ['guard', { onBackupStart: async (ctx) => { ctx.abort('database is in recovery'); } }],
    ]);
    const { s, ac } = session(rt);
    const err = await rejectionOf<BackupAbortedError>(s.start(async () => void calls.push('body')));
    expect(err).toBeInstanceOf(BackupAbortedError);
    expect(err.message).toBe('backup aborted by plug-in "guard" in onBackupStart: database is in recovery');
    expect([err.reason, err.plugin, err.hook]).toEqual(['database is in recovery', 'guard', 'onBackupStart']);
    expect(calls).toEqual(['outer sees aborted=true']);
    expect(ac.signal.aborted).toBe(true);
    expect(ac.signal.reason).toBe(err);
    expect(s.signal.aborted).toBe(true);
    expect(s.abortError).toBe(err);
  });

  it('ctx.abort() in onFile rejects file() with the BackupAbortedError, even if a plug-in swallows it the session records it', async () => {
    const { rt } = await runtime([
      ['swallow', { onFile: async (ctx, next) => { try { await next(); } catch { /* ignore */ } } }],
      ['stopper', { onFile: async (ctx) => { ctx.abort('too many files'); } }],
    ]);
    const { s, ac } = session(rt);
    const d = await s.file(entry('/f'));
    expect(d).toEqual({ skip: false });
    expect(s.abortError?.reason).toBe('too many files');
    expect(ac.signal.aborted).toBe(true);

    const { rt: rt2 } = await runtime([['stopper', { onFile: async (ctx) => { ctx.abort('no'); } }]]);
    await expect(session(rt2).s.file(entry('/f'))!).rejects.toBeInstanceOf(BackupAbortedError);
  });

  it('an onBackupStart that aborts and swallows the throw still reports the abort', async () => {
    const { rt } = await runtime([['q', { onBackupStart: async (ctx) => { try { ctx.abort('quiet'); } catch { /* swallowed */ } } }]]);
    const { s } = session(rt);
    const err = await rejectionOf<BackupAbortedError>(s.start(async () => {}));
    expect(err).toBeInstanceOf(BackupAbortedError);
    expect(err).toBe(s.abortError);
  });

  it('the init signal (SIGINT) reaches ctx.signal', async () => {
    const { rt } = await runtime([['w', { onBackupStart: (ctx, next) => next() }]]);
    const ac = new AbortController();
    const s = rt.createBackupSession({ backup: backupInfo(), signal: ac.signal, onAddFile() {} });
    expect(s.signal.aborted).toBe(false);
    ac.abort(new Error('SIGINT'));
    expect(s.signal.aborted).toBe(true);
    expect((s.signal.reason as Error).message).toBe('SIGINT');
  });
});

describe('stop()', () => {
  it('a second next() in onBackupStop is that plug-in error once, awaited or not, and nothing is left unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const { rt } = await runtime([
        ['careless', { onBackupStart: (c, n) => n(), onBackupStop: async (ctx, next) => { await next(); void next(); } }],
        ['strict', { onBackupStart: (c, n) => n(), onBackupStop: async (ctx, next) => { await next(); await next(); } }],
      ]);
      const { s } = session(rt);
      await s.start(async () => undefined);
      const errors = await s.stop();
      expect(errors.map((e) => e.message).sort()).toEqual([
        'plug-in "careless" failed in onBackupStop: next() called multiple times',
        'plug-in "strict" failed in onBackupStop: next() called multiple times',
      ]);
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('runs every onBackupStop even when plug-ins throw, returns and logs the errors', async () => {
    const calls: string[] = [];
    const { rt, mem } = await runtime([
      ['a', { onBackupStop: async (ctx, next) => { calls.push('a'); await next(); calls.push('a-after'); } }],
      ['b', { onBackupStop: async () => { calls.push('b'); throw new Error('restart failed'); } }],
      ['c', { onBackupStop: async (ctx) => { calls.push(`c ${ctx.backup.status} ${ctx.backup.error?.message}`); throw new Error('unlock failed'); } }],
      ['d', { onBackupStop: async () => { calls.push('d (no next)'); } }],
      ['e', { onBackupStop: async (ctx, next) => { calls.push('e'); await next(); } }],
    ]);
    const { s, backup } = session(rt);
    const failure = new Error('disk full');
    await expect(s.start(async () => { throw failure; })).rejects.toBe(failure);
    backup.status = 'failure';
    backup.error = failure;
    const errors = await s.stop();
    expect(calls).toEqual(['a', 'b', 'c failure disk full', 'd (no next)', 'e', 'a-after']);
    expect(errors.map((e) => e.message)).toEqual([
      'plug-in "b" failed in onBackupStop: restart failed',
      'plug-in "c" failed in onBackupStop: unlock failed',
    ]);
    expect(errors.every((e) => e instanceof PluginError)).toBe(true);
    expect(mem.events.filter((e) => e.level === 'error').map((e) => e.message)).toEqual(errors.map((e) => e.message));
    // Idempotent.
    expect(await s.stop()).toEqual(errors);
    expect(calls).toHaveLength(6);
  });

  it('runs after an abort, and addFile there is an error', async () => {
    const { rt } = await runtime([
      ['x', {
        onBackupStart: async (ctx) => { ctx.abort('nope'); },
        onBackupStop: async (ctx, next) => { ctx.state.stopped = ctx.backup.status; ctx.addFile('late.txt', 'x'); await next(); },
      }],
    ]);
    const { s, backup } = session(rt);
    await expect(s.start(async () => {})).rejects.toBeInstanceOf(BackupAbortedError);
    backup.status = 'aborted';
    const errors = await s.stop();
    expect(errors.map((e) => e.message)).toEqual(['plug-in "x" failed in onBackupStop: ctx.addFile() is not available in onBackupStop (the snapshot is already written)']);
  });

  it('start() twice rejects', async () => {
    const { s } = session(PluginRuntime.empty());
    await s.start(async () => {});
    await expect(s.start(async () => {})).rejects.toThrow(/called twice/);
  });
});

describe('serverStart()', () => {
  it('runs the onServerStart chain once, in order, with a server context', async () => {
    const calls: string[] = [];
    const { rt } = await runtime([
      ['a', { onServerStart: async (ctx, next) => { calls.push(`a ${ctx.hook} ${ctx.dataDir} ${String(ctx.options.x)} ${'backup' in ctx}`); await next(); calls.push('a-after'); } }],
      ['b', { onServerStart: async (ctx, next) => { ctx.state.warm = true; calls.push('b'); await next(); } }],
    ]);
    await rt.serverStart();
    await rt.serverStart();
    expect(calls).toEqual(['a onServerStart /data undefined false', 'b', 'a-after']);
  });
});
