import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, readFile, unlink, writeFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  runBackup,
  restoreSnapshot,
  lookupPath,
  PluginRuntime,
  BackupAbortedError,
  BackupInterruptedError,
  PluginError,
  type PluginDefinition,
  type BackupStatus,
  type ErrorWithBackupResult,
} from '../../src/index.js';
import { FakeRepository } from './helpers/fake-repo.js';
import { memoryRepository } from './helpers/real-repo.js';
import { makeSampleTree, pseudoRandom, removeDir, tempDir } from './helpers/fs-tree.js';

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

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function runtime(...plugins: Array<{ name: string; module: PluginDefinition }>): Promise<PluginRuntime> {
  return PluginRuntime.fromModules(plugins, { logger: quiet });
}

/** A plug-in that records the status and error `onBackupStop` saw. */
function stopRecorder(seen: Array<{ status: BackupStatus; error?: string; snapshotId?: string }>) {
  return {
    name: 'recorder',
    module: {
      onBackupStop: async (ctx, next) => {
        seen.push({ status: ctx.backup.status, error: ctx.backup.error?.message, snapshotId: ctx.backup.snapshotId });
        await next();
      },
    } satisfies PluginDefinition,
  };
}

describe('onFile plug-ins', () => {
  it('skip, replace content and attach metadata', async () => {
    const plugins = await runtime({
      name: 'edit',
      module: {
        onFile: async (ctx, next) => {
          if (ctx.file.path.endsWith('/private.txt')) ctx.skip();
          if (ctx.file.path.endsWith('/dir/sub')) ctx.skip();
          if (ctx.file.path.endsWith('/hello.txt')) ctx.replaceContent(() => Readable.from([Buffer.from('replaced '), Buffer.from('content')]));
          if (ctx.file.path.endsWith('/exec.sh')) ctx.file.metadata = { checked: true, by: 'edit' };
          await next();
        },
      },
    });
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src], plugins });
    expect(res.status).toBe('success');
    const snap = res.snapshot!;
    expect(await lookupPath(repo, snap, join(src, 'private.txt'))).toBeUndefined();
    expect(await lookupPath(repo, snap, join(src, 'dir/sub'))).toBeUndefined();
    expect(await lookupPath(repo, snap, join(src, 'dir/big.bin'))).toBeDefined();
    expect((await lookupPath(repo, snap, join(src, 'exec.sh')))!.metadata).toEqual({ checked: true, by: 'edit' });
    const hello = (await lookupPath(repo, snap, join(src, 'hello.txt')))!;
    expect(hello.size).toBe('replaced content'.length);

    const target = join(work, 'restore');
    const rr = await restoreSnapshot({ repository: repo, snapshot: snap, target });
    expect(rr.errors).toEqual([]);
    expect(await readFile(join(target, src, 'hello.txt'), 'utf8')).toBe('replaced content');
    await expect(stat(join(target, src, 'dir/sub'))).rejects.toThrow(/ENOENT/);
    await repo.close();
  });

  it('a virtual file added by a plug-in is stored at the top of the snapshot and restores', async () => {
    const dump = pseudoRandom(40_000, 11);
    const plugins = await runtime({
      name: 'dumper',
      module: {
        onBackupStart: async (ctx, next) => {
          ctx.addFile('mysql/app.sql', () => Readable.from([dump.subarray(0, 10_000), dump.subarray(10_000)]), { mode: 0o640 });
          ctx.addFile('notes.txt', 'plain text');
          await next();
        },
      },
    });
    const { repo } = await memoryRepository();
    const res = await runBackup({ repository: repo, sources: [src], plugins });
    expect(res.status).toBe('success');
    const node = (await lookupPath(repo, res.snapshot!, '/mysql/app.sql'))!;
    expect(node.size).toBe(dump.length);
    expect(node.mode).toBe(0o640);
    expect((await lookupPath(repo, res.snapshot!, '/mysql'))!.mode).toBe(0o700);
    const target = join(work, 'restore');
    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target, include: ['/mysql'] });
    expect(rr.errors).toEqual([]);
    expect((await readFile(join(target, 'mysql/app.sql'))).equals(dump)).toBe(true);
    // include limited the restore to /mysql
    await expect(stat(join(target, src))).rejects.toThrow(/ENOENT/);
    await repo.close();
  });

  it('a virtual file that clashes with a backed-up path is an error naming it', async () => {
    const top = src.split('/')[1]!;
    const plugins = await runtime({
      name: 'clash',
      module: {
        onBackupStart: async (ctx, next) => {
          ctx.addFile(`${top}/x.sql`, 'x');
          await next();
        },
      },
    });
    const repo = new FakeRepository();
    const err = (await runBackup({ repository: repo, sources: [src], plugins }).catch((e: unknown) => e)) as ErrorWithBackupResult;
    expect(err).toBeInstanceOf(PluginError);
    expect(err.message).toContain(`clashes with the backed-up path '/${top}'`);
    expect(err.backupResult?.status).toBe('failure');
  });
});

