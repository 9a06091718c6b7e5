/**
 * The metadata cache from the CLI (issue #12): a remote repository gets a cache under the cache
 * directory (named by the repository id), `--no-cache` keeps none, a local repository none by
 * default; two kiwi processes sharing one cache both work.
 */
import { expect, it, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { describeWithServer, s3ServerAvailable, startS3Server, S3_SERVER_INSTALL_HINT, type S3TestServer } from '@kiwi-backup/test-servers';
import { runKiwi, tempDir, removeDir, makeSampleTree, jsonLines } from './helpers.js';

describeWithServer('the metadata cache of an s3: repository', s3ServerAvailable(), S3_SERVER_INSTALL_HINT, () => {
  let server: S3TestServer;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let src: string;

  beforeAll(async () => {
    server = await startS3Server();
    work = await tempDir('kiwi-cli-cache-');
    src = join(work, 'src');
    await makeSampleTree(src);
    env = {
      KIWI_DATA_DIR: join(work, 'data'),
      KIWI_CACHE_DIR: join(work, 'cache'),
      KIWI_PASSWORD: 'pw',
      KIWI_REPOSITORY: `s3:http://127.0.0.1:${server.port}/${server.bucket}/cached`,
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_PROFILE: '',
      AWS_CONFIG_FILE: join(work, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-aws-credentials'),
    };
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await removeDir(work);
  });

  it('is kept per repository id, is skipped with --no-cache, and serves two processes at once', async () => {
    const init = await runKiwi(['init', '--json'], { env });
    expect(init.code, init.stderr).toBe(0);
    const id = String(jsonLines(init.stdout).find((l) => l.message_type === 'summary')!.repository_id);
    expect((await runKiwi(['backup', src], { env })).code).toBe(0);

    const noCache = await runKiwi(['ls', 'latest', '--no-cache'], { env: { ...env, KIWI_CACHE_DIR: join(work, 'unused-cache') } });
    expect(noCache.code, noCache.stderr).toBe(0);
    await expect(readdir(join(work, 'unused-cache'))).rejects.toThrow();

    const first = await runKiwi(['ls', 'latest'], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(noCache.stdout);
    const dir = join(work, 'cache', id);
    expect((await readdir(join(dir, 'index'))).length).toBeGreaterThan(0);
    expect((await readdir(join(dir, 'snapshots'))).length).toBe(1);
    expect(await readdir(join(work, 'cache'))).toContain('CACHEDIR.TAG');

    const [a, b] = await Promise.all([runKiwi(['ls', 'latest'], { env }), runKiwi(['ls', 'latest'], { env })]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout).toBe(first.stdout);
    expect(b.stdout).toBe(first.stdout);
  });

  it('keeps a key hint (the key file\'s salt and scrypt parameters, nothing secret) for the next command\'s early key derivation', async () => {
    const hints = join(work, 'cache', 'key-hints');
    const [name] = await readdir(hints);
    expect(name).toMatch(/^[0-9a-f]{64}\.json$/);
    const hint = JSON.parse(await readFile(join(hints, name!), 'utf8')) as { kdf: Array<Record<string, unknown>> };
    expect(Object.keys(hint.kdf[0]!).sort()).toEqual(['N', 'kdf', 'p', 'r', 'salt']);
    expect((await stat(join(hints, name!))).mode & 0o777).toBe(0o600);
    // The hint is used (the early derivation) and a wrong one is harmless: right password 0, wrong 12.
    expect((await runKiwi(['snapshots'], { env })).code).toBe(0);
    expect((await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD: 'wrong' } })).code).toBe(12);
    await writeFile(join(hints, name!), JSON.stringify({ version: 1, kdf: [{ kdf: 'scrypt', salt: 'AAAA', N: 1024, r: 8, p: 1 }] }));
    expect((await runKiwi(['snapshots'], { env })).code).toBe(0);
    expect(JSON.parse(await readFile(join(hints, name!), 'utf8'))).toEqual(hint); // put right again
  });
});
