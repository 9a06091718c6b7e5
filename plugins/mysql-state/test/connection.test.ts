import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysqlState, { DEFAULT_SOCKETS, readOptionFile, resolveConnection, trustedSocket } from '../src/index.js';
import { connectionError } from '../src/connection.js';
import { findDefaultSocket, redact, socketDirectoryProblem, versionAtLeast } from '../src/connection.js';
import { chooseLockMethod } from '../src/lock.js';
import { instantiatePlugin, loadTestPlugins } from '@kiwi-backup/core/testing';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiwi-mysql-conn-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('option files', () => {
  it('parses sections, quoting, escapes, comments and !include', async () => {
    await writeFile(join(dir, 'extra.cnf'), '[client]\nsocket=/run/other.sock\n');
    const file = join(dir, 'my.cnf');
    await writeFile(
      file,
      [
        '# comment',
        '[mysqld]',
        'port=1',
        '[client]',
        'user = backup # trailing comment',
        'password = "p#ss \\"word\\" \\\\ end"',
        "host='db.local'",
        'skip_ssl',
        '!include extra.cnf',
        '[mysqldump]',
        'quick',
      ].join('\n'),
    );
    const sections = await readOptionFile(file, (p) => import('node:fs/promises').then((fs) => fs.readFile(p, 'utf8')));
    expect(sections.client).toEqual({
      user: 'backup',
      password: 'p#ss "word" \\ end',
      host: 'db.local',
      'skip-ssl': '',
      socket: '/run/other.sock',
    });
    expect(sections.mysqld).toEqual({ port: '1' });
    expect(sections.mysqldump).toEqual({ quick: '' });
  });

  it('names the file when it cannot be read', async () => {
    await expect(resolveConnection({ defaultsFile: join(dir, 'missing.cnf') })).rejects.toThrow(/cannot read MySQL option file .*missing\.cnf/);
  });
});

describe('connection errors', () => {
  const enoent = Object.assign(new Error('connect ENOENT /run/mysqld/mysqld.sock'), { code: 'ENOENT' });
  it('a default socket with nothing there says how to reach a server over TCP', () => {
    const m = connectionError('cannot reach the MySQL server', enoent, { socket: DEFAULT_SOCKETS[0]!, user: 'u', password: 'sekrit' }).message;
    expect(m).toMatch(/^cannot reach the MySQL server \(socket \/run\/mysqld\/mysqld\.sock as user u\): connect ENOENT .*Nothing listens on that socket; .*set the plug-in's "host" and "port" options$/);
    expect(m).not.toContain('sekrit');
  });
  it('other sockets and other failures get no such hint', () => {
    expect(connectionError('x', enoent, { socket: '/srv/db/my.sock', user: 'u' }).message).not.toMatch(/Nothing listens/);
    const denied = Object.assign(new Error('Access denied'), { code: 'ER_ACCESS_DENIED_ERROR' });
    expect(connectionError('x', denied, { socket: DEFAULT_SOCKETS[0]!, user: 'u' }).message).not.toMatch(/Nothing listens/);
    expect(connectionError('x', enoent, { host: 'db', port: 3306, user: 'u' }).message).not.toMatch(/Nothing listens/);
  });
});

describe('resolveConnection', () => {
  it('takes options first, then the option file, then the environment', async () => {
    const file = join(dir, 'client.cnf');
    await writeFile(file, '[client]\nuser=fromfile\npassword=filepw\nport=3400\nhost=filehost\n');
    const env = { MYSQL_HOST: 'envhost', MYSQL_TCP_PORT: '3500', MYSQL_USER: 'envuser', MYSQL_PWD: 'envpw' };
    expect(await resolveConnection({}, env)).toEqual({ host: 'envhost', port: 3500, user: 'envuser', password: 'envpw' });
    expect(await resolveConnection({ defaultsFile: file }, env)).toEqual({
      host: 'filehost', port: 3400, user: 'fromfile', password: 'filepw', defaultsFile: file,
    });
    expect(await resolveConnection({ defaultsFile: file, user: 'opt', port: 3600 }, env)).toMatchObject({ user: 'opt', port: 3600, password: 'filepw' });
    expect(await resolveConnection({ socket: '/tmp/x.sock', user: 'u' }, {})).toEqual({ socket: '/tmp/x.sock', user: 'u' });
  });

  it('rejects a bad port', async () => {
    await expect(resolveConnection({}, { MYSQL_TCP_PORT: 'abc' })).rejects.toThrow(/invalid port "abc"/);
  });
});

/** A Unix socket something listens on (a fake server: it accepts and says nothing). */
async function listen(path: string): Promise<Server> {
  const server = createServer((c) => c.on('error', () => {}));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, () => resolve()));
  return server;
}
const closeServer = (server: Server) => new Promise<void>((r) => server.close(() => r()));

