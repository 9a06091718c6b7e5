import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { appendFileSync, mkdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { lstat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { runBackup, restoreSnapshot, lookupPath, PluginRuntime, type PluginDefinition } from '../../src/index.js';
import { FakeRepository } from './helpers/fake-repo.js';
import { memoryRepository } from './helpers/real-repo.js';
import { pseudoRandom, removeDir, tempDir } from './helpers/fs-tree.js';
import { nativeFs } from '../../src/native/native-fs.js';

let work: string;
let src: string;
beforeEach(async () => {
  work = await tempDir();
  src = join(work, 'src');
  mkdirSync(src);
});
afterEach(async () => {
  await removeDir(work);
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe('files that change under the backup', () => {
  it('a file that grows while it is read is stored as read, with a warning', async () => {
    const file = join(src, 'growing.log');
    const original = pseudoRandom(100_000, 4);
    await writeFile(file, original);
    const repo = new FakeRepository();
    let appended = false;
    // Append to the file while it is being read: right after its first chunk is handed to the repository.
    const saveBlob = repo.saveBlob.bind(repo);
    repo.saveBlob = async (type, data, id) => {
      if (type === 'data' && !appended) {
        appended = true;
        appendFileSync(file, 'more lines\n');
      }
      return saveBlob(type, data, id);
    };
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(appended).toBe(true);
    expect(res.status).toBe('success');
    expect(res.warnings).toEqual([{ path: file, message: expect.stringMatching(/changed while it was read/) }]);
    const node = (await lookupPath(repo, res.snapshot!, file))!;
    expect(node.size).toBe(original.length);
    const target = join(work, 'restore');
    await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target });
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(join(target, file))).equals(original)).toBe(true);
  });

  it('a file replaced by a directory or a symlink after the walk saw it is an error for that file', async () => {
    await writeFile(join(src, 'a-becomes-dir'), 'x');
    await writeFile(join(src, 'b-becomes-link'), 'y');
    await writeFile(join(src, 'c-stays'), 'z');
    const plugins = await PluginRuntime.fromModules(
      [
        {
          name: 'swapper',
          module: {
            onFile: async (ctx, next) => {
              if (ctx.file.path.endsWith('a-becomes-dir')) {
                unlinkSync(ctx.file.path);
                mkdirSync(ctx.file.path);
              }
              if (ctx.file.path.endsWith('b-becomes-link')) {
                unlinkSync(ctx.file.path);
                symlinkSync('/etc/passwd', ctx.file.path);
              }
              await next();
            },
          } satisfies PluginDefinition,
        },
      ],
      { logger: quiet },
    );
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src], plugins });
    expect(res.status).toBe('partial');
    const byPath = new Map(res.errors.map((e) => [e.path, e.message]));
    expect(byPath.get(join(src, 'a-becomes-dir'))).toMatch(/no longer a regular file/);
    expect(byPath.get(join(src, 'b-becomes-link'))).toMatch(/replaced by a symlink/);
    expect(await lookupPath(repo, res.snapshot!, join(src, 'c-stays'))).toBeDefined();
    // /etc/passwd was never read through the planted link.
    expect(res.stats.bytesRead).toBe(1);
  });

  it.each([0, 2])('a file swapped for a FIFO after the walk saw it is an error for that file, and the backup does not hang (%i saver threads)', { timeout: 20_000 }, async (workers) => {
    await writeFile(join(src, 'becomes-fifo'), 'x');
    await writeFile(join(src, 'stays'), 'z');
    const plugins = await PluginRuntime.fromModules(
      [
        {
          name: 'swapper',
          module: {
            onFile: async (ctx, next) => {
              if (ctx.file.path.endsWith('becomes-fifo')) {
                unlinkSync(ctx.file.path);
                execFileSync('mkfifo', [ctx.file.path]);
              }
              await next();
            },
          } satisfies PluginDefinition,
        },
      ],
      { logger: quiet },
    );
    // A real repository: the saver threads need one (a fake one reads every file on this thread).
    const { repo } = await memoryRepository();
    // (An open without O_NONBLOCK would wait for a writer for ever.)
    const res = await runBackup({ repository: repo, sources: [src], plugins, workers });
    expect(res.status).toBe('partial');
    expect(res.errors).toEqual([{ path: join(src, 'becomes-fifo'), message: expect.stringMatching(/no longer a regular file/) }]);
    expect(await lookupPath(repo, res.snapshot!, join(src, 'stays'))).toBeDefined();
  });

  it('a FIFO is recorded, never opened (the backup does not hang), and made again on restore', async () => {
    const fifo = join(src, 'pipe');
    execFileSync('mkfifo', [fifo]);
    await writeFile(join(src, 'file'), 'data');
    const repo = new FakeRepository();
    const res = await runBackup({ repository: repo, sources: [src] });
    expect(res.status).toBe('success');
    const node = (await lookupPath(repo, res.snapshot!, fifo))!;
    expect(node.type).toBe('fifo');
    expect(node.content).toBeUndefined();
    const rr = await restoreSnapshot({ repository: repo, snapshot: res.snapshot!, target: join(work, 'restore') });
    expect(rr.errors).toEqual([]);
    expect(rr.filesRestored).toBe(1);
    if (nativeFs()) {
      expect(rr.skipped).toEqual([]);
      expect((await lstat(join(work, 'restore', fifo))).isFIFO()).toBe(true);
    } else {
      // Without @kiwi-backup/native-fs (no mkfifo in Node): reported, not dropped.
      expect(rr.skipped).toEqual([{ path: fifo, message: expect.stringMatching(/FIFO not restored/) }]);
    }
  });
});
