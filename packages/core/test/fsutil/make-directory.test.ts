import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { stat, symlink, writeFile } from 'node:fs/promises';
import { makeDirectory, makeDirectorySync } from '../../src/index.js';
import { removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

describe.each([
  ['makeDirectory', (p: string, mode?: number) => makeDirectory(p, mode === undefined ? {} : { mode })],
  ['makeDirectorySync', async (p: string, mode?: number) => makeDirectorySync(p, mode === undefined ? {} : { mode })],
])('%s', (_name, make) => {
  it('creates missing ancestors, says whether it created the directory, accepts a symlink to one', async () => {
    const deep = join(work, 'a', 'b', 'c');
    expect(await make(deep, 0o750)).toEqual({ created: true });
    expect((await stat(deep)).mode & 0o777).toBe(0o750 & ~process.umask());
    expect(await make(deep)).toEqual({ created: false });
    await symlink(deep, join(work, 'link'));
    expect(await make(join(work, 'link'))).toEqual({ created: false });
  });

  it('a file in the way is ENOTDIR, named', async () => {
    await writeFile(join(work, 'f'), 'x');
    await expect(make(join(work, 'f'))).rejects.toMatchObject({ code: 'ENOTDIR', path: join(work, 'f'), syscall: 'mkdir' });
    await expect(make(join(work, 'f', 'below'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  it.runIf(process.platform === 'linux')('ends with a clear error where mkdir keeps saying ENOENT (/proc/self/x: Node\'s recursive mkdir spins forever there)', async () => {
    for (const p of ['/proc/self/x', '/proc/self/x/y/z']) {
      const err = (await make(p).then(
        () => undefined,
        (e: unknown) => e,
      )) as NodeJS.ErrnoException;
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe('ENOENT');
      expect(err.message).toMatch(/^cannot create directory \/proc\/self\/x: the file system refuses it/);
    }
  });
});
