/**
 * The early key derivation (src/key-prefetch.ts): begun before the modules load, used by
 * Repository.open only for the exact key file and password, and never in the way.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository, WrongPasswordError } from '@kiwi-backup/core';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { keyHintPath, prefetchKeys, writeKeyHint } from '../src/key-prefetch.js';
import { removeDir, runKiwi, tempDir } from './helpers.js';

const REGISTRY = Symbol.for('kiwi.prederivedKeys');
const registry = () => (globalThis as Record<symbol, unknown>)[REGISTRY] as Array<{ password: Buffer }> | undefined;

describe('key prefetch', () => {
  let work: string;
  let repoPath: string;
  beforeAll(async () => {
    work = await tempDir('kiwi-prefetch-');
    repoPath = join(work, 'repo');
    const repo = await Repository.init(createLocalStorage(repoPath), 'right', { kdf: { N: 1024, r: 8, p: 1 } });
    await repo.close();
  });
  afterAll(() => removeDir(work));

  it('derives the key of a local repository early; Repository.open uses it and clears the rest', async () => {
    prefetchKeys(['snapshots', '--repo', repoPath], { KIWI_PASSWORD: 'right' });
    const list = registry()!;
    expect(list).toHaveLength(1);
    const pw = list[0]!.password;
    const repo = await Repository.open(createLocalStorage(repoPath), 'right');
    await repo.close();
    expect(registry()).toHaveLength(0); // taken
    expect(pw.every((b) => b === 0)).toBe(true); // its copy of the password zeroed
  });

  it('a derivation for another password is not used: the wrong password is still refused, and nothing is left', async () => {
    prefetchKeys(['ls', 'latest', '-r', repoPath], { KIWI_PASSWORD: 'right' });
    expect(registry()).toHaveLength(1);
    await expect(Repository.open(createLocalStorage(repoPath), 'wrong')).rejects.toBeInstanceOf(WrongPasswordError);
    expect(registry()).toHaveLength(0);
    // And the other way round: a prefetch with the wrong password does not stop the right one.
    prefetchKeys(['ls', 'latest', `--repo=${repoPath}`], { KIWI_PASSWORD: 'wrong' });
    const repo = await Repository.open(createLocalStorage(repoPath), 'right');
    await repo.close();
    expect(registry()).toHaveLength(0);
  });

  it('reads the password file as the ordinary path does (first line); does nothing for URLs, other commands or no password', async () => {
    const pwFile = join(work, 'pw.txt');
    await writeFile(pwFile, 'right\nsecond line\n', { mode: 0o600 });
    prefetchKeys(['check', '--password-file', pwFile, '--repo', repoPath], {});
    expect(registry()).toHaveLength(1);
    const repo = await Repository.open(createLocalStorage(repoPath), 'right');
    await repo.close();
    expect(registry()).toHaveLength(0);
    for (const [argv, env] of [
      [['snapshots', '--repo', `s3:http://127.0.0.1:1/b`], { KIWI_PASSWORD: 'right' }],
      [['init', '--repo', repoPath], { KIWI_PASSWORD: 'right' }],
      [['snapshots', '--help', '--repo', repoPath], { KIWI_PASSWORD: 'right' }],
      [['snapshots', '--repo', repoPath], {}],
      [['snapshots'], { KIWI_PASSWORD: 'right' }],
      [['snapshots', '--repo', join(work, 'nothing-here')], { KIWI_PASSWORD: 'right' }],
    ] as Array<[string[], NodeJS.ProcessEnv]>) {
      prefetchKeys(argv, env);
      expect(registry() ?? [], argv.join(' ')).toHaveLength(0);
    }
  });

  it('a remote repository: derives from the key hint its last open left in the cache; none with --no-cache, without a hint, or for a URL with a password', async () => {
    const cacheDir = join(work, 'cache');
    const url = 's3:http://127.0.0.1:1/bucket/repo';
    const opened = await Repository.open(createLocalStorage(repoPath), 'right');
    writeKeyHint(cacheDir, url, opened.keyKdf!);
    await opened.close();
    const hint = await readFile(keyHintPath(cacheDir, url), 'utf8');
    expect(hint).not.toContain('right');
    prefetchKeys(['snapshots', '--repo', url], { KIWI_PASSWORD: 'right', KIWI_CACHE_DIR: cacheDir });
    expect(registry()).toHaveLength(1);
    // (The hint's salt is this local repository's: its open takes the derivation.)
    const repo = await Repository.open(createLocalStorage(repoPath), 'right');
    await repo.close();
    expect(registry()).toHaveLength(0);
    // (Also a password holding "/" or "@", and the scp-like and s3:https:// forms: the name of a hint is a
    // hash of the URL, password and all.)
    for (const withPassword of ['sftp://user:secret@127.0.0.1:1/repo', 'sftp://user:pa/ssw0rd@host/path', 'sftp://backup:Tr0ub@dor/x@nas/srv', 'sftp:me:pw@host:/srv', 's3:https://AK:SE@CRET@host/b']) {
      writeKeyHint(cacheDir, withPassword, { salt: 'AAAA', N: 1024, r: 8, p: 1 });
      await expect(readFile(keyHintPath(cacheDir, withPassword)), withPassword).rejects.toThrow();
    }
    writeKeyHint(cacheDir, 'sftp:me@host:/srv', { salt: 'AAAA', N: 1024, r: 8, p: 1 });
    await expect(readFile(keyHintPath(cacheDir, 'sftp:me@host:/srv'), 'utf8')).resolves.toContain('AAAA');
    for (const [argv, env] of [
      [['snapshots', '--repo', url, '--no-cache'], { KIWI_PASSWORD: 'right', KIWI_CACHE_DIR: cacheDir }],
      [['snapshots', '--repo', url], { KIWI_PASSWORD: 'right', KIWI_CACHE_DIR: join(work, 'no-cache-here') }],
      [['snapshots', '--repo', 's3:http://127.0.0.1:1/bucket/other'], { KIWI_PASSWORD: 'right', KIWI_CACHE_DIR: cacheDir }],
    ] as Array<[string[], NodeJS.ProcessEnv]>) {
      prefetchKeys(argv, env);
      expect(registry() ?? [], argv.join(' ')).toHaveLength(0);
    }
  });

  it('leaves hostile key files alone (huge scrypt parameters, garbage) and the CLI still reports them', async () => {
    const bad = join(work, 'bad');
    await mkdir(join(bad, 'keys'), { recursive: true });
    await writeFile(join(bad, 'config'), 'x');
    await writeFile(join(bad, 'keys', 'a'.repeat(64)), JSON.stringify({ kdf: 'scrypt', N: 2 ** 24, r: 64, p: 64, salt: 'AAAA' }));
    await writeFile(join(bad, 'keys', 'b'.repeat(64)), '{ not json');
    prefetchKeys(['snapshots', '--repo', bad], { KIWI_PASSWORD: 'right' });
    expect(registry() ?? []).toHaveLength(0);
    const r = await runKiwi(['snapshots', '--repo', bad], { env: { KIWI_PASSWORD: 'right', KIWI_DATA_DIR: join(work, 'data') } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('the CLI opens the repository with the early derivation: right password 0, wrong password 12', async () => {
    const env = { KIWI_REPOSITORY: repoPath, KIWI_DATA_DIR: join(work, 'data') };
    expect((await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD: 'right' } })).code).toBe(0);
    expect((await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD: 'wrong' } })).code).toBe(12);
  });
});
