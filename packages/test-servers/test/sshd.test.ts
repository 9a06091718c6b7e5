import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

  it('goes away when the process that started it is killed (no listener left behind)', async () => {
    const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'sshd.js');
    expect(existsSync(dist), `${dist} (run pnpm build)`).toBe(true);
    const owner = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const { startSshd } = await import(${JSON.stringify(dist)}); const s = await startSshd(); console.log(JSON.stringify({ port: s.port, dir: s.dir })); setInterval(() => {}, 1 << 30);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const started = await new Promise<{ port: number; dir: string }>((resolve, reject) => {
      let out = '';
      owner.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as { port: number; dir: string });
      });
      owner.once('exit', (code) => reject(new Error(`the owner exited (${code}) before sshd started`)));
    });
    const accepts = () =>
      new Promise<boolean>((resolve) => {
        const sock = connect(started.port, '127.0.0.1');
        sock.once('connect', () => {
          sock.destroy();
          resolve(true);
        });
        sock.once('error', () => resolve(false));
      });
    try {
      expect(await accepts()).toBe(true);
      owner.kill('SIGKILL');
      let open = true;
      for (let i = 0; i < 50 && open; i++) {
        await new Promise((r) => setTimeout(r, 100));
        open = await accepts();
      }
      expect(open, 'sshd still listens after its owner was killed').toBe(false);
    } finally {
      owner.kill('SIGKILL');
      rmSync(started.dir, { recursive: true, force: true });
    }
  });
});
