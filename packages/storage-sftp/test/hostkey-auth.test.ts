import { execFileSync, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { isTransientError, withRetry, type Storage } from '@kiwi-backup/core';
import { describeWithServer } from '@kiwi-backup/test-servers';
import { HostKeyError, createSftpStorage, sftpAdapter } from '../src/index.js';
import { SSHD_INSTALL_HINT, haveSshd, openSftp, rejection, sftpOptions, useSshd } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'kiwi-sftp-hk-'));
afterAll(() => execFileSync('rm', ['-rf', tmp]));
let n = 0;
const tmpFile = (content?: string) => {
  const f = join(tmp, `f${++n}`);
  if (content !== undefined) writeFileSync(f, content);
  return f;
};

const cfgHandle = { type: 'config', name: 'config' } as const;

describeWithServer('OpenSSH sshd', haveSshd, SSHD_INSTALL_HINT, () => {
  const server = useSshd();
  const opened: Storage[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
  });
  const open = (extra: Parameters<typeof openSftp>[1]) => {
    const { storage } = openSftp(server(), extra);
    opened.push(storage);
    return storage;
  };

  it('works with the known_hosts entry and the authorized key', async () => {
    const s = open({});
    await s.create();
    await s.save(cfgHandle, Buffer.from('hello'));
    expect((await s.load(cfgHandle)).toString()).toBe('hello');
  });

  it('refuses an unknown host, showing the SHA256 fingerprint and how to accept it', async () => {
    const s = open({ knownHostsFile: tmpFile('') });
    const err = await rejection(s.stat(cfgHandle));
    expect(err).toBeInstanceOf(HostKeyError);
    expect((err as HostKeyError).reason).toBe('unknown');
    expect(err.kind).toBe('config');
    expect(isTransientError(err)).toBe(false);
    expect(err.message).toContain(server().hostKeyFingerprint);
    expect(err.message).toMatch(/not in known_hosts/);
    expect(err.message).toMatch(/acceptNewHostKey/);
    expect(err.message).toMatch(/hostKeyFingerprint/);
  });

  it('is not retried by withRetry (fails at once)', async () => {
    const retries: unknown[] = [];
    const s = withRetry(open({ knownHostsFile: tmpFile('') }), { baseDelayMs: 1, onRetry: (i) => retries.push(i) });
    await rejection(s.stat(cfgHandle));
    expect(retries).toHaveLength(0);
  });

  it('refuses a CHANGED host key loudly', async () => {
    const srv = server();
    // Another ed25519 key under the server's name.
    const otherKey = readFileSync(`${srv.unauthorizedKeyPath}.pub`, 'utf8').split(/\s+/).slice(0, 2).join(' ');
    const s = open({ knownHostsFile: tmpFile(`[127.0.0.1]:${srv.port} ${otherKey}\n`) });
    const err = await rejection(s.stat(cfgHandle));
    expect((err as HostKeyError).reason).toBe('changed');
    expect(err.message).toMatch(/HAS CHANGED/);
    expect(err.message).toMatch(/man-in-the-middle/);
    expect(err.message).toContain(srv.hostKeyFingerprint);
  });

  it('accepts a hashed known_hosts entry (|1|salt|hmac)', async () => {
    const srv = server();
    const salt = randomBytes(20);
    const name = `[127.0.0.1]:${srv.port}`;
    const hash = createHmac('sha1', salt).update(name).digest('base64');
    const s = open({ knownHostsFile: tmpFile(`# comment\n|1|${salt.toString('base64')}|${hash} ${srv.hostPublicKey}\n`) });
    await s.create();
    await s.save(cfgHandle, Buffer.from('x'));
  });

  it('a hashed entry for another port does not match', async () => {
    const srv = server();
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update(`[127.0.0.1]:${srv.port + 1}`).digest('base64');
    const s = open({ knownHostsFile: tmpFile(`|1|${salt.toString('base64')}|${hash} ${srv.hostPublicKey}\n`) });
    expect(((await rejection(s.stat(cfgHandle))) as HostKeyError).reason).toBe('unknown');
  });

  it('accepts the configured fingerprint and refuses a wrong one', async () => {
    const srv = server();
    const good = open({ knownHostsFile: tmpFile(''), hostKeyFingerprint: srv.hostKeyFingerprint });
    await good.create();
    await good.save(cfgHandle, Buffer.from('fp'));
    const wrongFp = 'SHA256:' + Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '');
    const bad = open({ knownHostsFile: srv.knownHostsPath, hostKeyFingerprint: wrongFp });
    const err = await rejection(bad.stat(cfgHandle));
    expect((err as HostKeyError).reason).toBe('mismatch');
    expect(err.message).toContain(srv.hostKeyFingerprint);
    expect(err.message).toContain(wrongFp);
  });

  it('acceptNewHostKey writes known_hosts, which then verifies the next connection', async () => {
    const srv = server();
    const file = join(tmp, 'new-dir', 'known_hosts');
    const s = open({ knownHostsFile: file, acceptNewHostKey: true });
    await s.create();
    expect(readFileSync(file, 'utf8')).toBe(`[127.0.0.1]:${srv.port} ${srv.hostPublicKey}\n`);
    const again = open({ knownHostsFile: file });
    await again.stat(cfgHandle).catch((err) => {
      if (!again.isNotFound(err)) throw err;
    });
  });

  it('acceptNewHostKey does not override a changed key', async () => {
    const srv = server();
    const otherKey = readFileSync(`${srv.unauthorizedKeyPath}.pub`, 'utf8').split(/\s+/).slice(0, 2).join(' ');
    const file = tmpFile(`[127.0.0.1]:${srv.port} ${otherKey}\n`);
    const s = open({ knownHostsFile: file, acceptNewHostKey: true });
    expect(((await rejection(s.stat(cfgHandle))) as HostKeyError).reason).toBe('changed');
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('a wrong private key gives an auth error without key material or password', async () => {
    const srv = server();
    const s = open({ privateKey: srv.unauthorizedKeyPath, env: { KIWI_SFTP_PASSWORD: 'hunter2-secret' } });
    const err = await rejection(s.stat(cfgHandle));
    expect(err.kind).toBe('auth');
    expect(isTransientError(err)).toBe(false);
    expect(err.message).toContain(`authentication failed for ${srv.username}@127.0.0.1:${srv.port}`);
    expect(err.message).toContain(srv.unauthorizedKeyPath);
    const text = `${err.message} ${err.stack} ${JSON.stringify(err)}`;
    expect(text).not.toContain('hunter2-secret');
    expect(text).not.toMatch(/PRIVATE KEY/);
    for (const line of readFileSync(srv.unauthorizedKeyPath, 'utf8').split('\n')) {
      if (line.length > 20 && !line.startsWith('-----')) expect(text).not.toContain(line);
    }
  });

  it('an encrypted key needs KIWI_SFTP_KEY_PASSPHRASE', async () => {
    const srv = server();
    const enc = join(tmp, 'id_enc');
    copyFileSync(srv.privateKeyPath, enc);
    execFileSync('ssh-keygen', ['-q', '-p', '-N', 'correct horse', '-f', enc]);
    expect(readFileSync(enc, 'utf8')).not.toBe(readFileSync(srv.privateKeyPath, 'utf8'));
    const without = await rejection(Promise.resolve().then(() => open({ privateKey: enc }).stat(cfgHandle)));
    expect(without.kind).toBe('auth');
    expect(without.message).toMatch(/encrypted.*KIWI_SFTP_KEY_PASSPHRASE/);
    const wrong = await rejection(
      Promise.resolve().then(() => open({ privateKey: enc, env: { KIWI_SFTP_KEY_PASSPHRASE: 'nope' } }).stat(cfgHandle)),
    );
    expect(wrong.message).toMatch(/wrong passphrase/);
    expect(wrong.message).not.toContain('nope');
    const ok = open({ privateKey: enc, env: { KIWI_SFTP_KEY_PASSPHRASE: 'correct horse' } });
    await ok.create();
  });

  it('authenticates with ssh-agent (SSH_AUTH_SOCK)', async () => {
    const srv = server();
    const sock = join(tmp, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      execFileSync('ssh-add', ['-q', srv.privateKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      // No key file: only the agent can log in.
      const s = open({ privateKey: [], agent: true, env: { SSH_AUTH_SOCK: sock } });
      await s.create();
      await s.save(cfgHandle, Buffer.from('agent'));
      await s.close();
      const none = open({ privateKey: [], agent: false });
      const err = await rejection(none.stat(cfgHandle));
      expect(err.kind).toBe('auth');
      expect(err.message).toMatch(/no SFTP credentials/);
    } finally {
      agent.kill();
    }
  });

  it('reads Host aliases from an ssh config file', async () => {
    const srv = server();
    const conf = tmpFile(
      [
        'Host other',
        '  Port 1',
        'Host kiwi-test-alias',
        '  HostName 127.0.0.1',
        `  Port ${srv.port}`,
        `  User ${srv.username}`,
        `  IdentityFile ${srv.privateKeyPath}`,
        `  UserKnownHostsFile ${srv.knownHostsPath}`,
        'Host *',
        '  Port 2',
        '  IdentityFile ~/.ssh/nonexistent_kiwi_key',
      ].join('\n'),
    );
    const base = sftpOptions(srv);
    const s = createSftpStorage({ host: 'kiwi-test-alias', path: base.path, sshConfigFile: conf, agent: false, env: {} });
    opened.push(s);
    expect(s.location).toBe(`sftp://${srv.username}@kiwi-test-alias:${srv.port}${base.path}`);
    await s.create();
    await s.save(cfgHandle, Buffer.from('alias'));
  });

  it('opens from a URL through the adapter; the location has no secret', async () => {
    const srv = server();
    const path = sftpOptions(srv).path;
    const opts = { privateKey: srv.privateKeyPath, knownHostsFile: srv.knownHostsPath, agent: false, sshConfigFile: false as const };
    for (const url of [`sftp://${srv.username}@127.0.0.1:${srv.port}${path}`, `sftp://${srv.username}@127.0.0.1:${srv.port}/${path}`]) {
      const s = await sftpAdapter.open(url, opts, { KIWI_SFTP_PASSWORD: 'pw-not-shown' });
      opened.push(s);
      expect(s.location).toBe(`sftp://${srv.username}@127.0.0.1:${srv.port}${path}`);
      await s.create();
      await s.save(cfgHandle, Buffer.from(url));
      expect((await s.load(cfgHandle)).toString()).toBe(url);
    }
    // scp-like form with the port from options
    const s = await sftpAdapter.open(`sftp:${srv.username}@127.0.0.1:${path}`, { ...opts, port: srv.port }, {});
    opened.push(s);
    await s.stat(cfgHandle);
    expect(() => sftpAdapter.open(`sftp://me:s3cret@127.0.0.1:${srv.port}/x`, opts, {})).toThrow(/password in the URL/);
    try {
      sftpAdapter.open(`sftp://me:s3cret@127.0.0.1:${srv.port}/x`, opts, {});
    } catch (err) {
      expect(String((err as Error).message)).not.toContain('s3cret');
    }
    expect(() => sftpAdapter.open('sftp:h:/x', { bogus: 1 } as never, {})).toThrow(/unknown SFTP storage option "bogus"/);
  });

  it('a refused connection is transient', async () => {
    const s = createSftpStorage({ ...sftpOptions(server()), port: 1, connectTimeoutMs: 5000 });
    const err = await rejection(s.stat(cfgHandle));
    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/cannot connect to SFTP server/);
    await s.close();
  });

  it('an explicit private key that does not exist is a config error', () => {
    expect(() => createSftpStorage({ ...sftpOptions(server()), privateKey: join(tmp, 'missing-key') })).toThrow(/does not exist/);
    expect(existsSync(join(tmp, 'missing-key'))).toBe(false);
  });
});
