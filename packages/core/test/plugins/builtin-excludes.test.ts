import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fakeFileEntry, runBackupWithPlugins } from '../../src/testing/index.js';
import { Readable } from 'node:stream';
import {
  builtinExcludes,
  CACHEDIR_SIGNATURE,
  listTree,
  lookupPath,
  parseByteSize,
  PluginRuntime,
  readContentInOrder,
  runBackup,
  type PluginModule,
} from '../../src/index.js';
import type { Repository } from '../../src/repository/repository.js';
import type { Snapshot } from '../../src/repository/types.js';
import { memoryRepository } from '../backup/helpers/real-repo.js';
import { pseudoRandom, removeDir, tempDir } from '../backup/helpers/fs-tree.js';

let work: string;
beforeEach(async () => {
  work = await tempDir();
});
afterEach(async () => {
  await removeDir(work);
});

async function put(root: string, rel: string, data: Buffer | string): Promise<void> {
  await mkdir(join(root, rel, '..'), { recursive: true });
  await writeFile(join(root, rel), data);
}

async function paths(repo: Repository, snapshot: Snapshot, src: string): Promise<string[]> {
  const out: string[] = [];
  for await (const { path } of listTree(repo, snapshot, src)) if (path !== src) out.push(path.slice(src.length + 1));
  return out;
}

describe('built-in exclude middleware (onFile)', () => {
  it('--exclude-caches, --exclude-if-present, --exclude-larger-than and --iexclude, with a plug-in after them that never sees what they skip', async () => {
    const src = join(work, 'src');
    await put(src, 'cache/CACHEDIR.TAG', `${CACHEDIR_SIGNATURE}\n# a cache\n`);
    await put(src, 'cache/blob', 'cached');
    await put(src, 'cache/sub/deep', 'cached too');
    await put(src, 'fake-cache/CACHEDIR.TAG', 'Signature: not the right one');
    await put(src, 'fake-cache/data', 'kept');
    await put(src, 'project/.nobackup', '');
    await put(src, 'project/build/out.o', 'x');
    await put(src, 'marked/.tag-with-header', 'KEEP-OUT and more');
    await put(src, 'marked/file', 'x');
    await put(src, 'wrong-header/.tag-with-header', 'something else');
    await put(src, 'wrong-header/file', 'kept');
    await put(src, 'big.bin', pseudoRandom(20_000, 3));
    await put(src, 'small.bin', pseudoRandom(100, 4));
    await put(src, 'Photos/Thumbs.DB', 'thumbs');
    await put(src, 'Photos/THUMBS.db.keep', 'kept: the pattern is exact');
    await put(src, 'TMP/x', 'excluded directory');
    const seen: string[] = [];
    const spy: PluginModule = {
      onFile(ctx, next) {
        seen.push(ctx.file.path.slice(src.length + 1));
        return next();
      },
    };
    const base = await PluginRuntime.fromModules([{ name: 'spy', module: spy }]);
    const plugins = await base.withBuiltins(
      builtinExcludes({
        excludeCaches: true,
        excludeIfPresent: ['.nobackup', '.tag-with-header:KEEP-OUT'],
        excludeLargerThan: parseByteSize('10K'),
        iexclude: ['thumbs.db', 'tmp/'],
      }),
    );
    expect(plugins.plugins.map((p) => [p.name, p.source])).toEqual([
      ['exclude-larger-than', 'builtin'],
      ['iexclude', 'builtin'],
      ['exclude-if-present', 'builtin'],
      ['spy', 'config'],
    ]);
    const { repo } = await memoryRepository();
    const r = await runBackup({ repository: repo, sources: [src], parent: null, plugins });
    const stored = await paths(repo, r.snapshot!, src);
    expect(stored).toEqual([
      'Photos',
      'Photos/THUMBS.db.keep',
      'cache',
      'cache/CACHEDIR.TAG',
      'fake-cache',
      'fake-cache/CACHEDIR.TAG',
      'fake-cache/data',
      'marked',
      'marked/.tag-with-header',
      'project',
      'project/.nobackup',
      'small.bin',
      'wrong-header',
      'wrong-header/.tag-with-header',
      'wrong-header/file',
    ]);
    // The plug-in after the built-ins saw exactly what was stored (and the source itself).
    expect(seen.filter((p) => p !== '')).toEqual(stored);
  });

  it('without exclude options nothing is registered: the runtime is the same one, with no onFile chain', async () => {
    const base = PluginRuntime.empty();
    expect(builtinExcludes({ excludeIfPresent: [], iexclude: [] })).toEqual([]);
    const rt = await base.withBuiltins(builtinExcludes({}));
    expect(rt).toBe(base);
    expect(rt.has('onFile')).toBe(false);
  });

  it('sizes and markers are parsed strictly', () => {
    expect(parseByteSize('1048576')).toBe(1048576);
    expect(parseByteSize('512K')).toBe(512 * 1024);
    expect(parseByteSize('1.5G')).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize('10MiB')).toBe(10 * 1024 ** 2);
    expect(() => parseByteSize('ten megs')).toThrow(/not a size/);
    expect(() => builtinExcludes({ excludeIfPresent: ['a/b'] })).toThrow(/file name/);
  });
});

