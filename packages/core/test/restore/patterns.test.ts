import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { restoreSnapshot, runBackup, type Snapshot } from '../../src/index.js';
import { PatternError, expandPattern, patternProblem } from '../../src/walker/patterns.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { describeTree, makeSampleTree, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
let src: string;
let repo: Awaited<ReturnType<typeof memoryRepository>>['repo'];
let snapshot: Snapshot;
beforeEach(async () => {
  work = await tempDir();
  src = join(work, 'src');
  await makeSampleTree(src);
  await mkdir(join(src, 'a/b/bash'), { recursive: true });
  await writeFile(join(src, 'a/b/bash/inside'), 'in a directory named bash');
  await writeFile(join(src, 'a/bash'), 'a file named bash');
  await writeFile(join(src, 'bash'), 'top-level bash');
  await writeFile(join(src, 'a/bashrc'), 'not bash');
  repo = (await memoryRepository()).repo;
  snapshot = (await runBackup({ repository: repo, sources: [src] })).snapshot!;
});
afterEach(async () => {
  await repo.close();
  await removeDir(work);
});

const restore = (target: string, extra: Partial<Parameters<typeof restoreSnapshot>[0]>) => restoreSnapshot({ repository: repo, snapshot, target, ...extra });
/** Relative paths of the files restored under the source. */
async function files(target: string): Promise<string[]> {
  const t = await describeTree(join(target, src));
  return [...t].filter(([, v]) => v.type !== 'dir').map(([k]) => k.slice(1)).sort();
}

describe('pattern checks', () => {
  it('refuses an unclosed "[" and a lone trailing "\\"; accepts classes, escapes and a leading "]"', () => {
    for (const ok of ['*.jpg', '[abc]', '[!a]', '[^a]', '[]a]', '[!]a]', 'a\\[b', '\\\\', 'x]y', '/home/*/notes.txt', 'a[b\\]c]']) expect(patternProblem(ok), ok).toBeUndefined();
    for (const bad of ['[', 'a[b', '[!', '[]', 'x\\', 'a[b\\]']) expect(patternProblem(bad), bad).toBeDefined();
    expect(() => expandPattern('a[b', ['/x'])).toThrow(PatternError);
  });
});

describe('restore patterns', () => {
  it('a plain name matches at any depth (files and directories, with all below)', async () => {
    const t = join(work, 't');
    const rr = await restore(t, { include: ['bash'] });
    expect(rr.errors).toEqual([]);
    expect(rr.unmatchedPatterns).toEqual([]);
    expect(await files(t)).toEqual(['a/b/bash/inside', 'a/bash', 'bash']);
  });

  it('a pattern that matches nothing is reported (with its option); the others still restore', async () => {
    const t = join(work, 't');
    const rr = await restore(t, { include: ['bash', 'no-such-name', '/no/such/path'], exclude: ['*.nothing'], iinclude: ['NOTHING'] });
    expect(rr.unmatchedPatterns).toEqual([
      { option: 'include', pattern: 'no-such-name' },
      { option: 'include', pattern: '/no/such/path' },
      { option: 'iinclude', pattern: 'NOTHING' },
      { option: 'exclude', pattern: '*.nothing' },
    ]);
    expect(await files(t)).toEqual(['a/b/bash/inside', 'a/bash', 'bash']);
  });

  it('case: include is exact, iinclude and iexclude ignore case', async () => {
    const t1 = join(work, 't1');
    const r1 = await restore(t1, { include: ['HELLO.TXT'] });
    expect(r1.unmatchedPatterns.map((u) => u.pattern)).toEqual(['HELLO.TXT']);
    const t2 = join(work, 't2');
    const r2 = await restore(t2, { iinclude: ['HELLO.TXT', 'Dir/Sub'], iexclude: ['*.BIN'] });
    expect(r2.unmatchedPatterns).toEqual([]);
    expect(await files(t2)).toEqual(['hello.txt']);
  });

  it('a pattern with a slash is anchored at the backed-up path; absolute paths work; ! re-includes', async () => {
    const t = join(work, 't');
    const rr = await restore(t, { include: ['dir/sub', `${src}/exec.sh`, '*.txt', '!private.txt'] });
    expect(rr.unmatchedPatterns).toEqual([]);
    expect((await files(t)).filter((f) => !f.startsWith('caf'))).toEqual(['dir/sub/deeper/dup1.bin', 'dir/sub/deeper/dup2.bin', 'dir/sub/small.bin', 'empty.txt', 'exec.sh', 'hello.txt']);
  });

  it('the same excludes select the same files at backup and at restore', async () => {
    for (const exclude of [['*.bin'], ['dir/sub'], ['/dir/big.bin', 'deeper/'], ['bash', '!a/bash'], [`${src}/a`]]) {
      const r = await runBackup({ repository: repo, sources: [src], exclude });
      expect(r.errors).toEqual([]);
      const fromBackup = join(work, `b-${exclude.join('+').replace(/\W/g, '_')}`);
      await restore(fromBackup, { snapshot: r.snapshot! });
      const fromRestore = join(work, `r-${exclude.join('+').replace(/\W/g, '_')}`);
      const rr = await restore(fromRestore, { exclude });
      expect(rr.errors).toEqual([]);
      expect(await files(fromRestore), exclude.join(' ')).toEqual(await files(fromBackup));
    }
  });

  it('expands patterns: names anywhere, slashes below each source and the root, absolute paths as they are', () => {
    expect(expandPattern('bash', ['/home/me'])).toEqual(['bash']);
    expect(expandPattern('docs/*.txt', ['/home/me', '/srv'])).toEqual(['/docs/*.txt', '/home/me/docs/*.txt', '/srv/docs/*.txt']);
    expect(expandPattern('/home/me/docs', ['/home/me'])).toEqual(['/home/me/docs']);
    expect(expandPattern('/build/', ['/home/me'])).toEqual(['/build/', '/home/me/build/']);
    expect(expandPattern('!keep/', ['/a[1]'])).toEqual(['!keep/']);
    expect(expandPattern('!x/y', ['/a[1]'])).toEqual(['!/x/y', '!/a\\[1\\]/x/y']);
    expect(expandPattern('# comment', ['/a'])).toEqual([]);
  });
});
