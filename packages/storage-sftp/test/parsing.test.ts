import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSftpUrl, readSshConfig, fingerprintOf, sftpAdapter } from '../src/index.js';
import { redactUrl } from '../src/url.js';
import { MAX_TRANSFER, transferLimit } from '../src/connection.js';
import { checkKnownHosts, findKnownHosts, hostFieldMatches, keyTypeOf, normalizeFingerprint } from '../src/known-hosts.js';

describe('parseSftpUrl', () => {
  it.each([
    ['sftp:host:/srv/kiwi', { host: 'host', path: '/srv/kiwi' }],
    ['sftp:me@host:/srv/kiwi/', { host: 'host', username: 'me', path: '/srv/kiwi' }],
    ['sftp:me@host:backups/kiwi', { host: 'host', username: 'me', path: 'backups/kiwi' }],
    ['sftp:me@host:~/kiwi', { host: 'host', username: 'me', path: 'kiwi' }],
    ['sftp:me@[::1]:/srv', { host: '::1', username: 'me', path: '/srv' }],
    ['sftp:user@example.com@host:/p', { host: 'host', username: 'user@example.com', path: '/p' }],
    ['sftp://me@host:2222/srv/kiwi', { host: 'host', username: 'me', port: 2222, path: '/srv/kiwi' }],
    ['sftp://me@host:2222//srv/kiwi', { host: 'host', username: 'me', port: 2222, path: '/srv/kiwi' }],
    ['sftp://host/~/kiwi', { host: 'host', path: 'kiwi' }],
    ['sftp://me@[fe80::1]:22/x', { host: 'fe80::1', username: 'me', port: 22, path: '/x' }],
    ['sftp://me%40corp@host/x', { host: 'host', username: 'me@corp', path: '/x' }],
    // An empty port is the default one (the README's example once read like this).
    ['sftp://backup@nas:/srv/kiwi', { host: 'nas', username: 'backup', path: '/srv/kiwi' }],
    ['sftp://backup@[::1]:/srv/kiwi', { host: '::1', username: 'backup', path: '/srv/kiwi' }],
  ])('%s', (url, want) => {
    expect(parseSftpUrl(url)).toEqual(want);
  });

  it.each([
    ['sftp:host', /expected sftp:/],
    ['sftp:host:', /empty repository path/],
    ['sftp://host', /missing the repository path/],
    ['sftp://host:99999/x', /bad port/],
    ['sftp:host:2222:/srv', /no port/],
    ['sftp://host:x/srv', /bad port/],
    ['s3:bucket', /must start with "sftp:"/],
  ])('rejects %s', (url, re) => {
    expect(() => parseSftpUrl(url)).toThrow(re);
  });

  it('refuses a password in the URL without echoing it', () => {
    for (const url of ['sftp://me:pa55w0rd@host/x', 'sftp:me:pa55w0rd@host:/x']) {
      let msg = '';
      try {
        parseSftpUrl(url);
      } catch (err) {
        msg = (err as Error).message;
      }
      expect(msg).toMatch(/password in the URL/);
      expect(msg).not.toContain('pa55w0rd');
    }
  });

  it('a password holding "@" or "/" is neither echoed nor taken apart: the user info ends at the last "@"', () => {
    const cases: Array<[string, string]> = [
      ['sftp://backup:Tr0ub@dor/x@nas.example/srv/kiwi', 'sftp://backup:***@nas.example/srv/kiwi'],
      // Once "bad port" with the whole URL, password and all: the password's "/" ended the authority.
      ['sftp://user:pa/ssw0rd@host/path', 'sftp://user:***@host/path'],
      ['sftp://user:pa:ss/w@rd@host:2222/path', 'sftp://user:***@host:2222/path'],
      ['sftp:backup:Tr0ub@dor/x@nas.example:/srv/kiwi', 'sftp:backup:***@nas.example:/srv/kiwi'],
      ['sftp:me@corp:s3c@r@t@host:/srv', 'sftp:me@corp:***@host:/srv'],
    ];
    for (const [url, shown] of cases) {
      let msg = '';
      try {
        parseSftpUrl(url);
      } catch (err) {
        msg = (err as Error).message;
      }
      expect(msg, url).toBe(
        `invalid SFTP repository URL ${JSON.stringify(shown)}: a password in the URL is not accepted: put it in the KIWI_SFTP_PASSWORD environment variable or the \`password\` option (better: use a key)`,
      );
    }
    expect(redactUrl('sftp://me@host/srv/kiwi')).toBe('sftp://me@host/srv/kiwi');
    expect(redactUrl('sftp:me@host:/srv/kiwi')).toBe('sftp:me@host:/srv/kiwi');
    // A bad %-escape is a configuration error, not a URIError.
    expect(() => parseSftpUrl('sftp://host/srv/%zz')).toThrow(/invalid SFTP repository URL "sftp:\/\/host\/srv\/%zz": a %-escape is not valid/);
  });
});