describe('onBackupStop always runs, with the status set', () => {
  it('after success (with the snapshot id)', async () => {
    const seen: Array<{ status: BackupStatus; error?: string; snapshotId?: string }> = [];
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src], plugins: await runtime(stopRecorder(seen)) });
    expect(seen).toEqual([{ status: 'success', error: undefined, snapshotId: res.snapshotId }]);
  });

  it('after a failure (a plug-in throws in onFile)', async () => {
    const seen: Array<{ status: BackupStatus; error?: string }> = [];
    const plugins = await runtime(stopRecorder(seen), {
      name: 'thrower',
      module: {
        onFile: async (ctx, next) => {
          if (ctx.file.path.endsWith('big.bin')) throw new Error('boom');
          await next();
        },
      },
    });
    const repo = new FakeRepository();
    const err = await runBackup({ repository: repo, sources: [src], plugins }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect((err as Error).message).toMatch(/plug-in "thrower" failed in onFile: boom/);
    expect(seen).toEqual([{ status: 'failure', error: (err as Error).message, snapshotId: undefined }]);
    expect(repo.snapshots.size).toBe(0);
    expect(repo.locks).toBe(0);
  });

  it('after a failure of the repository', async () => {
    const seen: Array<{ status: BackupStatus; error?: string }> = [];
    const repo = new FakeRepository();
    repo.failSaveBlobAfter = 3;
    const err = await runBackup({ repository: repo, sources: [src], plugins: await runtime(stopRecorder(seen)) }).catch((e: unknown) => e);
    expect((err as Error).message).toContain('storage failed (injected)');
    expect(seen[0]!.status).toBe('failure');
    expect(repo.snapshots.size).toBe(0);
    expect(repo.locks).toBe(0);
  });

  it('after an abort by a plug-in', async () => {
    const seen: Array<{ status: BackupStatus; error?: string }> = [];
    const plugins = await runtime(stopRecorder(seen), {
      name: 'aborter',
      module: {
        onFile: async (ctx, next) => {
          if (ctx.file.path.endsWith('exec.sh')) ctx.abort('database is not ready');
          await next();
        },
      },
    });
    const repo = new FakeRepository();
    const err = (await runBackup({ repository: repo, sources: [src], plugins }).catch((e: unknown) => e)) as ErrorWithBackupResult;
    expect(err).toBeInstanceOf(BackupAbortedError);
    expect(err.backupResult?.status).toBe('aborted');
    expect(seen[0]!.status).toBe('aborted');
    expect(seen[0]!.error).toContain('database is not ready');
    expect(repo.snapshots.size).toBe(0);
  });

  it('after an interrupt (signal): no snapshot, lock released', async () => {
    // Many files so the signal lands mid-walk.
    for (let i = 0; i < 200; i++) await writeFile(join(src, `f${i}.txt`), `file ${i}`);
    const seen: Array<{ status: BackupStatus; error?: string }> = [];
    const ac = new AbortController();
    let files = 0;
    const plugins = await runtime(stopRecorder(seen), {
      name: 'counter',
      module: {
        onFile: async (_ctx, next) => {
          if (++files === 50) ac.abort(new Error('SIGINT'));
          await next();
        },
      },
    });
    const repo = new FakeRepository();
    const err = (await runBackup({ repository: repo, sources: [src], plugins, signal: ac.signal }).catch((e: unknown) => e)) as ErrorWithBackupResult;
    expect(err).toBeInstanceOf(BackupInterruptedError);
    expect(err.backupResult?.status).toBe('interrupted');
    expect(seen[0]!.status).toBe('interrupted');
    expect(files).toBeLessThan(60);
    expect(repo.snapshots.size).toBe(0);
    expect(repo.locks).toBe(0);
  });
});

