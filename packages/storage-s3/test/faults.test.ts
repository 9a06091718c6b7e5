import { createServer, type Socket } from 'node:net';
import { S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { StorageError, isTransientError, withRetry, type Handle, type RetryInfo } from '@kiwi-backup/core';
import { describeWithServer, startS3Server, startTcpProxy, type S3TestServer, type TcpProxy } from '@kiwi-backup/test-servers';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { createS3Storage } from '../src/index.js';
import { freshPrefix, installHint, openOn, patternBytes, serverAvailable } from './helpers.js';

const KiB = 1024;

function expectTransient(err: unknown): void {
  expect(err).toBeInstanceOf(StorageError);
  expect((err as StorageError).kind, (err as Error).message).toBe('transient');
  expect(isTransientError(err)).toBe(true);
}

describeWithServer('S3 test server (s3rver)', serverAvailable, installHint, () => {
  let server: S3TestServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    server = await startS3Server();
    proxy = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: server.port });
  });
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });
  afterEach(() => {
    proxy.setCutAfter(undefined);
    vi.restoreAllMocks();
  });

  /** A storage that reaches the server through the fault-injecting proxy. */
  const viaProxy = (options: Parameters<typeof openOn>[1] = {}) =>
    openOn(server, { endpoint: `http://127.0.0.1:${proxy.port}`, ...options });

  it('a connection cut mid-upload is a transient error; withRetry completes the save once the cuts stop', async () => {
    const prefix = freshPrefix();
    const storage = viaProxy({ prefix });
    await storage.create();
    const h: Handle = { type: 'data', name: 'ab'.padEnd(64, '7') };
    const bytes = patternBytes(1024 * KiB, 21);

    proxy.setCutAfter(200 * KiB);
    const cutsBefore = proxy.cuts;
    const err = await storage.save(h, bytes).catch((e: unknown) => e);
    expectTransient(err);
    expect((err as Error).message).toContain(`data/ab/${h.name}`);
    expect(proxy.cuts).toBeGreaterThan(cutsBefore);

    // Through the shared retry layer: the first attempts are cut, then the network heals.
    const retries: RetryInfo[] = [];
    const retrying = withRetry(storage, {
      maxAttempts: 6,
      baseDelayMs: 1,
      onRetry: (info) => {
        retries.push(info);
        if (retries.length === 2) proxy.setCutAfter(undefined);
      },
    });
    await retrying.save(h, bytes);
    expect(retries.length).toBe(2);
    for (const r of retries) expect(r.operation).toBe('save');

    const direct = openOn(server, { prefix });
    expect((await direct.load(h)).equals(bytes)).toBe(true);
    await direct.close();
    await storage.close();
  });

  it('a cut during a multipart upload is transient, and the retried save stores every byte', async () => {
    const prefix = freshPrefix();
    const storage = viaProxy({ prefix, multipartThreshold: 128 * KiB, partSize: 64 * KiB, partConcurrency: 2 });
    await storage.create();
    const h: Handle = { type: 'data', name: 'cd'.padEnd(64, '8') };
    const bytes = patternBytes(700 * KiB + 5, 33);
    proxy.setCutAfter(100 * KiB);
    const err = await storage.save(h, bytes).catch((e: unknown) => e);
    expectTransient(err);
    expect((err as Error).message).toMatch(/multipart/);

    const retrying = withRetry(storage, { maxAttempts: 4, baseDelayMs: 1, onRetry: () => proxy.setCutAfter(undefined) });
    await retrying.save(h, bytes);
    expect((await retrying.load(h)).equals(bytes)).toBe(true);
    await storage.close();
  });

  it('a connection cut during a download is transient (never a short read)', async () => {
    const prefix = freshPrefix();
    const direct = openOn(server, { prefix });
    await direct.create();
    const h: Handle = { type: 'index', name: 'big-index' };
    const bytes = patternBytes(2048 * KiB, 5);
    await direct.save(h, bytes);
    const storage = viaProxy({ prefix });
    proxy.setCutAfter(300 * KiB);
    const err = await storage.load(h).catch((e: unknown) => e);
    expectTransient(err);
    const rangeErr = await storage.load(h, { offset: 10, length: 1024 * KiB }).catch((e: unknown) => e);
    expectTransient(rangeErr);
    // The same into a caller's buffer (the direct read path of direct-read.ts).
    const into = Buffer.alloc(1024 * KiB);
    const intoErr = await storage.load(h, { offset: 10, length: 1024 * KiB, into }).catch((e: unknown) => e);
    expectTransient(intoErr);
    expect((intoErr as Error).message).toMatch(/of 1048576 body bytes/);
    proxy.setCutAfter(undefined);
    expect((await storage.load(h, { offset: 10, length: 1024 * KiB })).equals(bytes.subarray(10, 10 + 1024 * KiB))).toBe(true);
    const got = await storage.load(h, { offset: 10, length: 1024 * KiB, into });
    expect(got.buffer).toBe(into.buffer);
    expect(got.equals(bytes.subarray(10, 10 + 1024 * KiB))).toBe(true);
    await storage.close();
    await direct.close();
  });

  it('the server stopped mid-upload gives a transient error; after a restart the save completes', async () => {
    const prefix = freshPrefix();
    const storage = openOn(server, { prefix, multipartThreshold: 64 * KiB, partSize: 32 * KiB, partConcurrency: 1 });
    await storage.create();
    const h: Handle = { type: 'data', name: 'ef'.padEnd(64, '6') };
    const bytes = patternBytes(512 * KiB, 77);
    // Kill the server right when the 4th part is about to go out (after 3 parts landed).
    const original = S3Client.prototype.send;
    let parts = 0;
    vi.spyOn(S3Client.prototype, 'send').mockImplementation(async function (this: S3Client, command: unknown, ...rest: unknown[]) {
      if (command instanceof UploadPartCommand && ++parts === 4) await server.halt();
      return (original as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
    } as typeof original);
    const err = await storage.save(h, bytes).catch((e: unknown) => e);
    expectTransient(err);
    expect(parts).toBe(4);
    vi.restoreAllMocks();

    // While it is down, every operation fails transiently (and fast: connection refused).
    expectTransient(await storage.load(h).catch((e: unknown) => e));
    expectTransient(await storage.load(h, { offset: 0, length: 10, into: Buffer.alloc(10) }).catch((e: unknown) => e));
    expectTransient(await storage.stat(h).catch((e: unknown) => e));
    const listErr = await (async () => {
      for await (const _ of storage.list('data')) void _;
    })().catch((e: unknown) => e);
    expectTransient(listErr);

    await server.restart();
    await storage.save(h, bytes);
    expect((await storage.load(h)).equals(bytes)).toBe(true);
    await storage.close();
  });

  it('a server that stops answering hits the socket timeout: a transient error, not a hang', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.resume(); // read and ignore the request, never answer
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const storage = createS3Storage({
      endpoint: `http://127.0.0.1:${port}`,
      bucket: 'b',
      accessKeyId: 'AKID',
      secretAccessKey: 'unused-secret',
      socketTimeoutMs: 300,
    });
    try {
      const started = Date.now();
      const err = await storage.load({ type: 'key', name: 'k' }).catch((e: unknown) => e);
      expectTransient(err);
      const intoErr = await storage.load({ type: 'key', name: 'k' }, { offset: 0, length: 10, into: Buffer.alloc(10) }).catch((e: unknown) => e);
      expectTransient(intoErr);
      expect((intoErr as Error).message).toMatch(/no data from the server for 300 ms/);
      expect(Date.now() - started).toBeLessThan(5000);
      const saveErr = await storage.save({ type: 'key', name: 'k' }, patternBytes(10 * KiB)).catch((e: unknown) => e);
      expectTransient(saveErr);
    } finally {
      await storage.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('withRetry gives up after its attempts with a transient error naming the file', async () => {
    const storage = viaProxy();
    await storage.create();
    proxy.setCutAfter(1000);
    const retrying = withRetry(storage, { maxAttempts: 3, baseDelayMs: 1 });
    const err = await retrying.save({ type: 'snapshot', name: 's1' }, patternBytes(64 * KiB)).catch((e: unknown) => e);
    expectTransient(err);
    expect((err as Error).message).toMatch(/after 3 attempts/);
    expect((err as Error).message).toContain('snapshots/s1');
    await storage.close();
  });
});