describe('parseSftpUrl and a password holding "/" where the rest would parse', () => {
  // The "/" ends the host part before the "@" is reached, so these once parsed: host "backup", the
  // password in the path (or the port), and so in the location, messages and requests to host "backup".
  it.each([
    ['sftp:backup:pa/ss@nas.example:/srv/kiwi', 'pa/ss', 'sftp:backup:***@nas.example:/srv/kiwi'],
    ['sftp:backup:s3cret/x@nas.example:kiwi', 's3cret/x', 'sftp:backup:***@nas.example:kiwi'],
    ['sftp://backup:1234/ss@nas.example/srv/kiwi', '1234/ss', 'sftp://backup:***@nas.example/srv/kiwi'],
  ])('%s is refused without echoing the password', (url, password, shown) => {
    let msg = '';
    try {
      parseSftpUrl(url);
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain(`invalid SFTP repository URL ${JSON.stringify(shown)}: a password in the URL is not accepted`);
    expect(msg).not.toContain(password);
    expect(() => sftpAdapter.open(url, {}, {})).toThrow(/a password in the URL is not accepted/);
  });

  it('an "@" that belongs to the path is written %40 in the URL form', () => {
    expect(() => parseSftpUrl('sftp:nas:/srv/me@home')).toThrow(/write it as %40/);
    expect(parseSftpUrl('sftp://nas/srv/me%40home')).toEqual({ host: 'nas', path: '/srv/me@home' });
    expect(parseSftpUrl('sftp://backup@nas:2222/srv/me%40home')).toEqual({ host: 'nas', username: 'backup', port: 2222, path: '/srv/me@home' });
  });
});

describe('readSshConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiwi-sshcfg-'));
  mkdirSync(join(dir, '.ssh', 'conf.d'), { recursive: true });
  writeFileSync(join(dir, '.ssh', 'conf.d', 'a.conf'), 'Host inc\n  HostName included.example\n');
  writeFileSync(
    join(dir, '.ssh', 'config'),
    [
      '# comment',
      'Include conf.d/*.conf',
      'Host backup !nope',
      '  HostName=10.0.0.5',
      '  User "kiwi user"',
      '  Port 2222',
      '  IdentityFile ~/.ssh/id_backup',
      '  UserKnownHostsFile ~/.ssh/kh1 /etc/kh2',
      '  StrictHostKeyChecking accept-new',
      'Match host foo',
      '  Port 1',
      'Host *.lan',
      '  IdentityFile %d/.ssh/%h_key',
      'Host *',
      '  Port 22',
      '  User fallback',
      '  IdentityFile ~/.ssh/id_default',
    ].join('\n'),
  );
  const read = (alias: string) => readSshConfig(alias, { home: dir });

  it('first value wins; IdentityFile accumulates; tokens and ~ are expanded', () => {
    expect(read('backup')).toEqual({
      hostName: '10.0.0.5',
      user: 'kiwi user',
      port: 2222,
      identityFiles: [join(dir, '.ssh/id_backup'), join(dir, '.ssh/id_default')],
      userKnownHostsFiles: [join(dir, '.ssh/kh1'), '/etc/kh2'],
      strictHostKeyChecking: 'accept-new',
    });
    expect(read('nas.lan')).toMatchObject({ port: 22, user: 'fallback', identityFiles: [join(dir, '.ssh/nas.lan_key'), join(dir, '.ssh/id_default')] });
    expect(read('inc').hostName).toBe('included.example');
  });

  it('Host patterns follow OpenSSH: case-insensitive, `?` is one character, `!` excludes', () => {
    const d = mkdtempSync(join(tmpdir(), 'kiwi-sshcfg-'));
    const file = join(d, 'config');
    writeFileSync(file, ['Host web?', '  Port 1', 'Host MyBox', '  Port 2', 'Host *.lan !bad.lan', '  Port 3', 'Host *', '  Port 9'].join('\n'));
    const port = (alias: string) => readSshConfig(alias, { file, home: d }).port;
    expect(port('web1')).toBe(1);
    expect(port('web')).toBe(9);
    expect(port('mybox')).toBe(2);
    expect(port('MYBOX')).toBe(2);
    expect(port('nas.lan')).toBe(3);
    expect(port('bad.lan')).toBe(9);
  });

  it('Match host/user blocks apply; Match exec is never run', () => {
    const d = mkdtempSync(join(tmpdir(), 'kiwi-sshcfg-'));
    const file = join(d, 'config');
    const marker = join(d, 'ran');
    writeFileSync(
      file,
      ['Host nas', '  HostName 10.1.2.3', '  User backup', 'Match host 10.1.2.3 user backup', '  Port 2200', `Match exec "touch ${marker}"`, '  Port 1', 'Match all', '  IdentityFile ~/k'].join('\n'),
    );
    expect(readSshConfig('nas', { file, home: d })).toEqual({ hostName: '10.1.2.3', user: 'backup', port: 2200, identityFiles: [join(d, 'k')] });
    expect(readSshConfig('other', { file, home: d }).port).toBeUndefined();
    expect(existsSync(marker)).toBe(false);
  });

  it('an Include inside a Host block: the block\'s later lines stay in it', () => {
    const d = mkdtempSync(join(tmpdir(), 'kiwi-sshcfg-'));
    mkdirSync(join(d, '.ssh'));
    writeFileSync(join(d, '.ssh', 'extra'), 'IdentityFile ~/.ssh/extra_key\n');
    const file = join(d, '.ssh', 'config');
    writeFileSync(file, ['Host nas', '  Include extra', '  Port 2222', 'Host *', '  User fallback'].join('\n'));
    expect(readSshConfig('nas', { file, home: d })).toEqual({ port: 2222, user: 'fallback', identityFiles: [join(d, '.ssh', 'extra_key')] });
    expect(readSshConfig('other', { file, home: d })).toEqual({ user: 'fallback', identityFiles: [] });
  });

  it('a config ssh-config cannot parse is a config error naming the file', () => {
    const d = mkdtempSync(join(tmpdir(), 'kiwi-sshcfg-'));
    const file = join(d, 'config');
    writeFileSync(file, 'Match host\n  Port 1\n');
    expect(() => readSshConfig('x', { file, home: d })).toThrow(new RegExp(`cannot read the SSH config ${file}`));
  });

  it('a missing file gives an empty config', () => {
    expect(readSshConfig('x', { file: join(dir, 'nope') })).toEqual({ identityFiles: [] });
  });
});