describe.runIf(process.platform !== 'win32')('the default socket', () => {
  it('is never /tmp/mysql.sock, which any local user can create, even when something listens there', async () => {
    // The audit's case: no server socket in /run/mysqld, a fake one in /tmp. It used to be picked, and got
    // the password in cleartext (mysql2 counts a socket as secure).
    if (!existsSync('/tmp/mysql.sock') && !existsSync('/run/mysqld/mysqld.sock')) {
      const fake = await listen('/tmp/mysql.sock');
      try {
        // (Where /run/mysqld is there, its socket's place is taken while the server is down: never /tmp's.)
        for (const c of [await resolveConnection({}, {}), await resolveConnection({ host: 'localhost', user: 'u' }, {})]) {
          expect(c.socket === undefined ? c : { socket: c.socket }).toEqual(c.socket === undefined ? { host: 'localhost', port: 3306, user: expect.any(String) } : { socket: expect.stringMatching(/^\/(var\/)?run\/mysqld\//) });
        }
      } finally {
        await closeServer(fake);
      }
    }
    expect(DEFAULT_SOCKETS).not.toContain('/tmp/mysql.sock');
    expect(findDefaultSocket(['/tmp/mysql.sock'])).toBeUndefined();
  });

  it('is used only in a directory that no one but root and its owner can write to', async () => {
    // Anything under the temporary folder (world-writable) is refused, whatever its own mode.
    const sub = join(dir, 'sockdir');
    await mkdir(sub, { mode: 0o700 });
    const sock = join(sub, 'mysqld.sock');
    const server = await listen(sock);
    try {
      expect(trustedSocket(sock)).toBe(false);
      expect(socketDirectoryProblem(sock)).toMatch(/other users can write to .* \(mode 1777\)|does not belong to root/);
      expect(await resolveConnection({ user: 'u' }, {}, [sock])).toEqual({ host: 'localhost', port: 3306, user: 'u' });
      // A configured socket is used as configured.
      expect(await resolveConnection({ socket: sock, user: 'u' }, {}, [])).toEqual({ socket: sock, user: 'u' });
    } finally {
      await closeServer(server);
    }
  });

  // A place only root can write to: a folder of its own in /run, as the real /run/mysqld.
  it.runIf(process.getuid?.() === 0 && existsSync('/run'))('a socket in a root-controlled directory is used; not once others may write there or it links elsewhere', async () => {
    const base = await mkdtemp('/run/kiwi-mysql-test-');
    const sock = join(base, 'mysqld.sock');
    const server = await listen(sock);
    try {
      await chmod(base, 0o755);
      expect(socketDirectoryProblem(sock)).toBeUndefined();
      expect(await resolveConnection({ user: 'u' }, {}, ['/nonexistent/mysqld.sock', sock])).toEqual({ socket: sock, user: 'u' });
      // The server's own user may own the directory (Debian: mysql:mysql 0755).
      await chown(base, 65534, 65534);
      expect(trustedSocket(sock)).toBe(true);
      // Writable by its group (not root's) or by everyone: refused.
      await chmod(base, 0o775);
      expect(socketDirectoryProblem(sock)).toBe(`other users can write to ${base} (mode 0775)`);
      expect(await resolveConnection({ user: 'u' }, {}, [sock])).toEqual({ host: 'localhost', port: 3306, user: 'u' });
      await chmod(base, 0o1777);
      expect(trustedSocket(sock)).toBe(false);
      await chown(base, 0, 0);
      await chmod(base, 0o755);
      // A symlink in a trusted place to a socket in an untrusted one is judged by where it leads.
      const elsewhere = join(dir, 'elsewhere.sock');
      const other = await listen(elsewhere);
      try {
        await symlink(elsewhere, join(base, 'link.sock'));
        expect(trustedSocket(join(base, 'link.sock'))).toBe(false);
      } finally {
        await closeServer(other);
      }
      // Not a socket at all: not used.
      await writeFile(join(base, 'file.sock'), '');
      expect(trustedSocket(join(base, 'file.sock'))).toBe(false);
    } finally {
      await closeServer(server);
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe.runIf(process.platform !== 'win32')('while the server is down', () => {
  // The recovery of a run that stopped MySQL, or service mode's wait: no socket yet. The default used to be
  // localhost:3306, where any local user may listen meanwhile and be sent the login.
  it.runIf(process.getuid?.() === 0 && existsSync('/run'))('the default socket is awaited in its place, not exchanged for localhost:3306', async () => {
    const base = await mkdtemp('/run/kiwi-mysql-test-');
    const sock = join(base, 'mysqld.sock');
    try {
      await chmod(base, 0o755);
      expect(await resolveConnection({ user: 'u' }, {}, ['/nonexistent/mysqld.sock', sock])).toEqual({ socket: sock, user: 'u' });
      expect(await resolveConnection({ host: 'localhost', user: 'u' }, {}, [sock])).toEqual({ socket: sock, user: 'u' });
      // A place other users can write to is no place for it: TCP, as before.
      await chmod(base, 0o1777);
      expect(await resolveConnection({ user: 'u' }, {}, [sock])).toEqual({ host: 'localhost', port: 3306, user: 'u' });
      await chmod(base, 0o755);
      // Something that is not a socket where it would be: not the server's.
      await writeFile(sock, '');
      expect(await resolveConnection({ user: 'u' }, {}, [sock])).toEqual({ host: 'localhost', port: 3306, user: 'u' });
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  it('no directory for the socket at all (no local server packaged): localhost:3306, as the mysql client', async () => {
    expect(await resolveConnection({ user: 'u' }, {}, ['/nonexistent-kiwi/mysqld.sock'])).toEqual({ host: 'localhost', port: 3306, user: 'u' });
  });
});

describe('helpers', () => {
  it('redacts the password wherever it appears', () => {
    expect(redact('Access denied for s3cr3t (s3cr3t)', { password: 's3cr3t' })).toBe('Access denied for *** (***)');
    expect(redact('nothing to hide', {})).toBe('nothing to hide');
  });

  it('compares versions and picks the lock method', () => {
    expect(versionAtLeast('10.11.6-MariaDB-0+deb12u1', [10, 4, 1])).toBe(true);
    expect(versionAtLeast('10.3.39-MariaDB', [10, 4, 1])).toBe(false);
    expect(chooseLockMethod('10.11.6-MariaDB', 'auto')).toBe('backup-stage');
    expect(chooseLockMethod('10.3.39-MariaDB', 'auto')).toBe('flush-tables');
    expect(chooseLockMethod('8.0.36', 'auto')).toBe('flush-tables');
    expect(chooseLockMethod('10.11.6-MariaDB', 'flush-tables')).toBe('flush-tables');
  });
});

describe('options', () => {
  const load = (options: Record<string, unknown>) => instantiatePlugin(mysqlState, options, { name: 'mysql-state', dataDir: dir });

  it('needs a valid mode and rejects unknown options', async () => {
    await expect(load({})).rejects.toThrow(/mysql-state: option "mode" must be one of "service", "lock", "dump"/);
    await expect(load({ mode: 'lock', passwd: 'x' })).rejects.toThrow(/unknown option "passwd"/);
    await expect(load({ mode: 'dump', database: 'a', databases: ['b'] })).rejects.toThrow(/not both/);
    await expect(load({ mode: 'service', stopCommand: 42 })).rejects.toThrow(/option "stopCommand"/);
    await expect(load({ mode: 'lock', lockTimeout: 'forever' })).rejects.toThrow(/option "lockTimeout"/);
  });

  it('returns the four-hook shape the runtime expects', async () => {
    const plugin = await load({ mode: 'lock' });
    expect(plugin.name).toBe('mysql-state');
    expect(typeof plugin.onServerStart).toBe('function');
    expect(typeof plugin.onBackupStart).toBe('function');
    expect(typeof plugin.onBackupStop).toBe('function');
    expect(plugin.onFile).toBeUndefined();
    const runtime = await loadTestPlugins([{ name: 'mysql-state', module: mysqlState, options: { mode: 'lock' } }], { dataDir: dir });
    expect(runtime.plugins.map((p) => [p.name, p.hooks])).toEqual([['mysql-state', ['onServerStart', 'onBackupStart', 'onBackupStop']]]);
    expect(runtime.warnings).toEqual([]);
  });
});
