/**
 * The real `kiwi` CLI on an S3-compatible server (s3rver, started by @kiwi-backup/test-servers):
 * every command on an `s3:http://host:port/bucket/prefix` repository, a wrong secret, the server
 * stopped in the middle of a backup, and connections cut by a TCP proxy.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { execFileSync, spawn } from 'node:child_process';
import {
  describeWithServer,
  s3ServerAvailable,
  startS3Server,
  startTcpProxy,
  S3_SERVER_INSTALL_HINT,
  type S3TestServer,
} from '@kiwi-backup/test-servers';
import { KIWI_BIN, runKiwi, tempDir, removeDir, makeSampleTree, expectSameTree, jsonLines, healAfter, sleep, type RunResult, snapshotList } from './helpers.js';

const MiB = 1024 * 1024;

describeWithServer('an S3-compatible server (s3rver)', s3ServerAvailable(), S3_SERVER_INSTALL_HINT, () => {
  let server: S3TestServer;
  let work: string;
  let src: string;
  let config: string;
  /** Environment of every kiwi run: credentials as the AWS SDK reads them, never on the command line. */
  let env: NodeJS.ProcessEnv;

  /** A repository URL on the server (or on `port`, e.g. a proxy in front of it). */
  const repoUrl = (prefix: string, port = server.port) => `s3:http://127.0.0.1:${port}/${server.bucket}/${prefix}`;
  const kiwi = (repo: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    runKiwi([...args, '--repo', repo, '--config', config], { env: { ...env, ...extraEnv } });

  beforeAll(async () => {
    server = await startS3Server();
    work = await tempDir('kiwi-cli-s3-');
    src = join(work, 'src');
    await makeSampleTree(src);
    // Packs above 1 MiB upload as multipart (in 512 KiB parts), so the 3 MiB file goes through it.
    config = join(work, 'config.json');
    await writeFile(config, JSON.stringify({ storageOptions: { s3: { multipartThreshold: 1 * MiB, partSize: 512 * 1024 } } }));
    env = {
      KIWI_DATA_DIR: join(work, 'data'),
      KIWI_PASSWORD: 'correct horse',
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: 'us-east-1',
      // Nothing from the developer's own AWS setup.
      AWS_PROFILE: '',
      AWS_SESSION_TOKEN: '',
      AWS_CONFIG_FILE: join(work, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-aws-credentials'),
    };
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await removeDir(work);
  });

  describe('every command on an s3: repository', () => {
    let repo: string;
    beforeAll(() => {
      repo = repoUrl('laptop/main');
    });

    it('init, backup, restore: contents, modes, mtimes and symlinks round-trip exactly', async () => {
      const init = await kiwi(repo, ['init']);
      expect(init.code, init.stderr).toBe(0);
      expect(init.stdout).toContain(`at s3:${server.endpoint}/${server.bucket}/laptop/main`);

      const b = await kiwi(repo, ['backup', src, '--tag', 's3', '--json']);
      expect(b.code, b.stderr).toBe(0);
      const summary = jsonLines(b.stdout).find((l) => l.message_type === 'summary')!;
      expect(summary.status).toBe('success');
      expect(summary.files_new).toBeGreaterThan(5);

      // The repository really is in the bucket, under the prefix.
      const keys = await listObjects(server, 'laptop/main');
      expect(keys).toContain('config');
      expect(keys.filter((k) => k.startsWith('data/')).length).toBeGreaterThanOrEqual(1);
      expect(keys.filter((k) => k.startsWith('snapshots/')).length).toBe(1);

      const target = join(work, 'restore-main');
      const r = await kiwi(repo, ['restore', 'latest', '--target', target]);
      expect(r.code, r.stderr).toBe(0);
      await expectSameTree(join(target, src), src);
    });

    it('snapshots, ls and check --read-data work', async () => {
      const snaps = await kiwi(repo, ['snapshots', '--json']);
      expect(snaps.code, snaps.stderr).toBe(0);
      const list = snapshotList(snaps.stdout);
      expect(list.length).toBe(1);
      expect(list[0]!.tags).toEqual(['s3']);

      const ls = await kiwi(repo, ['ls', 'latest']);
      expect(ls.code, ls.stderr).toBe(0);
      expect(ls.stdout).toContain(`${src}/docs/deep/er/big.bin`);
      expect(ls.stdout).toContain(`${src}/link-to-a`);

      const check = await kiwi(repo, ['check', '--read-data']);
      expect(check.code, check.stderr).toBe(0);
      expect(check.stderr + check.stdout).toMatch(/no errors were found/);
    });

    it('dump (a file and a tar), find and tag work on S3', async () => {
      const bytesOf = (args: string[]) =>
        new Promise<{ code: number | null; out: Buffer; stderr: string }>((resolve, reject) => {
          const child = spawn(process.execPath, [KIWI_BIN, ...args, '--repo', repo, '--config', config], { env: { ...process.env, ...env } });
          const parts: Buffer[] = [];
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => parts.push(d));
          child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
          child.on('error', reject);
          child.on('close', (code) => resolve({ code, out: Buffer.concat(parts), stderr }));
        });
      const big = await bytesOf(['dump', 'latest', `${src}/docs/deep/er/big.bin`]);
      expect(big.code, big.stderr).toBe(0);
      expect(big.out.equals(await readFile(join(src, 'docs', 'deep', 'er', 'big.bin')))).toBe(true);
      const tarball = await bytesOf(['dump', 'latest', `${src}/docs`]);
      expect(tarball.code, tarball.stderr).toBe(0);
      const tarFile = join(work, 's3-docs.tar');
      await writeFile(tarFile, tarball.out);
      const dest = join(work, 's3-docs');
      await mkdir(dest);
      execFileSync('tar', ['-xf', tarFile, '-C', dest]);
      expect((await readFile(join(dest, 'docs', 'deep', 'er', 'big.bin'))).equals(big.out)).toBe(true);

      const find = await kiwi(repo, ['find', 'big.bin', '--json']);
      expect(find.code, find.stderr).toBe(0);
      expect(jsonLines(find.stdout).filter((l) => l.message_type === 'match').map((l) => l.path)).toEqual([`${src}/docs/deep/er/big.bin`]);

      const tag = await kiwi(repo, ['tag', 'latest', '--add', 'tagged-on-s3']);
      expect(tag.code, tag.stderr).toBe(0);
      const list = snapshotList((await kiwi(repo, ['snapshots', '--json'])).stdout);
      expect(list.map((x) => x.tags)).toEqual([['s3', 'tagged-on-s3']]);
      expect((await listObjects(server, 'laptop/main')).filter((k) => k.startsWith('snapshots/'))).toEqual([`snapshots/${tag.stdout.trim()}`]);
    });

    it('a wrong secret: a clear error naming endpoint and bucket, exit code 1, and no secret in the output', async () => {
      const wrongSecret = `wrong-${randomBytes(18).toString('base64url')}`;
      const bad = { AWS_SECRET_ACCESS_KEY: wrongSecret };
      const results: RunResult[] = [];
      for (const args of [['snapshots'], ['snapshots', '--json'], ['backup', src], ['backup', src, '--json'], ['init']]) {
        const r = await kiwi(repoUrl('laptop/other'), args, bad);
        results.push(r);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
        const text = r.stdout + r.stderr;
        expect(text).not.toContain(wrongSecret);
        expect(text).not.toContain(server.secretAccessKey);
        expect(text, 'no stack trace').not.toMatch(/\n\s+at /);
        if (args.includes('--json')) {
          expect(r.stderr).toBe('');
          const err = jsonLines(r.stdout).find((l) => l.message_type === 'error')!;
          expect(err.message).toMatch(/access denied/i);
          expect(err.message).toContain(server.endpoint);
          expect(err.message).toContain(`"${server.bucket}"`);
        } else {
          expect(r.stderr).toMatch(/^kiwi: S3 access denied for bucket "kiwi-test" at http:\/\/127\.0\.0\.1:\d+ .*secret access key/m);
        }
      }
      // And on the existing repository too (every operation is refused, nothing is changed).
      const r = await kiwi(repo, ['check'], bad);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/S3 access denied/);
      expect(r.stdout + r.stderr).not.toContain(wrongSecret);
      expect(results.length).toBe(5);
    });
  });

  describe('faults', () => {
    it('the server stops in the middle of a backup: the backup fails cleanly; after a restart check is clean and the next backup completes', async () => {
      const prefix = 'faults/halt';
      const repo = repoUrl(prefix);
      const init = await kiwi(repo, ['init']);
      expect(init.code, init.stderr).toBe(0);
      const first = await kiwi(repo, ['backup', src]);
      expect(first.code, first.stderr).toBe(0);

      // Enough incompressible data for several 16 MiB packs: the server is killed as soon as the first lands.
      const big = join(work, 'big');
      await mkdir(big, { recursive: true });
      for (let i = 0; i < 4; i++) await writeFile(join(big, `blob-${i}.bin`), randomBytes(16 * MiB));
      const packsBefore = (await listObjectFiles(server, `${prefix}/data`)).length;

      let halted = false;
      const halting = (async () => {
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          if ((await listObjectFiles(server, `${prefix}/data`)).length > packsBefore) {
            await server.halt();
            halted = true;
            return;
          }
          await sleep(10);
        }
      })();
      const started = Date.now();
      const b = await kiwi(repo, ['backup', big, src]);
      await halting;
      expect(halted, 'the server was halted during the backup').toBe(true);
      expect(b.code, b.stderr).toBe(1);
      expect(b.stderr).toMatch(/retry \d+ in \d+ ms/); // the retry layer tried
      expect(b.stderr).toMatch(/^kiwi: .*after \d+ attempts/m); // and said when it gave up
      expect(b.stderr).toContain(`127.0.0.1:${server.port}`);
      expect(b.stderr).not.toMatch(/\n\s+at /);
      expect(b.stdout).not.toMatch(/^[0-9a-f]{64}$/m); // no snapshot id printed
      expect(Date.now() - started).toBeLessThan(60_000);

      await server.restart();
      const snaps = await kiwi(repo, ['snapshots', '--json']);
      expect(snaps.code, snaps.stderr).toBe(0);
      expect(snapshotList(snaps.stdout).length).toBe(1);

      const check = await kiwi(repo, ['check', '--read-data', '--json']);
      expect(check.code, check.stdout + check.stderr).toBe(0);
      expect(jsonLines(check.stdout).find((l) => l.message_type === 'summary')!.errors).toBe(0);

      const again = await kiwi(repo, ['backup', big, src]);
      expect(again.code, again.stderr).toBe(0);
      const target = join(work, 'restore-halt');
      const r = await kiwi(repo, ['restore', 'latest', '--target', target]);
      expect(r.code, r.stderr).toBe(0);
      await expectSameTree(join(target, big), big);
      await expectSameTree(join(target, src), src);
      const after = await kiwi(repo, ['check']);
      expect(after.code, after.stderr).toBe(0);
      await removeDir(big);
    });

    it('connections cut after N bytes by a proxy: the retry layer recovers, the backup restores exactly and check is clean', async () => {
      const proxy = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: server.port });
      try {
        const repo = repoUrl('faults/proxy', proxy.port);
        const init = await kiwi(repo, ['init']);
        expect(init.code, init.stderr).toBe(0);

        // Every connection dies after 256 KiB (requests and responses counted) until 3 were cut.
        proxy.setCutAfter(256 * 1024);
        const b = await healAfter(proxy, 3, () => kiwi(repo, ['backup', src]));
        expect(proxy.cuts).toBeGreaterThanOrEqual(3);
        expect(b.code, b.stderr).toBe(0);
        expect(b.stderr).toMatch(/retry 1 in \d+ ms/);

        // Reads are cut too: restore through the proxy while it cuts, then check.
        const cutsBefore = proxy.cuts;
        proxy.setCutAfter(256 * 1024);
        const target = join(work, 'restore-proxy');
        const r = await healAfter(proxy, cutsBefore + 2, () => kiwi(repo, ['restore', 'latest', '--target', target]));
        expect(r.code, r.stderr).toBe(0);
        expect(proxy.cuts).toBeGreaterThan(cutsBefore);
        await expectSameTree(join(target, src), src);

        const check = await kiwi(repo, ['check', '--read-data']);
        expect(check.code, check.stderr).toBe(0);
      } finally {
        await proxy.stop();
      }
    });
  });
});


/** The object files s3rver stores under `<bucket>/<keyPrefix>` (one `…._S3rver_object` file per object). */
async function listObjectFiles(server: S3TestServer, keyPrefix: string): Promise<string[]> {
  const dir = join(server.directory, server.bucket, keyPrefix);
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((e) => e.isFile() && e.name.endsWith('._S3rver_object')).map((e) => join(e.parentPath, e.name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Keys under a prefix, relative to it, as stored by the server. */
async function listObjects(server: S3TestServer, keyPrefix: string): Promise<string[]> {
  const base = join(server.directory, server.bucket, keyPrefix) + '/';
  return (await listObjectFiles(server, keyPrefix)).map((f) => f.slice(base.length).replace(/\._S3rver_object$/, ''));
}
