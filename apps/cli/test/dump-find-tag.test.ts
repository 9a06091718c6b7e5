/**
 * `kiwi dump` (a file to stdout, a directory as tar), `kiwi find` and `kiwi tag` on a local repository.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { lstat, link, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import tar from 'tar-stream';
import { Repository } from '@kiwi-backup/core';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { kiwiToFile, runKiwi, tempDir, removeDir, makeSampleTree, jsonLines, snapshotList } from './helpers.js';

const isRoot = process.getuid?.() === 0;


/** Every header of a tar file, in order. */
async function tarHeaders(file: string): Promise<tar.Headers[]> {
  const extract = tar.extract();
  const headers: tar.Headers[] = [];
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      headers.push(header);
      stream.on('end', next);
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  createReadStream(file).pipe(extract);
  await done;
  return headers;
}

interface Info {
  type: string;
  mode?: number;
  mtimeS?: number;
  content?: string;
  link?: string;
}

/** Type, permission bits, whole-second mtime, content and link target of every entry (UTF-8 names only). */
async function describe_(root: string): Promise<Map<string, Info>> {
  const out = new Map<string, Info>();
  async function visit(dir: string, rel: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      if (name.includes('\ufffd')) continue; // a name that was not UTF-8 (tar holds it with U+FFFD)
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p, { bigint: true });
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      const info: Info = { type, mtimeS: Number(st.mtimeNs / 1_000_000_000n) };
      if (type !== 'symlink') info.mode = Number(st.mode & 0o7777n);
      if (type === 'file') info.content = (await readFile(p)).toString('base64');
      if (type === 'symlink') {
        info.link = await readlink(p);
        delete info.mtimeS; // GNU tar does not set symlink times by default
      }
      out.set(r, info);
      if (type === 'dir') await visit(p, r);
    }
  }
  await visit(root, '');
  return out;
}

