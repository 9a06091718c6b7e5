import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mysqlState, { readOptionFile, resolveConnection } from '../src/index.js';
import { redact, versionAtLeast } from '../src/connection.js';
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
