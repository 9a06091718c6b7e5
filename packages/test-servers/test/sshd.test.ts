import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithServer } from '../src/require.js';
import { SSHD_INSTALL_HINT, sshdAvailable, startSshd, type SshdServer } from '../src/sshd.js';

function ssh(s: SshdServer, key: string, command: string) {
  return spawnSync(
    'ssh',
    [
      '-i', key,
      '-o', `UserKnownHostsFile=${s.knownHostsPath}`,
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'ConnectTimeout=5',
      '-F', '/dev/null',
      '-p', String(s.port),
      `${s.username}@${s.host}`,
      command,
    ],
    { encoding: 'utf8' },
  );
}

describeWithServer('OpenSSH sshd', sshdAvailable(), SSHD_INSTALL_HINT, () => {
  let s: SshdServer;
  beforeAll(async () => {
    s = await startSshd();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('accepts the authorized key with strict host key checking against its known_hosts', () => {
    const r = ssh(s, s.privateKeyPath, 'echo kiwi-ok');
    expect(r.stderr).not.toMatch(/Host key verification failed/);
    expect(r.stdout.trim()).toBe('kiwi-ok');
    expect(r.status).toBe(0);
  });

  it('rejects a key that is not authorized', () => {
    const r = ssh(s, s.unauthorizedKeyPath, 'echo no');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Permission denied/);
  });

  it('reports the host key fingerprint as ssh-keygen prints it', () => {
    const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${s.dir}/ssh_host_ed25519_key.pub`], {
      encoding: 'utf8',
    });
    expect(out.split(/\s+/)[1]).toBe(s.hostKeyFingerprint);
    expect(readFileSync(s.knownHostsPath, 'utf8')).toContain(`[127.0.0.1]:${s.port} ssh-ed25519 `);
  });

  it('kill() drops open sessions and restart() serves again on the same port', async () => {
    const port = s.port;
    await s.kill();
    expect(s.running).toBe(false);
    expect(ssh(s, s.privateKeyPath, 'true').status).not.toBe(0);
    await s.restart();
    expect(s.running).toBe(true);
    expect(s.port).toBe(port);
    expect(ssh(s, s.privateKeyPath, 'echo again').stdout.trim()).toBe('again');
  });

  it('pause() freezes the server until resume()', async () => {
    s.pause();
    try {
      const r = spawnSync('ssh', ['-o', 'ConnectTimeout=1', '-o', 'BatchMode=yes', '-F', '/dev/null', '-o', `UserKnownHostsFile=${s.knownHostsPath}`, '-i', s.privateKeyPath, '-p', String(s.port), `${s.username}@${s.host}`, 'true'], { encoding: 'utf8', timeout: 5000 });
      expect(r.status).not.toBe(0);
    } finally {
      s.resume();
    }
    expect(ssh(s, s.privateKeyPath, 'echo back').stdout.trim()).toBe('back');
  });

  it('stop() removes its temp dir', async () => {
    const other = await startSshd();
    expect(existsSync(other.root)).toBe(true);
    await other.stop();
    expect(existsSync(other.dir)).toBe(false);
  });
});
