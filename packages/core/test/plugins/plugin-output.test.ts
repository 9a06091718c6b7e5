/**
 * What a plug-in hands back to the engine (an entry's `ctx.file.metadata`, `ctx.addFile`'s options,
 * `ctx.backup`) is checked where the plug-in hands it over, and a bad value fails the backup with the
 * plug-in's name. Each of these once gave a "successful" backup whose entries restore refused
 * ("invalid entry … not restored"), whose snapshot no command could read, or a TypeError with a stack
 * after the whole walk; and `ctx.backup.sources.push(dir)` once had `dir` backed up.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  lookupPath,
  PluginError,
  PluginRuntime,
  restoreSnapshot,
  runBackup,
  type HookContext,
  type PluginDefinition,
} from '../../src/index.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { makeSampleTree, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let work: string;
let src: string;
beforeEach(async () => {
  work = await tempDir();
  src = join(work, 'src');
  await makeSampleTree(src);
});
afterEach(async () => {
  await removeDir(work);
});

async function backupWith(name: string, module: PluginDefinition) {
  const plugins = await PluginRuntime.fromModules([{ name, module }], { logger: quiet });
  const { repo } = await memoryRepository();
  const outcome = await runBackup({ repository: repo, sources: [src], plugins }).then(
    (result) => ({ result, error: undefined }),
    (error: unknown) => ({ result: undefined, error }),
  );
  const damaged: string[] = [];
  const snapshots = await repo.listSnapshots({ onError: (file) => void damaged.push(file) });
  return { ...outcome, repo, snapshots, damaged };
}

const circular: Record<string, unknown> = {};
circular.self = circular;

describe('ctx.file.metadata and ctx.addFile options', () => {
  it('metadata that a tree cannot hold fails the backup, naming the plug-in, the hook and the entry', async () => {
    const bad: Array<[string, () => unknown, RegExp]> = [
      ['a string', () => 'text', /must be an object, not a string/],
      ['an array', () => [1, 2], /must be an object, not an array/],
      ['over the size limit', () => ({ big: 'x'.repeat(70 * 1024) }), /bytes as JSON \(limit 65536\)/],
      ['a BigInt', () => ({ n: 1n }), /cannot be stored as JSON/],
      ['a cycle', () => circular, /cannot be stored as JSON/],
      ['NaN', () => ({ n: Number.NaN }), /cannot be stored as JSON/],
    ];
    for (const [what, value, message] of bad) {
      for (const target of ['hello.txt', 'dir']) {
        const { result, error, snapshots } = await backupWith('meta', {
          async onFile(ctx, next) {
            if (ctx.file.path === join(src, target)) ctx.file.metadata = value() as Record<string, unknown>;
            await next();
          },
        });
        expect(result, `${what} on ${target}`).toBeUndefined();
        expect(error, `${what} on ${target}`).toBeInstanceOf(PluginError);
        expect((error as Error).message, `${what} on ${target}`).toMatch(/^plug-in "meta" failed in onFile: ctx\.file\.metadata of /);
        expect((error as Error).message, `${what} on ${target}`).toContain(join(src, target));
        expect((error as Error).message, `${what} on ${target}`).toMatch(message);
        expect(snapshots).toEqual([]);
      }
    }
  });

  it('bad metadata is blamed on the plug-in that set it, before or after next(), not on its neighbours', async () => {
    const calls: string[] = [];
    const plugins = await PluginRuntime.fromModules(
      [
        { name: 'outer', module: { async onFile(ctx, next) { await next(); calls.push('outer after'); ctx.file.metadata = 'late' as never; } } },
        { name: 'inner', module: { async onFile(ctx, next) { calls.push('inner'); await next(); } } },
      ],
      { logger: quiet },
    );
    const { repo } = await memoryRepository();
    const error = await runBackup({ repository: repo, sources: [src], plugins }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^plug-in "outer" failed in onFile: ctx\.file\.metadata of .*must be an object, not a string/);

    const early = await PluginRuntime.fromModules(
      [
        { name: 'outer', module: { async onFile(ctx, next) { ctx.file.metadata = ['early'] as never; await next(); } } },
        { name: 'inner', module: { async onFile(ctx, next) { calls.push('inner reached'); await next(); } } },
      ],
      { logger: quiet },
    );
    calls.length = 0;
    const error2 = await runBackup({ repository: (await memoryRepository()).repo, sources: [src], plugins: early }).catch((e: unknown) => e);
    expect((error2 as Error).message).toMatch(/^plug-in "outer" failed in onFile: ctx\.file\.metadata of .*must be an object, not an array/);
    expect(calls).toEqual([]);
  });

  it('good metadata (and null for none) is stored as set and restores', async () => {
    const { result, repo } = await backupWith('meta', {
      async onFile(ctx, next) {
        if (ctx.file.path.endsWith('/hello.txt')) ctx.file.metadata = { checked: true, at: new Date(0), n: 1 };
        if (ctx.file.path.endsWith('/exec.sh')) ctx.file.metadata = null as never;
        await next();
      },
    });
    expect(result!.status).toBe('success');
    expect((await lookupPath(repo, result!.snapshot!, join(src, 'hello.txt')))!.metadata).toEqual({ at: '1970-01-01T00:00:00.000Z', checked: true, n: 1 });
    expect((await lookupPath(repo, result!.snapshot!, join(src, 'exec.sh')))!.metadata).toBeUndefined();
    const rr = await restoreSnapshot({ repository: repo, snapshot: result!.snapshot!, target: join(work, 'restore') });
    expect(rr.errors).toEqual([]);
  });

  it('addFile options other than an integer mode in 0 to 0o7777 and a valid Date fail in the hook, naming the plug-in', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ mode: '0644' }, /options\.mode must be an integer from 0 to 0o7777/],
      [{ mode: -5 }, /options\.mode must be an integer from 0 to 0o7777/],
      [{ mode: 1.5 }, /options\.mode must be an integer from 0 to 0o7777/],
      [{ mode: 0o10000 }, /options\.mode must be an integer from 0 to 0o7777/],
      [{ mtime: '2024-01-01' }, /options\.mtime must be a valid Date/],
      [{ mtime: 1_700_000_000_000 }, /options\.mtime must be a valid Date/],
      [{ mtime: new Date('not a date') }, /options\.mtime must be a valid Date/],
      ['0644', /options must be an object/],
    ];
    for (const [options, message] of bad) {
      const { result, error, snapshots } = await backupWith('dump', {
        async onBackupStart(ctx, next) {
          ctx.addFile('db.sql', 'SQL', options as never);
          await next();
        },
      });
      expect(result, JSON.stringify(options)).toBeUndefined();
      expect(error, JSON.stringify(options)).toBeInstanceOf(PluginError);
      expect((error as Error).message, JSON.stringify(options)).toMatch(/^plug-in "dump" failed in onBackupStart: addFile: /);
      expect((error as Error).message, JSON.stringify(options)).toMatch(message);
      expect(snapshots).toEqual([]);
    }
  });

  it('valid addFile options are stored, and changing the options object afterwards changes nothing', async () => {
    const options = { mode: 0o640, mtime: new Date('2024-05-01T12:00:00Z') };
    const { result, repo } = await backupWith('dump', {
      async onBackupStart(ctx, next) {
        ctx.addFile('db.sql', 'SQL', options);
        (options as { mode: unknown }).mode = 'changed';
        options.mtime.setTime(Number.NaN);
        await next();
      },
    });
    expect(result!.status).toBe('success');
    const node = (await lookupPath(repo, result!.snapshot!, '/db.sql'))!;
    expect(node.mode).toBe(0o640);
    expect(node.mtimeNs).toBe(`${Date.parse('2024-05-01T12:00:00Z')}000000`);
    const rr = await restoreSnapshot({ repository: repo, snapshot: result!.snapshot!, target: join(work, 'restore') });
    expect(rr.errors).toEqual([]);
    expect(await readFile(join(work, 'restore', 'db.sql'), 'utf8')).toBe('SQL');
  });
});

describe('ctx.backup', () => {
  it('sources, host, stats and status are read-only to plug-ins: changing them fails the backup, naming the plug-in', async () => {
    const other = join(work, 'other');
    await mkdir(other);
    await writeFile(join(other, 'private'), 'not to be backed up');
    const changes: Array<[string, (ctx: HookContext) => void, RegExp]> = [
      ['sources.push', (ctx) => void (ctx.backup.sources as string[]).push(other), /object is not extensible|read only|read-only/],
      ['host', (ctx) => void ((ctx.backup as { host: unknown }).host = 42), /ctx\.backup\.host is read-only/],
      ['status', (ctx) => void ((ctx.backup as { status: unknown }).status = 'success'), /ctx\.backup\.status is read-only/],
      ['stats', (ctx) => void ((ctx.backup.stats as unknown as Record<string, unknown>).filesNew = 'lots'), /ctx\.backup\.stats is read-only/],
      ['metadata', (ctx) => void ((ctx.backup as { metadata: unknown }).metadata = 'x'), /ctx\.backup\.metadata cannot be replaced/],
      ['delete tags', (ctx) => void delete (ctx.backup as { tags?: unknown }).tags, /ctx\.backup\.tags cannot be deleted/],
    ];
    for (const [what, change, message] of changes) {
      const { result, error, snapshots, repo } = await backupWith('meddler', {
        async onBackupStart(ctx, next) {
          change(ctx);
          await next();
        },
      });
      expect(result, what).toBeUndefined();
      expect(error, what).toBeInstanceOf(PluginError);
      expect((error as Error).message, what).toMatch(/^plug-in "meddler" failed in onBackupStart: /);
      expect((error as Error).message, what).toMatch(message);
      expect(snapshots, what).toEqual([]);
      void repo;
    }
  });

  it('tags and metadata that a snapshot cannot hold fail the backup before it runs, naming the plug-in; no unreadable snapshot is written', async () => {
    const bad: Array<[string, (ctx: HookContext) => void, RegExp]> = [
      ['a number tag', (ctx) => void (ctx.backup.tags as unknown[]).push(123), /ctx\.backup\.tags\[0\] must be a string of at most 4096 characters without NUL, not a number/],
      ['a NUL in a tag', (ctx) => void ctx.backup.tags.push('a\0b'), /ctx\.backup\.tags\[0\] must be a string/],
      ['a hole', (ctx) => void (ctx.backup.tags[2] = 'x'), /ctx\.backup\.tags\[0\] must be a string/],
      ['tags set to a string', (ctx) => void ((ctx.backup as { tags: unknown }).tags = 'production'), /ctx\.backup\.tags must be an array of strings, not a string/],
      ['a BigInt in metadata', (ctx) => void (ctx.backup.metadata.meddler = { n: 1n }), /ctx\.backup\.metadata cannot be stored as JSON/],
      ['a cycle in metadata', (ctx) => void (ctx.backup.metadata.meddler = circular), /ctx\.backup\.metadata cannot be stored as JSON/],
    ];
    for (const [what, change, message] of bad) {
      let bodyRan = false;
      const { result, error, snapshots, damaged } = await backupWith('meddler', {
        async onBackupStart(ctx, next) {
          change(ctx);
          await next();
          bodyRan = true;
        },
      });
      expect(result, what).toBeUndefined();
      expect(error, what).toBeInstanceOf(PluginError);
      expect((error as Error).message, what).toMatch(/^plug-in "meddler" failed in onBackupStart: /);
      expect((error as Error).message, what).toMatch(message);
      expect(bodyRan, what).toBe(false);
      expect(snapshots, what).toEqual([]);
      expect(damaged, what).toEqual([]);
    }
  });

  it('a plug-in may add, replace and remove tags and add metadata; the snapshot holds them and reads back', async () => {
    const { result, snapshots, damaged } = await backupWith('tagger', {
      async onBackupStart(ctx, next) {
        ctx.backup.tags.push('db', 'old');
        ctx.backup.tags = ctx.backup.tags.filter((t) => t !== 'old');
        ctx.backup.metadata.tagger = { sources: [...ctx.backup.sources], host: ctx.backup.host };
        await next();
      },
      async onBackupStop(ctx, next) {
        expect(ctx.backup.status).toBe('success');
        expect(ctx.backup.stats.filesNew).toBeGreaterThan(0);
        expect(JSON.parse(JSON.stringify(ctx.backup.stats)).filesNew).toBe(ctx.backup.stats.filesNew);
        await next();
      },
    });
    expect(result!.status).toBe('success');
    expect(result!.stopErrors).toEqual([]);
    expect(damaged).toEqual([]);
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]!.snapshot.tags).toEqual(['db']);
    expect(snapshots[0]!.snapshot.plugins).toEqual({ tagger: { sources: [src], host: result!.snapshot!.hostname } });
  });
});
