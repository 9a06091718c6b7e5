/**
 * Servers that misbehave in ways OpenSSH does not (an SSH server in the test process, see
 * fake-server.ts): a directory listing that never ends, one cut by a lost connection, one that is
 * slow but steady, an SFTP channel that is never answered or refused. Each must end in a clear error
 * or a result, never a hang, unbounded memory or an SSH session left open.
 */
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Storage } from '@kiwi-backup/core';
import { createSftpStorage } from '../src/index.js';
import { MAX_DIR_ENTRIES } from '../src/list.js';
import { CLOSE_WAIT_MS } from '../src/pool.js';
import { PASSWORD, STATUS_CODE, fakeOptions, fileEntry, startFakeServer, type FakeServer } from './fake-server.js';
import { rejection } from './helpers.js';

const servers: FakeServer[] = [];
const storages: Storage[] = [];
afterEach(async () => {
  await Promise.all(storages.splice(0).map((s) => s.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function names(s: Storage, type: 'lock' | 'index'): Promise<string[]> {
  const out: string[] = [];
  for await (const f of s.list(type)) out.push(f.name);
  return out.sort();
}

describe('SFTP directory listings from a misbehaving server', () => {
  it('a listing the server never ends fails with an error naming the directory, not with growing memory', async () => {
    let sent = 0;
    const server = await startFakeServer({
      sftp: (sftp) => {
        sftp.on('OPENDIR', (reqid) => sftp.handle(reqid, Buffer.from('dir')));
        // Never EOF: 1,000 new names per reply, for ever.
        sftp.on('READDIR', (reqid) => {
          const batch = Array.from({ length: 1000 }, () => fileEntry(`lock${sent++}`));
          sftp.name(reqid, batch);
        });
        sftp.on('CLOSE', (reqid) => sftp.status(reqid, STATUS_CODE.OK));
      },
    });
    servers.push(server);
    const s = createSftpStorage(fakeOptions(server, { requestTimeoutMs: 30_000 }));
    storages.push(s);
    const err = await rejection(names(s, 'lock'));
    expect(err.kind).toBe('other');
    expect(err.message).toContain(`${s.location}/locks`);
    expect(err.message).toContain(`more than ${MAX_DIR_ENTRIES} entries`);
    // It stopped asking soon after the limit (a reply or two in flight at most).
    expect(sent).toBeLessThanOrEqual(MAX_DIR_ENTRIES + 2000);
  }, 60_000);

  it('a connection lost in the middle of a directory listing fails it as transient instead of hanging', async () => {
    const server = await startFakeServer({
      sftp: (sftp, client) => {
        let n = 0;
        sftp.on('OPENDIR', (reqid) => sftp.handle(reqid, Buffer.from('dir')));
        sftp.on('READDIR', (reqid) => {
          if (++n === 3) client.end(); // the server goes away mid-listing
          else sftp.name(reqid, [fileEntry(`lock${n}`)]);
        });
        sftp.on('CLOSE', (reqid) => sftp.status(reqid, STATUS_CODE.OK));
      },
    });
    servers.push(server);
    const s = createSftpStorage(fakeOptions(server));
    storages.push(s);
    const err = await rejection(names(s, 'lock'));
    expect(err.kind).toBe('transient');
    expect(err.message).toContain(`${s.location}/locks`);
  }, 20_000);

  it('a listing of many replies that takes longer than requestTimeoutMs in all succeeds while each reply comes in time', async () => {
    const batches = 8;
    const server = await startFakeServer({
      sftp: (sftp) => {
        const served = new Map<string, number>();
        sftp.on('OPENDIR', (reqid) => {
          const h = `dir${served.size}`;
          served.set(h, 0);
          sftp.handle(reqid, Buffer.from(h));
        });
        sftp.on('READDIR', (reqid, handle) => {
          const h = handle.toString();
          const n = served.get(h)!;
          served.set(h, n + 1);
          setTimeout(() => {
            if (n >= batches) return sftp.status(reqid, STATUS_CODE.EOF);
            // The first name again in the last batch: a file renamed over during the listing.
            const batch = [fileEntry(`index${n}`), ...(n === batches - 1 ? [fileEntry('index0')] : [])];
            sftp.name(reqid, batch);
          }, 150);
        });
        sftp.on('CLOSE', (reqid) => sftp.status(reqid, STATUS_CODE.OK));
      },
    });
    servers.push(server);
    // 9 replies of 150 ms each: about 1.4 s in all, more than twice requestTimeoutMs.
    const s = createSftpStorage(fakeOptions(server, { requestTimeoutMs: 600 }));
    storages.push(s);
    const t0 = Date.now();
    expect(await names(s, 'index')).toEqual(Array.from({ length: batches }, (_, i) => `index${i}`).sort());
    expect(Date.now() - t0).toBeGreaterThan(1200);
  }, 30_000);
});

describe('SFTP connection to a server that never answers the SFTP channel', () => {
  it('fails after connectTimeoutMs as transient, and leaves no connection open', async () => {
    // What a login whose forced command ignores the sftp subsystem looks like: SSH works, SFTP never answers.
    const server = await startFakeServer({ silentSftp: true });
    servers.push(server);
    const s = createSftpStorage(fakeOptions(server, { connectTimeoutMs: 1000 }));
    storages.push(s);
    const t0 = Date.now();
    const err = await rejection(s.stat({ type: 'config', name: 'config' }));
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/cannot connect to SFTP server kiwi@127\.0\.0\.1:\d+: timed out after 1000 ms/);
    expect(err.message).not.toContain(PASSWORD);
    // The authenticated SSH session was closed, not left open (it would keep the process alive).
    for (let i = 0; i < 50 && server.openConnections > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.openConnections).toBe(0);
  }, 20_000);
});

describe('SFTP connection to a server without the sftp subsystem', () => {
  it('fails, and closes the SSH session it authenticated', async () => {
    const server = await startFakeServer({ noSftp: true });
    servers.push(server);
    const s = createSftpStorage(fakeOptions(server));
    storages.push(s);
    const err = await rejection(s.stat({ type: 'config', name: 'config' }));
    expect(err.message).toMatch(/cannot connect to SFTP server kiwi@127\.0\.0\.1:\d+: the server refused the SFTP subsystem/);
    // Not transient: asking again cannot help, so the retry layer must not keep trying.
    expect(err.kind).toBe('config');
    for (let i = 0; i < 50 && server.openConnections > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.openConnections).toBe(0);
  }, 20_000);
});

describe('the watchdog after an idle spell', () => {
  it('a request sent after a quiet spell longer than requestTimeoutMs gets its full time to be answered', async () => {
    // Every STAT is answered after 150 ms: in time (requestTimeoutMs 400), and longer than the watchdog's
    // period (100 ms), so a tick always comes while the request is out.
    const server = await startFakeServer({
      sftp: (sftp) => {
        const answer = (reqid: number) =>
          setTimeout(() => sftp.attrs(reqid, { mode: 0o100600, uid: 1000, gid: 1000, size: 7, atime: 0, mtime: 0 }), 150);
        sftp.on('STAT', answer);
        sftp.on('LSTAT', answer);
      },
    });
    servers.push(server);
    const s = createSftpStorage(fakeOptions(server, { requestTimeoutMs: 400, connections: 1 }));
    storages.push(s);
    expect((await s.stat({ type: 'lock', name: 'a' })).size).toBe(7);
    // Idle for longer than requestTimeoutMs: the last reply is now older than the limit.
    await new Promise((r) => setTimeout(r, 700));
    expect((await s.stat({ type: 'lock', name: 'b' })).size).toBe(7);
    expect(server.openConnections).toBe(1);
  }, 20_000);
});

describe('closing when the server went silent', () => {
  it('close() drops a connection whose server never closes its side, instead of waiting for ever', async () => {
    const server = await startFakeServer({
      sftp: (sftp) => {
        sftp.on('STAT', (reqid) => sftp.attrs(reqid, { mode: 0o100600, uid: 1000, gid: 1000, size: 3, atime: 0, mtime: 0 }));
      },
    });
    servers.push(server);
    // A proxy that, once frozen, passes nothing on and never closes the client's connection (a network
    // that dropped while the connection sat idle, as the client sees it).
    let frozen = false;
    const sockets = new Set<Socket>();
    const proxy = createServer({ allowHalfOpen: true }, (client) => {
      const upstream = connect(server.port, '127.0.0.1');
      sockets.add(client).add(upstream);
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
      client.on('data', (d) => {
        if (!frozen) upstream.write(d);
      });
      upstream.on('data', (d) => {
        if (!frozen) client.write(d);
      });
      client.on('end', () => undefined); // half-closed by the client: keep our side open
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const s = createSftpStorage(fakeOptions(server, { port: (proxy.address() as { port: number }).port, connections: 1 }));
      expect((await s.stat({ type: 'lock', name: 'a' })).size).toBe(3);
      frozen = true;
      const started = Date.now();
      await s.close();
      expect(Date.now() - started).toBeLessThan(CLOSE_WAIT_MS + 3000);
    } finally {
      for (const k of sockets) k.destroy();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  }, 30_000);
});

