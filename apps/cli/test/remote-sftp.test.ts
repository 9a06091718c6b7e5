/**
 * The real `kiwi` CLI on an SFTP repository served by OpenSSH's sshd (started on a loopback port
 * by @kiwi-backup/test-servers): every command, host key and authentication failures, sshd killed
 * in the middle of a backup, and connections cut by a TCP proxy.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { describeWithServer, sshdAvailable, startSshd, startTcpProxy, SSHD_INSTALL_HINT, type SshdServer } from '@kiwi-backup/test-servers';
import { runKiwi, tempDir, removeDir, makeSampleTree, expectSameTree, jsonLines, healAfter, sleep, type RunResult, snapshotList } from './helpers.js';

const MiB = 1024 * 1024;

describeWithServer('OpenSSH sshd', sshdAvailable(), SSHD_INSTALL_HINT, () => {
  let server: SshdServer;
  let work: string;
  let src: string;
  let env: NodeJS.ProcessEnv;
  let configCount = 0;

  /** `sftp://user@127.0.0.1:<port>/<absolute dir on the server>` */
  const repoUrl = (name: string, port = server.port) => `sftp://${server.username}@127.0.0.1:${port}${server.root}/${name}`;

  /** A config file whose storageOptions.sftp are the test server's key and known_hosts, plus `extra`. */
  async function configWith(extra: Record<string, unknown> = {}): Promise<string> {
    const file = join(work, `config-${++configCount}.json`);
    const sftp = {
      privateKey: server.privateKeyPath,
      knownHostsFile: server.knownHostsPath,
      agent: false, // nothing from the developer's ssh-agent or ~/.ssh/config
      sshConfigFile: false,
      ...extra,
    };
    await writeFile(file, JSON.stringify({ storageOptions: { sftp } }, null, 2));
    return file;
  }

  const kiwi = (repo: string, config: string, args: string[]) => runKiwi([...args, '--repo', repo, '--config', config], { env });

  beforeAll(async () => {
    server = await startSshd();
    work = await tempDir('kiwi-cli-sftp-');
    src = join(work, 'src');
    await makeSampleTree(src);
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_PASSWORD: 'correct horse', SSH_AUTH_SOCK: '', KIWI_SFTP_PASSWORD: '' };
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await removeDir(work);
  });

  describe('every command on an sftp: repository', () => {
    let repo: string;
    let config: string;
    beforeAll(async () => {
      repo = repoUrl('main');
      config = await configWith();
    });

    it('init, backup, restore: contents, modes, mtimes and symlinks round-trip exactly', async () => {
      const init = await kiwi(repo, config, ['init']);
      expect(init.code, init.stderr).toBe(0);
      expect(init.stdout).toContain(`at sftp://${server.username}@127.0.0.1:${server.port}${server.root}/main`);

      const b = await kiwi(repo, config, ['backup', src, '--tag', 'sftp', '--json']);
      expect(b.code, b.stderr).toBe(0);
      expect(jsonLines(b.stdout).find((l) => l.message_type === 'summary')!.status).toBe('success');

      // The repository is on the server's side, in the directory the URL names, with no temporary files left.
      const onServer = await readdir(join(server.root, 'main'), { recursive: true });
      expect(onServer).toContain('config');
      expect(onServer.filter((f) => f.startsWith('snapshots/')).length).toBe(1);
      expect(onServer.filter((f) => f.includes('~kiwi-tmp-'))).toEqual([]);

      const target = join(work, 'restore-main');
      const r = await kiwi(repo, config, ['restore', 'latest', '--target', target]);
      expect(r.code, r.stderr).toBe(0);
      await expectSameTree(join(target, src), src);
    });

    it('snapshots, ls and check --read-data work', async () => {
      const snaps = await kiwi(repo, config, ['snapshots', '--json']);
      expect(snaps.code, snaps.stderr).toBe(0);
      const list = snapshotList(snaps.stdout);
      expect(list.length).toBe(1);
      expect(list[0]!.tags).toEqual(['sftp']);

      const ls = await kiwi(repo, config, ['ls', 'latest']);
      expect(ls.code, ls.stderr).toBe(0);
      expect(ls.stdout).toContain(`${src}/docs/deep/er/big.bin`);
      expect(ls.stdout).toContain(`${src}/script.sh`);

      const check = await kiwi(repo, config, ['check', '--read-data']);
      expect(check.code, check.stderr).toBe(0);
      expect(check.stderr + check.stdout).toMatch(/no errors were found/);
    });

    it('an unknown host key is refused with its fingerprint (exit 2), and nothing is accepted silently', async () => {
      const emptyKnownHosts = join(work, 'known_hosts.empty');
      await writeFile(emptyKnownHosts, '');
      const config2 = await configWith({ knownHostsFile: emptyKnownHosts });
      for (const args of [['snapshots'], ['backup', src], ['init'], ['snapshots', '--json']]) {
        const r = await kiwi(repo, config2, args);
        expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
        const message = args.includes('--json')
          ? String(jsonLines(r.stdout).find((l) => l.message_type === 'error')!.message)
          : r.stderr;
        expect(message).toContain(server.hostKeyFingerprint);
        expect(message).toMatch(/is not in known_hosts .*refusing to connect/);
        expect(message).toContain(`[127.0.0.1]:${server.port}`);
        expect(message).toContain(emptyKnownHosts);
        expect(r.stdout + r.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
      }
      expect(await readFile(emptyKnownHosts, 'utf8')).toBe('');
      // A configured fingerprint is accepted instead of known_hosts.
      const config3 = await configWith({ knownHostsFile: emptyKnownHosts, hostKeyFingerprint: server.hostKeyFingerprint });
      const ok = await kiwi(repoUrl('pinned'), config3, ['init']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(await readFile(emptyKnownHosts, 'utf8')).toBe('');
    });

    it('a wrong private key: a clear authentication error (exit 1) and no key material in the output', async () => {
      const config2 = await configWith({ privateKey: server.unauthorizedKeyPath });
      const keyText = await readFile(server.unauthorizedKeyPath, 'utf8');
      const goodKeyText = await readFile(server.privateKeyPath, 'utf8');
      const keyLines = [...keyText.split('\n'), ...goodKeyText.split('\n')].filter((l) => l.length > 20 && !l.startsWith('-----'));
      expect(keyLines.length).toBeGreaterThan(2);
      for (const args of [['snapshots'], ['snapshots', '--json'], ['backup', src, '--json'], ['restore', 'latest', '--target', join(work, 'never')]]) {
        const r = await kiwi(repo, config2, args);
        expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(1);
        const text = r.stdout + r.stderr;
        expect(text).toMatch(/SFTP authentication failed for [^ ]+@127\.0\.0\.1:\d+/);
        expect(text).not.toMatch(/PRIVATE KEY/);
        for (const line of keyLines) expect(text).not.toContain(line.slice(0, 20));
        expect(text, 'no stack trace').not.toMatch(/\n\s+at /);
        if (args.includes('--json')) expect(r.stderr).toBe('');
      }
    });
  });

  describe('faults', () => {
    it('sshd killed in the middle of a backup: a clean failure; after a restart check is clean and the next backup completes', async () => {
      const name = 'halt';
      const repo = repoUrl(name);
      const config = await configWith({ connections: 2 });
      const init = await kiwi(repo, config, ['init']);
      expect(init.code, init.stderr).toBe(0);
      const first = await kiwi(repo, config, ['backup', src]);
      expect(first.code, first.stderr).toBe(0);

      const big = join(work, 'big');
      await mkdir(big, { recursive: true });
      for (let i = 0; i < 4; i++) await writeFile(join(big, `blob-${i}.bin`), randomBytes(16 * MiB));
      const dataDir = join(server.root, name, 'data');
      const packsBefore = (await packFiles(dataDir)).length;

      let killed = false;
      const killing = (async () => {
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          if ((await packFiles(dataDir)).length > packsBefore) {
            await server.kill();
            killed = true;
            return;
          }
          await sleep(10);
        }
      })();
      const b = await kiwi(repo, config, ['backup', big, src]);
      await killing;
      expect(killed, 'sshd was killed during the backup').toBe(true);
      expect(b.code, b.stderr).toBe(1);
      expect(b.stderr).toMatch(/retry \d+ in \d+ ms/);
      expect(b.stderr).toMatch(/^kiwi: .*after \d+ attempts/m);
      expect(b.stderr).toContain(`127.0.0.1:${server.port}`);
      expect(b.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
      expect(b.stdout).not.toMatch(/^[0-9a-f]{64}$/m);

      await server.restart();
      const snaps = await kiwi(repo, config, ['snapshots', '--json']);
      expect(snaps.code, snaps.stderr).toBe(0);
      expect(snapshotList(snaps.stdout).length).toBe(1);

      const check = await kiwi(repo, config, ['check', '--read-data', '--json']);
      expect(check.code, check.stdout + check.stderr).toBe(0);
      expect(jsonLines(check.stdout).find((l) => l.message_type === 'summary')!.errors).toBe(0);

      const again = await kiwi(repo, config, ['backup', big, src]);
      expect(again.code, again.stderr).toBe(0);
      const target = join(work, 'restore-halt');
      const r = await kiwi(repo, config, ['restore', 'latest', '--target', target]);
      expect(r.code, r.stderr).toBe(0);
      await expectSameTree(join(target, big), big);
      await expectSameTree(join(target, src), src);
      await removeDir(big);
    });

    it('connections cut after N bytes by a proxy: the retry layer reconnects, the backup restores exactly and check is clean', async () => {
      const proxy = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: server.port });
      try {
        const repo = repoUrl('proxy', proxy.port);
        // known_hosts names the server's own port; through the proxy, pin the fingerprint instead.
        const config = await configWith({ hostKeyFingerprint: server.hostKeyFingerprint });
        const init = await kiwi(repo, config, ['init']);
        expect(init.code, init.stderr).toBe(0);

        // Every connection dies after 512 KiB (both directions counted) until 3 were cut.
        proxy.setCutAfter(512 * 1024);
        const b = await healAfter(proxy, 3, () => kiwi(repo, config, ['backup', src]));
        expect(proxy.cuts).toBeGreaterThanOrEqual(3);
        expect(b.code, b.stderr).toBe(0);
        expect(b.stderr).toMatch(/retry 1 in \d+ ms/);

        const cutsBefore = proxy.cuts;
        proxy.setCutAfter(256 * 1024);
        const target = join(work, 'restore-proxy');
        const r = await healAfter(proxy, cutsBefore + 2, () => kiwi(repo, config, ['restore', 'latest', '--target', target]));
        expect(r.code, r.stderr).toBe(0);
        expect(proxy.cuts).toBeGreaterThan(cutsBefore);
        await expectSameTree(join(target, src), src);

        const check = await kiwi(repo, config, ['check', '--read-data']);
        expect(check.code, check.stderr).toBe(0);
        const left = await readdir(join(server.root, 'proxy'), { recursive: true });
        expect(left.filter((f) => f.startsWith('snapshots/')).length).toBe(1);
      } finally {
        await proxy.stop();
      }
    });
  });
});


/** Pack files saved under `data/` (temporary files of saves in progress excluded). */
async function packFiles(dataDir: string): Promise<string[]> {
  try {
    return (await readdir(dataDir, { recursive: true })).filter((f) => /^[0-9a-f]{2}\/[0-9a-f]{64}$/.test(f));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