describe('kiwi dump, find and tag', () => {
  let work: string;
  let src: string;
  let env: NodeJS.ProcessEnv;
  const longDir = `${'long-directory-name-'.repeat(6)}end`;

  beforeAll(async () => {
    work = await tempDir();
    src = join(work, 'src');
    await makeSampleTree(src);
    // PAX cases: a path over 100 bytes, a symlink target over 100 bytes; and a hard link.
    await mkdir(join(src, 'docs', longDir), { recursive: true });
    await writeFile(join(src, 'docs', longDir, `${'f'.repeat(90)}.txt`), 'long name');
    await symlink(`../${longDir}/${'f'.repeat(90)}.txt`, join(src, 'docs', 'deep', 'long-link'));
    await link(join(src, 'docs', 'a.txt'), join(src, 'docs', 'hardlink-to-a.txt'));
    await utimes(join(src, 'docs', 'deep'), new Date('2019-01-01T00:00:00Z'), new Date('2019-06-01T12:00:00Z'));
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    const b = await runKiwi(['backup', src, '--tag', 'first'], { env });
    expect(b.code, b.stderr).toBe(0);
  });
  afterAll(() => removeDir(work));

  it('dump of a file writes exactly its bytes', async () => {
    const out = join(work, 'big.out');
    const r = await kiwiToFile(['dump', 'latest', `${src}/docs/deep/er/big.bin`], out, env);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(await readFile(join(src, 'docs', 'deep', 'er', 'big.bin')))).toBe(true);
    const empty = join(work, 'empty.out');
    expect((await kiwiToFile(['dump', 'latest', `${src}/empty.txt`], empty, env)).code).toBe(0);
    expect((await readFile(empty)).length).toBe(0);
  });

  it('dump of a directory is a tar that GNU tar extracts with the same contents, modes, mtimes and symlinks', async () => {
    const file = join(work, 'docs.tar');
    const r = await kiwiToFile(['dump', 'latest', `${src}/docs`], file, env);
    expect(r.code, r.stderr).toBe(0);
    const dest = join(work, 'extracted');
    await mkdir(dest);
    execFileSync('tar', ['-xpf', file, '-C', dest]);
    const got = await describe_(join(dest, 'docs'));
    const want = await describe_(join(src, 'docs'));
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [k, v] of want) expect(got.get(k), k).toEqual(v);
    // The hard link comes back as a hard link.
    const a = await lstat(join(dest, 'docs', 'a.txt'));
    expect((await lstat(join(dest, 'docs', 'hardlink-to-a.txt'))).ino).toBe(a.ino);
  });

  it('tar headers: names from the dumped directory, owner names, PAX for long names and link targets, a hard link entry', async () => {
    const file = join(work, 'docs2.tar');
    expect((await kiwiToFile(['dump', 'latest', `${src}/docs`], file, env)).code).toBe(0);
    const headers = await tarHeaders(file);
    const byName = new Map(headers.map((h) => [h.name.replace(/\/$/, ''), h]));
    const st = await lstat(join(src, 'docs', 'deep', 'er', 'big.bin'));
    const big = byName.get('docs/deep/er/big.bin')!;
    expect(big).toMatchObject({ type: 'file', size: st.size, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
    expect(big.mtime!.getTime()).toBe(Math.floor(st.mtimeMs / 1000) * 1000);
    if (isRoot) expect([big.uname, big.gname]).toEqual(['root', 'root']);
    expect(byName.get(`docs/${longDir}/${'f'.repeat(90)}.txt`)).toMatchObject({ type: 'file', size: 9 });
    expect(byName.get('docs/deep/long-link')).toMatchObject({ type: 'symlink', linkname: `../${longDir}/${'f'.repeat(90)}.txt` });
    const hard = [byName.get('docs/a.txt')!, byName.get('docs/hardlink-to-a.txt')!].sort((x, y) => (x.type === 'link' ? 1 : 0) - (y.type === 'link' ? 1 : 0));
    expect(hard[0]!.type).toBe('file');
    expect(hard[1]).toMatchObject({ type: 'link', size: 0, linkname: hard[0]!.name });
    expect([headers[0]!.name.replace(/\/$/, ''), headers[0]!.type]).toEqual(['docs', 'directory']);
    expect(byName.get('docs/deep')!.mtime!.toISOString()).toBe('2019-06-01T12:00:00.000Z');
  });

  it('dump errors: a path not in the snapshot (1), --archive zip (2), --json (2) — none with a stack trace', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['dump', 'latest', '/no/such/file'], 1, /\/no\/such\/file is not in snapshot [0-9a-f]{8}/],
      [['dump', 'latest', `${src}/docs`, '--archive', 'zip'], 2, /unknown --archive "zip"/],
      [['dump', 'latest', `${src}/docs/a.txt`, '--json'], 2, /--json does not apply/],
    ];
    for (const [args, code, message] of cases) {
      const r = await runKiwi(args, { env });
      expect(r.code, args.join(' ')).toBe(code);
      expect(args.includes('--json') ? String(jsonLines(r.stdout)[0]!.message) : r.stderr).toMatch(message);
      expect(r.stderr + r.stdout).not.toMatch(/\n\s+at /);
    }
  });

  it('find: a plain name at any depth in every snapshot, grouped by snapshot, with --json; --snapshot, --oldest/--newest, --host', async () => {
    await writeFile(join(src, 'docs', 'deep', 'er', 'a.txt'), 'a second a.txt, deeper');
    const b = await runKiwi(['backup', src], { env });
    expect(b.code, b.stderr).toBe(0);
    const second = b.stdout.trim();
    const list = snapshotList((await runKiwi(['snapshots', '--json'], { env })).stdout);
    const first = list[0]!.id;

    const human = await runKiwi(['find', 'a.txt'], { env });
    expect(human.code, human.stderr).toBe(0);
    const blocks = human.stdout.trim().split('\n\n');
    expect(blocks).toHaveLength(2);
    expect(blocks[0]!.split('\n')[0]).toMatch(new RegExp(`^Found matching entries in snapshot ${first.slice(0, 8)} from \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`));
    expect(blocks[0]!.split('\n').slice(1)).toEqual([expect.stringMatching(new RegExp(`^-rw-r--r-- .* 2021-03-03 \\d\\d:03:03 ${src}/docs/a.txt$`))]);
    expect(blocks[1]!.split('\n').slice(1).map((l) => l.split(' ').at(-1))).toEqual([`${src}/docs/a.txt`, `${src}/docs/deep/er/a.txt`]);

    const json = await runKiwi(['find', 'a.txt', '--json'], { env });
    const lines = jsonLines(json.stdout);
    expect(lines.filter((l) => l.message_type === 'match').map((l) => [l.snapshot_id, l.path, l.size])).toEqual([
      [first, `${src}/docs/a.txt`, 11],
      [second, `${src}/docs/a.txt`, 11],
      [second, `${src}/docs/deep/er/a.txt`, 22],
    ]);
    const summary = lines.find((l) => l.message_type === 'summary')!;
    expect(summary).toMatchObject({ snapshots: 2, snapshots_with_matches: 2, matches: 3 });
    // The second snapshot reuses every directory that did not change (all but the path to docs/deep/er).
    expect(Number(summary.trees_reused)).toBeGreaterThan(0);

    const onlyLatest = jsonLines((await runKiwi(['find', 'a.txt', '--snapshot', 'latest', '--json'], { env })).stdout);
    expect(new Set(onlyLatest.filter((l) => l.message_type === 'match').map((l) => l.snapshot_id))).toEqual(new Set([second]));
    const old = jsonLines((await runKiwi(['find', 'a.txt', '--newest', '2022-01-01', '--json'], { env })).stdout);
    expect(old.filter((l) => l.message_type === 'match').map((l) => l.path)).toEqual([`${src}/docs/a.txt`, `${src}/docs/a.txt`]);
    const nothing = await runKiwi(['find', 'a.txt', '--host', 'no-such-host'], { env });
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toBe('');
    expect(nothing.stderr).toMatch(/no matches in 0 snapshots/);
    const badTime = await runKiwi(['find', 'a.txt', '--oldest', 'yesterday'], { env });
    expect(badTime.code).toBe(2);
  });

  it('tag --add/--remove/--set rewrites only the snapshot file, keeps the original id, and takes an exclusive lock', async () => {
    const repoDir = env.KIWI_REPOSITORY!;
    const files = async (sub: string) => (await readdir(join(repoDir, sub), { recursive: true })).sort();
    const before = { data: await files('data'), index: await files('index') };
    const [oldest] = snapshotList((await runKiwi(['snapshots', '--json'], { env })).stdout);

    const add = await runKiwi(['tag', oldest!.id.slice(0, 8), '--add', 'keep,monthly'], { env });
    expect(add.code, add.stderr).toBe(0);
    const newId = add.stdout.trim();
    let list = snapshotList((await runKiwi(['snapshots', '--json'], { env })).stdout);
    expect(list.map((s) => s.id)).not.toContain(oldest!.id);
    const tagged = list.find((s) => s.id === newId)!;
    expect(tagged).toMatchObject({ tags: ['first', 'keep', 'monthly'], original: oldest!.id, tree: oldest!.tree, time: oldest!.time, paths: oldest!.paths });

    const remove = await runKiwi(['tag', newId.slice(0, 8), '--remove', 'first', '--json'], { env });
    expect(remove.code, remove.stderr).toBe(0);
    const changed = jsonLines(remove.stdout).find((l) => l.message_type === 'changed')!;
    expect(changed).toMatchObject({ old_id: newId, original: oldest!.id, tags: ['keep', 'monthly'] });
    const set = await runKiwi(['tag', String(changed.new_id), 'latest', '--set', 'x'], { env });
    expect(set.code, set.stderr).toBe(0);
    list = snapshotList((await runKiwi(['snapshots', '--json'], { env })).stdout);
    expect(list.map((s) => s.tags)).toEqual([['x'], ['x']]);
    expect(list[0]!.original).toBe(oldest!.id);
    const again = await runKiwi(['tag', 'latest', '--set', 'x', '--json'], { env });
    expect(jsonLines(again.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ changed: 0, unchanged: 1 });
    // Only snapshot files changed.
    expect({ data: await files('data'), index: await files('index') }).toEqual(before);
    expect((await runKiwi(['check'], { env })).code).toBe(0);

    expect((await runKiwi(['tag', 'latest', '--set', 'a', '--add', 'b'], { env })).code).toBe(2);
    expect((await runKiwi(['tag', 'latest'], { env })).code).toBe(2);
    const repo = await Repository.open(createLocalStorage(repoDir), 'pw');
    const lock = await repo.lock('shared');
    try {
      const locked = await runKiwi(['tag', 'latest', '--add', 'y'], { env });
      expect(locked.code).toBe(11);
    } finally {
      await lock.release();
      await repo.close();
    }
  });
});
