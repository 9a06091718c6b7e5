import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithServer } from '../src/require.js';
import { MARIADB_INSTALL_HINT, mariaDbAvailable, mariaDbClient, startMariaDb, type MariaDbServer } from '../src/mariadb.js';

const execFileAsync = promisify(execFile);

describeWithServer('MariaDB (mariadbd)', mariaDbAvailable(), MARIADB_INSTALL_HINT, () => {
  let server: MariaDbServer;
  beforeAll(async () => {
    server = await startMariaDb();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('answers on TCP and the socket with the generated password, and rejects a wrong one', async () => {
    expect(await server.isUp()).toBe(true);
    expect(server.version).toMatch(/MariaDB/);
    const rows = await server.query<Array<{ u: string }>>('SELECT CURRENT_USER() AS u');
    expect(rows[0]?.u).toBe(`${server.user}@127.0.0.1`);
    expect(mariaDbClient(server, ['-N', '-e', 'SELECT 40 + 2']).trim()).toBe('42');
    const mysql = (await import('mysql2/promise')).default;
    await expect(mysql.createConnection({ ...server.params(), password: 'wrong' })).rejects.toThrow(/Access denied/);
    await expect(
      mysql.createConnection({ socketPath: server.socket, user: 'root', password: '' }),
    ).rejects.toThrow(/Access denied/);
  });

  it('stops and starts through its commands, keeping the data directory', async () => {
    await server.query('CREATE DATABASE keep; CREATE TABLE keep.t (v INT); INSERT INTO keep.t VALUES (7)');
    const firstPid = server.pid();
    expect(firstPid).toBeGreaterThan(0);

    await execFileAsync(server.stopCommand[0]!, server.stopCommand.slice(1));
    expect(server.pid()).toBeUndefined();
    expect(await server.isUp()).toBe(false);

    // The start command returns before the server answers; start() waits.
    await execFileAsync(server.startCommand[0]!, server.startCommand.slice(1));
    await server.start();
    expect(await server.isUp()).toBe(true);
    expect(server.pid()).not.toBe(firstPid);
    const rows = await server.query<Array<{ v: number }>>('SELECT v FROM keep.t');
    expect(rows.map((r) => r.v)).toEqual([7]);

    await server.stop();
    expect(await server.isUp()).toBe(false);
    await server.start();
    expect(await server.isUp()).toBe(true);
  });
});