describe('known_hosts', () => {
  const key = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 7)]);
  const other = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 8)]);
  const rsa = Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), Buffer.alloc(20, 1)]);
  const dir = mkdtempSync(join(tmpdir(), 'kiwi-kh-'));

  it('fingerprints like OpenSSH and reads the key type', () => {
    expect(fingerprintOf(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyTypeOf(key)).toBe('ssh-ed25519');
    expect(normalizeFingerprint(fingerprintOf(key) + '=')).toBe(fingerprintOf(key));
    expect(() => normalizeFingerprint('MD5:aa:bb')).toThrow(/SHA256/);
  });

  it('matches plain, wildcard, negated, [host]:port and hashed entries', () => {
    expect(hostFieldMatches('a.example,b.example', 'b.example')).toBe(true);
    expect(hostFieldMatches('*.example,!bad.example', 'bad.example')).toBe(false);
    expect(hostFieldMatches('*.example', 'GOOD.example')).toBe(true);
    expect(hostFieldMatches('[h]:2222', '[h]:2222')).toBe(true);
    expect(hostFieldMatches('h', '[h]:2222')).toBe(false);
    const salt = Buffer.alloc(20, 3);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[h]:2222').digest('base64')}`;
    expect(hostFieldMatches(hashed, '[h]:2222')).toBe(true);
    expect(hostFieldMatches(hashed, 'h')).toBe(false);
  });

  it('gives ok / changed / revoked / other-type / unknown', () => {
    const f = join(dir, 'kh');
    writeFileSync(
      f,
      [
        `h ssh-ed25519 ${key.toString('base64')}`,
        `changed ssh-ed25519 ${other.toString('base64')}`,
        `@revoked rev ssh-ed25519 ${key.toString('base64')}`,
        `rev ssh-ed25519 ${key.toString('base64')}`,
        `rsaonly ssh-rsa ${rsa.toString('base64')}`,
        '@cert-authority * ssh-ed25519 AAAA',
        'garbage',
      ].join('\n'),
    );
    const v = (name: string) => checkKnownHosts(findKnownHosts([f, join(dir, 'missing')], [name]), key);
    expect(v('h')).toMatchObject({ ok: true });
    expect(v('changed')).toMatchObject({ ok: false, reason: 'changed' });
    expect(v('rev')).toMatchObject({ ok: false, reason: 'revoked' });
    expect(v('rsaonly')).toMatchObject({ ok: false, reason: 'other-type' });
    expect(v('nobody')).toMatchObject({ ok: false, reason: 'unknown' });
  });
});

