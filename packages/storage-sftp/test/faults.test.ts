import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { StorageError, isTransientError, withRetry, type RetryInfo, type Storage } from '@kiwi-backup/core';
import { deterministicBytes } from '@kiwi-backup/storage-testkit';
import { describeWithServer, startTcpProxy, type TcpProxy } from '@kiwi-backup/test-servers';
import { createSftpStorage } from '../src/index.js';
import { SSHD_INSTALL_HINT, haveSshd, rejection, sftpOptions, useSshd } from './helpers.js';

const MiB = 1024 * 1024;
const h = (name: string) => ({ type: 'data' as const, name });

async function names(s: Storage): Promise<string[]> {
  const out: string[] = [];
  for await (const f of s.list('data')) out.push(f.name);
  return out.sort();
}

describeWithServer('OpenSSH sshd', haveSshd, SSHD_INSTALL_HINT, () => {
  const server = useSshd();
  let proxy: TcpProxy;
  let proxyKnownHosts: string;
  beforeAll(async () => {
    const srv = server();
    proxy = await startTcpProxy({ targetHost: srv.host, targetPort: srv.port });
    proxyKnownHosts = join(srv.dir, 'known_hosts_proxy');
    writeFileSync(proxyKnownHosts, `[127.0.0.1]:${proxy.port} ${srv.hostPublicKey}\n`);
  });
  afterAll(async () => {
    await proxy?.stop();
  });
  const viaProxy = (path?: string) =>
    createSftpStorage(
      sftpOptions(server(), { port: proxy.port, knownHostsFile: proxyKnownHosts, connections: 1, ...(path && { path }) }),
    );

  it('a connection cut mid-upload is transient; the next call reconnects and succeeds', async () => {
    proxy.setCutAfter(undefined);
    const s = viaProxy();
    try {
      await s.create();
      const data = deterministicBytes(8 * MiB, 'cut-upload');
      const id = 'ab' + '1'.repeat(62);
      proxy.setCutAfter(3 * MiB); // the connection has sent far less than this so far
      const err = await rejection(s.save(h(id), data));
      expect(err.kind).toBe('transient');
      expect(isTransientError(err)).toBe(true);
      expect(err.message).toContain(`data/ab/${id}`);
      expect(proxy.cuts).toBeGreaterThanOrEqual(1);
      // Nothing visible under the final name.
      proxy.setCutAfter(undefined);
      const e2 = await rejection(s.stat(h(id)));
      expect(s.isNotFound(e2)).toBe(true);
      await s.save(h(id), data);
      expect((await s.load(h(id))).equals(data)).toBe(true);
      // The interrupted upload's temp file is not listed.
      expect(await names(s)).toEqual([id]);
    } finally {
      proxy.setCutAfter(undefined);
      await s.close();
    }
  });

  it('a connection cut mid-download is transient; the next load reconnects', async () => {
    const path = sftpOptions(server()).path;
    const s = viaProxy(path);
    try {
      await s.create();
      const data = deterministicBytes(8 * MiB, 'cut-download');
      const id = 'cd' + '2'.repeat(62);
      await s.save(h(id), data);
      await s.close();
      const r = viaProxy(path);
      try {
        proxy.setCutAfter(2 * MiB);
        const err = await rejection(r.load(h(id)));
        expect(err.kind).toBe('transient');
        const ranged = await rejection(r.load(h(id), { offset: 1, length: 6 * MiB }));
        expect(ranged.kind).toBe('transient');
        proxy.setCutAfter(undefined);
        expect((await r.load(h(id))).equals(data)).toBe(true);
        expect((await r.load(h(id), { offset: 12345, length: MiB })).equals(data.subarray(12345, 12345 + MiB))).toBe(true);
      } finally {
        proxy.setCutAfter(undefined);
        await r.close();
      }
    } finally {
      await s.close();
    }
  });

  it('a ranged load into a caller buffer reads into it; after a cut mid-download the buffer is reused', async () => {
    const path = sftpOptions(server()).path;
    const s = viaProxy(path);
    try {
      await s.create();
      const data = deterministicBytes(6 * MiB, 'cut-download-into');
      const id = 'ce' + '3'.repeat(62);
      await s.save(h(id), data);
      const into = Buffer.alloc(5 * MiB + 100, 0xab);
      const range = { offset: 77, length: 5 * MiB };
      const got = await s.load(h(id), { ...range, into });
      // Read straight into the caller's buffer: a view of its first `length` bytes, the rest untouched.
      expect(got.buffer).toBe(into.buffer);
      expect(got.byteOffset).toBe(into.byteOffset);
      expect(got.equals(data.subarray(77, 77 + 5 * MiB))).toBe(true);
      expect(into.subarray(5 * MiB).every((b) => b === 0xab)).toBe(true);

      into.fill(0xcd, 0, 5 * MiB);
      proxy.setCutAfter(2 * MiB);
      const err = await rejection(s.load(h(id), { ...range, into }));
      expect(err.kind).toBe('transient');
      // Once the load rejected, nothing writes into the buffer any more.
      const after = Buffer.from(into);
      await new Promise((r) => setTimeout(r, 100));
      expect(into.equals(after)).toBe(true);
      proxy.setCutAfter(undefined);
      // The retry overwrites whatever the failed attempt left.
      const again = await s.load(h(id), { ...range, into });
      expect(again.equals(data.subarray(77, 77 + 5 * MiB))).toBe(true);
      expect(into.subarray(5 * MiB).every((b) => b === 0xab)).toBe(true);
    } finally {
      proxy.setCutAfter(undefined);
      await s.close();
    }
  });

  it('withRetry rides over a cut connection', async () => {
    const s = viaProxy();
    const retries: RetryInfo[] = [];
    const rs = withRetry(s, {
      baseDelayMs: 5,
      onRetry: (info) => {
        retries.push(info);
        proxy.setCutAfter(undefined); // the fault was a one-off
      },
    });
    try {
      await rs.create();
      const data = deterministicBytes(6 * MiB, 'retry');
      const id = 'ef' + '3'.repeat(62);
      proxy.setCutAfter(2 * MiB);
      await rs.save(h(id), data);
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries[0]!.operation).toBe('save');
      expect(retries[0]!.error).not.toMatch(/PRIVATE|passphrase/);
      proxy.setCutAfter(2 * MiB);
      retries.length = 0;
      expect((await rs.load(h(id))).equals(data)).toBe(true);
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(await names(rs)).toEqual([id]);
    } finally {
      proxy.setCutAfter(undefined);
      await s.close();
    }
  });

  it('sshd stopped mid-sequence: transient errors, then works again after a restart', async () => {
    const srv = server();
    const s = createSftpStorage(sftpOptions(srv, { connections: 2 }));
    try {
      await s.create();
      const files = Array.from({ length: 6 }, (_, i) => ({
        id: `${(16 + i).toString(16)}` + String(i).repeat(62),
        data: deterministicBytes(3 * MiB, `stop-${i}`),
      }));
      // A backup-like sequence: packs upload in parallel; the server dies in the middle.
      const results = await Promise.allSettled(
        files.map(async (f, i) => {
          if (i === 3) await srv.kill();
          await s.save(h(f.id), f.data);
        }),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      expect(failed.length).toBeGreaterThanOrEqual(1);
      for (const r of failed) {
        const err = (r as PromiseRejectedResult).reason;
        expect(err).toBeInstanceOf(StorageError);
        expect(isTransientError(err), String(err)).toBe(true);
      }
      // While it is down: transient (connection refused), never a hang.
      const down = await rejection(s.stat(h(files[0]!.id)));
      expect(down.kind).toBe('transient');
      await srv.restart();
      // Next "backup": everything is saved again (content-addressed, idempotent) and reads back.
      for (const f of files) await s.save(h(f.id), f.data);
      for (const f of files) expect((await s.load(h(f.id))).equals(f.data)).toBe(true);
      expect(await names(s)).toEqual(files.map((f) => f.id).sort());
    } finally {
      if (!srv.running) await srv.restart();
      await s.close();
    }
  });

  it('a server that stops answering is dropped after requestTimeoutMs (transient, no hang)', async () => {
    const srv = server();
    const s = createSftpStorage(sftpOptions(srv, { requestTimeoutMs: 800 }));
    try {
      await s.create();
      // Freeze the daemon and its session processes: requests get no answer.
      srv.pause();
      try {
        const t0 = Date.now();
        const err = await rejection(s.save(h('aa' + '9'.repeat(62)), deterministicBytes(MiB, 'freeze')));
        expect(err.kind).toBe('transient');
        expect(err.message).toMatch(/connection lost/);
        expect(Date.now() - t0).toBeLessThan(10_000);
      } finally {
        srv.resume();
      }
      await s.save(h('aa' + '9'.repeat(62)), deterministicBytes(MiB, 'freeze'));
    } finally {
      await s.close();
    }
  });
});