describe('runBackup({ files }) (kiwi backup --stdin)', () => {
  it('stores a stream as one file, with no sources; the snapshot paths name it', async () => {
    const { repo } = await memoryRepository();
    const data = pseudoRandom(50_000, 9);
    const r = await runBackup({ repository: repo, sources: [], files: [{ path: 'db/dump.sql', content: () => Readable.from([data.subarray(0, 1000), data.subarray(1000)]) }], parent: null });
    expect(r.status).toBe('success');
    expect(r.snapshot!.paths).toEqual(['/db/dump.sql']);
    const node = (await lookupPath(repo, r.snapshot!, '/db/dump.sql'))!;
    const parts: Buffer[] = [];
    for await (const p of readContentInOrder(repo, [{ tag: 0, content: node.content! }])) if (p.data) parts.push(p.data);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(node.size).toBe(data.length);
  });

  it('a stream that fails fails the backup, and no snapshot is written', async () => {
    const { repo, storage } = await memoryRepository();
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.from('partial output');
      throw new Error('command "pg_dump" failed with exit code 3');
    }
    await expect(runBackup({ repository: repo, sources: [], files: [{ path: 'stdin', content: () => failing() }], parent: null })).rejects.toMatchObject({
      message: 'stdin: command "pg_dump" failed with exit code 3',
      backupResult: { status: 'failure' },
    });
    let snapshots = 0;
    for await (const _ of storage.list('snapshot')) snapshots++;
    expect(snapshots).toBe(0);
  });
});

describe('docs/writing-plugins.md, "onFile middleware"', () => {
  it('the skip-large example runs as written: large files are skipped, the rest passed on', async () => {
    const docs = await readFile(join(dirname(fileURLToPath(import.meta.url)), '../../../../docs/writing-plugins.md'), 'utf8');
    const m = /<!-- example:skip-large -->\n```js\n([\s\S]*?)\n```/.exec(docs);
    expect(m, 'the skip-large example block').not.toBeNull();
    expect(m![1]).toMatch(/^export default function skipLarge\(/m);
    const code = `${m![1]!.replace('export default function skipLarge', 'function skipLarge')}\nreturn skipLarge;`;
    const skipLarge = new Function(code)() as PluginModule;
    const r = await runBackupWithPlugins([{ name: 'skip-large', module: skipLarge, options: { maxBytes: 1000 } }], {
      files: [fakeFileEntry('/data/small', 'file', { size: 1000 }), fakeFileEntry('/data/big', 'file', { size: 1001 }), fakeFileEntry('/data/dir', 'dir', { size: 4096 })],
    });
    expect(r.status).toBe('success');
    expect(r.fileDecisions.map((d) => d.skip)).toEqual([false, true, false]);
    expect(() => (skipLarge as (o: Record<string, unknown>) => unknown)({ maxBytes: 'lots' })).toThrow(/maxBytes/);
  });
});