describe('unreadable and vanishing entries', () => {
  it('an unreadable directory and file make a partial backup naming them', async () => {
    const badDir = join(src, 'dir/sub');
    const walkFs = {
      readdir: async (p: Buffer) => {
        if (p.toString() === badDir) throw Object.assign(new Error(`EACCES: permission denied, scandir '${badDir}'`), { code: 'EACCES' });
        const { readdir } = await import('node:fs/promises');
        return readdir(p, { withFileTypes: true, encoding: 'buffer' });
      },
    };
    // A file that vanishes between the walk's lstat and the read.
    const plugins = await runtime({
      name: 'vanisher',
      module: {
        onFile: async (ctx, next) => {
          if (ctx.file.path.endsWith('/private.txt')) await unlink(ctx.file.path);
          await next();
        },
      },
    });
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src], walkFs, plugins });
    expect(res.status).toBe('partial');
    expect(res.stats.errors).toBe(2);
    const byPath = new Map(res.errors.map((e) => [e.path, e.message]));
    expect(byPath.get(badDir)).toMatch(/readdir.*EACCES/);
    expect(byPath.get(badDir), 'the path is in front of the message, not repeated in it').not.toContain(`'${badDir}'`);
    expect(byPath.get(join(src, 'private.txt'))).toMatch(/vanished/);
    expect(res.snapshot!.partial).toBe(true);
    expect(res.snapshotId).toBeDefined();
    // The rest is there.
    expect(await lookupPath(repo, res.snapshot!, join(src, 'dir/big.bin'))).toBeDefined();
    expect(await lookupPath(repo, res.snapshot!, join(src, 'private.txt'))).toBeUndefined();
  });

  it('a missing source is reported and the others are backed up', async () => {
    const other = join(work, 'other');
    await mkdir(other);
    await writeFile(join(other, 'a.txt'), 'a');
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [other, join(work, 'nope')] });
    expect(res.status).toBe('partial');
    expect(res.errors[0]!.path).toBe(join(work, 'nope'));
    expect(await lookupPath(repo, res.snapshot!, join(other, 'a.txt'))).toBeDefined();
  });

  it('a backup whose sources all fail is a failure, not an empty snapshot', async () => {
    const repo = new FakeRepository();
    const err = (await runBackup({ repository: repo, sources: [join(work, 'nope')] }).catch((e: unknown) => e)) as ErrorWithBackupResult;
    expect(err.message).toMatch(/none of the sources could be read: .*nope.*ENOENT/);
    expect(err.backupResult?.status).toBe('failure');
    expect(repo.snapshots.size).toBe(0);
  });

  it('dry run counts but writes nothing', async () => {
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src], dryRun: true });
    expect(res.status).toBe('success');
    expect(res.snapshotId).toBeUndefined();
    expect(res.stats.blobsNew).toBeGreaterThan(5);
    expect(res.stats.bytesRead).toBeGreaterThan(80_000);
    expect(repo.blobs.size).toBe(0);
    expect(repo.snapshots.size).toBe(0);
  });
});