describe('private key permissions', () => {
  it('a key that group or others can read is used, with a warning naming it and the fix', async () => {
    const { execFileSync } = await import('node:child_process');
    const { chmodSync } = await import('node:fs');
    const { createSftpStorage } = await import('../src/index.js');
    const dir = mkdtempSync(join(tmpdir(), 'kiwi-keyperm-'));
    const key = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const open = () => {
      const warnings: string[] = [];
      const s = createSftpStorage({ host: '127.0.0.1', path: '/r', privateKey: key, agent: false, sshConfigFile: false, onWarning: (m) => warnings.push(m) });
      return { s, warnings };
    };
    chmodSync(key, 0o600);
    const tight = open();
    expect(tight.warnings).toEqual([]);
    await tight.s.close();
    chmodSync(key, 0o644);
    const loose = open();
    expect(loose.warnings).toEqual([expect.stringMatching(/private key .*id_ed25519 can be read or changed by other users \(mode 0644\): run `chmod 600/)]);
    await loose.s.close();
  });
});

describe('transferLimit', () => {
  it('keeps a read reply within the 256 KiB packet ssh2 accepts, whatever the server advertises', () => {
    // OpenSSH advertises 255 KiB: kept as it is.
    expect(transferLimit(261_120)).toBe(261_120);
    // 256 KiB of data and a reply's 9 bytes of headers would exceed ssh2's 256 KiB packet limit.
    expect(transferLimit(256 * 1024)).toBe(MAX_TRANSFER);
    expect(transferLimit(2 ** 40)).toBe(MAX_TRANSFER);
    expect(MAX_TRANSFER + 9).toBeLessThanOrEqual(256 * 1024);
    expect(transferLimit(undefined)).toBe(32 * 1024);
    expect(transferLimit(0)).toBe(1024);
    expect(transferLimit(Number.NaN)).toBe(32 * 1024);
  });
});

