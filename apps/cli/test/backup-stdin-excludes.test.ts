/**
 * `kiwi backup --stdin`, `--stdin-from-command`, and the restic-style excludes
 * (--exclude-caches, --exclude-if-present, --exclude-larger-than, --iexclude); `ls -l`;
 * `snapshots --json` as one array.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { KIWI_BIN, runKiwi, tempDir, removeDir, jsonLines, snapshotList, bytes, type RunResult } from './helpers.js';

/** Run kiwi with `input` on its stdin. */
function kiwiWithStdin(args: string[], input: Buffer, env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KIWI_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** `kiwi dump` output as bytes. */
function dumpBytes(args: string[], env: NodeJS.ProcessEnv): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KIWI_BIN, 'dump', ...args], { env: { ...process.env, ...env } });
    const parts: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => parts.push(d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(parts)) : reject(new Error(`dump exited ${code}`))));
  });
}

describe('backup --stdin and --stdin-from-command', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    work = await tempDir();
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
  });
  afterAll(() => removeDir(work));
  const snapshotFiles = async () => (await readdir(join(work, 'repo', 'snapshots'))).length;

  it('--stdin stores what it reads as one file named by --stdin-filename; dump gives it back', async () => {
    const data = bytes(3 * 1024 * 1024 + 5, 77);
    const r = await kiwiWithStdin(['backup', '--stdin', '--stdin-filename', 'db/app.sql', '--tag', 'db'], data, env);
    expect(r.code, r.stderr).toBe(0);
    const [snap] = snapshotList((await runKiwi(['snapshots', '--json'], { env })).stdout);
    expect(snap).toMatchObject({ paths: ['/db/app.sql'], tags: ['db'], hostname: hostname() });
    expect((await dumpBytes(['latest', '/db/app.sql'], env)).equals(data)).toBe(true);
  });

  it('--stdin-from-command stores the command output; the default name is "stdin"', async () => {
    const r = await runKiwi(['backup', '--stdin-from-command', 'printf "one\\ntwo\\n"; echo "a warning" >&2'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('a warning');
    expect((await dumpBytes(['latest', '/stdin'], env)).toString()).toBe('one\ntwo\n');
  });

  it("the command does not get Kiwi's own secrets (its stderr is shown and logged), but keeps the AWS credentials", async () => {
    const withSecrets = { ...env, KIWI_SFTP_PASSWORD: 'sftp-secret', AWS_SECRET_ACCESS_KEY: 'aws-for-the-command' };
    const r = await runKiwi(['backup', '--stdin-from-command', 'echo "[$KIWI_PASSWORD][$KIWI_SFTP_PASSWORD][$AWS_SECRET_ACCESS_KEY]"', '--stdin-filename', 'env.txt'], { env: withSecrets });
    expect(r.code, r.stderr).toBe(0);
    expect((await dumpBytes(['latest', '/env.txt'], env)).toString()).toBe('[][][aws-for-the-command]\n');
  });

  it('a failing command fails the backup: exit 1, its exit code and stderr tail in the message, and no snapshot', async () => {
    const before = await snapshotFiles();
    const r = await runKiwi(['backup', '--stdin-from-command', 'echo partial output; echo "pg_dump: connection refused" >&2; exit 3', '--stdin-filename', 'db.sql'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/db\.sql: command .* failed with exit code 3; its stderr ends with:\npg_dump: connection refused/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await snapshotFiles()).toBe(before);

    const j = await runKiwi(['backup', '--stdin-from-command', 'exit 7', '--json'], { env });
    expect(j.code).toBe(1);
    expect(String(jsonLines(j.stdout).find((l) => l.message_type === 'error' && l.severity === 'fatal')!.message)).toMatch(/exit code 7/);
    expect(await snapshotFiles()).toBe(before);
  });

  it('usage errors: paths with --stdin, both stdin options, --stdin-filename alone, a bad name', async () => {
    for (const args of [
      ['backup', '--stdin', work],
      ['backup', '--stdin', '--stdin-from-command', 'true'],
      ['backup', work, '--stdin-filename', 'x'],
      ['backup', '--stdin-from-command', 'true', '--stdin-filename', '../x'],
    ]) {
      const r = await runKiwi(args, { env });
      expect(r.code, args.join(' ')).toBe(2);
    }
  });
});

describe('backup excludes, ls -l, snapshots --json', () => {
  let work: string;
  let src: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    work = await tempDir();
    src = join(work, 'src');
    const put = async (rel: string, data: string | Buffer) => {
      await mkdir(join(src, rel, '..'), { recursive: true });
      await writeFile(join(src, rel), data);
    };
    await put('.cache/CACHEDIR.TAG', 'Signature: 8a477f597d28d172789f06886806bc55\n');
    await put('.cache/thumbnails/1.png', 'x');
    await put('not-a-cache/CACHEDIR.TAG', 'just a file with that name');
    await put('not-a-cache/kept.txt', 'kept');
    await put('build/.nobackup', '');
    await put('build/out.o', 'object');
    await put('video.mkv', bytes(300 * 1024, 1));
    await put('notes.txt', 'notes');
    await put('Desktop.INI', 'windows');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
  });
  afterAll(() => removeDir(work));

  const stored = async () => (await runKiwi(['ls', 'latest', src], { env })).stdout.trim().split('\n').map((p) => p.slice(src.length + 1)).filter(Boolean);

  it('without the options everything is stored', async () => {
    expect((await runKiwi(['backup', src], { env })).code).toBe(0);
    expect(await stored()).toEqual([
      '.cache', '.cache/CACHEDIR.TAG', '.cache/thumbnails', '.cache/thumbnails/1.png', 'Desktop.INI', 'build', 'build/.nobackup', 'build/out.o',
      'not-a-cache', 'not-a-cache/CACHEDIR.TAG', 'not-a-cache/kept.txt', 'notes.txt', 'video.mkv',
    ]);
  });

  it('--exclude-caches, --exclude-if-present, --exclude-larger-than, --iexclude leave out what restic would', async () => {
    const r = await runKiwi(['backup', src, '--exclude-caches', '--exclude-if-present', '.nobackup', '--exclude-larger-than', '100K', '--iexclude', 'desktop.ini'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await stored()).toEqual(['.cache', '.cache/CACHEDIR.TAG', 'build', 'build/.nobackup', 'not-a-cache', 'not-a-cache/CACHEDIR.TAG', 'not-a-cache/kept.txt', 'notes.txt']);
  });

  it('the same from the config file; a bad size is a usage error naming the option', async () => {
    const config = join(work, 'config.json');
    await writeFile(config, JSON.stringify({ backup: { excludeCaches: true, excludeIfPresent: ['.nobackup'], excludeLargerThan: '100K', iexclude: ['DESKTOP.ini'] } }));
    const r = await runKiwi(['backup', src, '--config', config], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await stored()).toEqual(['.cache', '.cache/CACHEDIR.TAG', 'build', 'build/.nobackup', 'not-a-cache', 'not-a-cache/CACHEDIR.TAG', 'not-a-cache/kept.txt', 'notes.txt']);
    const bad = await runKiwi(['backup', src, '--exclude-larger-than', 'lots'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--exclude-larger-than: "lots" is not a size/);
    const missing = join(work, 'no-such-excludes.txt');
    const noFile = await runKiwi(['backup', src, '--exclude-file', missing], { env });
    expect(noFile.code, noFile.stderr).toBe(2);
    expect(noFile.stderr).toContain(`cannot read the exclude file ${missing}: no such file`);
    // Patterns that cannot match what they say (gitignore would silently match nothing) are refused up front.
    const bracket = await runKiwi(['backup', src, '--exclude', 'build[0-9'], { env });
    expect(bracket.code, bracket.stderr).toBe(2);
    expect(bracket.stderr).toContain('--exclude "build[0-9": the "[" at character 6 opens a character class that is never closed');
    const file = join(work, 'bad-excludes.txt');
    await writeFile(file, '# comment\n*.tmp\n\ncache[\n');
    const inFile = await runKiwi(['backup', src, '--exclude-file', file], { env });
    expect(inFile.code, inFile.stderr).toBe(2);
    expect(inFile.stderr).toContain(`exclude file ${file}, line 4: "cache["`);
    const find = await runKiwi(['find', '['], { env });
    expect(find.code, find.stderr).toBe(2);
    expect(find.stderr).toContain('pattern "[": the "[" at character 1');
    const restore = await runKiwi(['restore', 'latest', '--target', join(work, 'r'), '--include', 'x\\'], { env });
    expect(restore.code, restore.stderr).toBe(2);
    expect(restore.stderr).toContain('--include "x\\\\": it ends with a lone');
  });

  it('ls -l: mode, owner, group, size and local modification time; -l --human-readable', async () => {
    await utimes(join(src, 'notes.txt'), new Date(2020, 4, 17, 8, 9, 10), new Date(2020, 4, 17, 8, 9, 10));
    expect((await runKiwi(['backup', src], { env })).code).toBe(0);
    const l = await runKiwi(['ls', '-l', 'latest', `${src}/notes.txt`], { env });
    expect(l.code, l.stderr).toBe(0);
    const user = process.getuid?.() === 0 ? 'root' : '\\S+';
    expect(l.stdout.trim()).toMatch(new RegExp(`^-rw-r--r-- ${user}\\s+\\S+\\s+5 2020-05-17 08:09:10 ${src}/notes.txt$`));
    const h = await runKiwi(['ls', '-l', '--human-readable', 'latest', `${src}/video.mkv`], { env });
    expect(h.stdout).toMatch(/ 300 KiB \d{4}-/);
    const d = await runKiwi(['ls', '-l', 'latest', `${src}/build`], { env });
    expect(d.stdout.split('\n')[0]).toMatch(/^drwx/);
  });

  it('snapshots --json is one array with restic\'s field names; --json-lines keeps the lines', async () => {
    const r = await runKiwi(['snapshots', '--json'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const list = snapshotList(r.stdout);
    expect(list.length).toBe(4);
    const s = list.at(-1)!;
    expect(Object.keys(s)).toEqual(expect.arrayContaining(['id', 'short_id', 'time', 'hostname', 'username', 'paths', 'tags', 'tree', 'parent', 'program_version', 'summary']));
    expect(s.short_id).toBe(s.id.slice(0, 8));
    expect(s.parent).toBe(list.at(-2)!.id);
    expect(s.summary).toMatchObject({ files_new: expect.any(Number), total_files_processed: expect.any(Number), total_bytes_processed: expect.any(Number), backup_start: expect.any(String), backup_end: expect.any(String), data_added: expect.any(Number) });
    const lines = jsonLines((await runKiwi(['snapshots', '--json-lines'], { env })).stdout);
    expect(lines.filter((l) => l.message_type === 'snapshot').map((l) => l.id)).toEqual(list.map((x) => x.id));
    expect(lines.at(-1)).toMatchObject({ message_type: 'summary', snapshots: 4 });
  });
});
