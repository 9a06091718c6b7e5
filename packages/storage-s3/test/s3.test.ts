import { createHash } from 'node:crypto';
import net from 'node:net';
import { inspect } from 'node:util';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { StorageError, type Handle } from '@kiwi-backup/core';
import { describeWithServer, startS3Server, type S3TestServer } from '@kiwi-backup/test-servers';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { openS3Storage } from '../src/index.js';
import { freshPrefix, installHint, openOn, patternBytes, rawClient, serverAvailable } from './helpers.js';

const KiB = 1024;

function dataHandle(i: number): Handle {
  const hex = i.toString(16).padStart(4, '0');
  return { type: 'data', name: `${hex}${'c'.repeat(60)}` };
}

/** Every command the adapter sends (S3Client.send is shared with the adapter's client). */
function spySend() {
  return vi.spyOn(S3Client.prototype, 'send');
}

function commandsOf(spy: ReturnType<typeof spySend>, type: new (...args: never[]) => unknown): Array<{ input: Record<string, unknown> }> {
  return spy.mock.calls.map((c) => c[0] as unknown).filter((c) => c instanceof type) as Array<{ input: Record<string, unknown> }>;
}

describeWithServer('S3 test server (s3rver)', serverAvailable, installHint, () => {
  let server: S3TestServer;
  let raw: S3Client;
  beforeAll(async () => {
    server = await startS3Server();
    raw = rawClient(server);
  });
  afterAll(async () => {
    raw?.destroy();
    await server?.stop();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  async function rawGet(key: string): Promise<Buffer> {
    const res = await raw.send(new GetObjectCommand({ Bucket: server.bucket, Key: key }));
    return Buffer.from(await res.Body!.transformToByteArray());
  }

  it('stores every byte exactly under <prefix>/<handlePath>, by single PUT and by multipart', async () => {
    const prefix = freshPrefix();
    const storage = openOn(server, { prefix, multipartThreshold: 256 * KiB, partSize: 64 * KiB, partConcurrency: 3 });
    const spy = spySend();
    await storage.create();
    const cases: Array<[Handle, Buffer]> = [
      [{ type: 'config', name: 'config' }, patternBytes(0)],
      [{ type: 'key', name: 'k1' }, patternBytes(1, 7)],
      [{ type: 'index', name: 'i1' }, patternBytes(256 * KiB - 1, 3)], // just below the threshold: one PUT
      [{ type: 'data', name: 'ab'.padEnd(64, '1') }, patternBytes(256 * KiB, 5)], // at the threshold: 4 parts
      [{ type: 'data', name: 'cd'.padEnd(64, '2') }, patternBytes(1024 * KiB + 7, 9)], // 17 parts, short last part
    ];
    for (const [h, bytes] of cases) await storage.save(h, bytes);

    const parts = commandsOf(spy, UploadPartCommand);
    expect(parts.length).toBe(4 + 17);
    for (const p of parts) expect(Buffer.isBuffer(p.input.Body)).toBe(true);

    const keys = [
      `${prefix}/config`,
      `${prefix}/keys/k1`,
      `${prefix}/index/i1`,
      `${prefix}/data/ab/${'ab'.padEnd(64, '1')}`,
      `${prefix}/data/cd/${'cd'.padEnd(64, '2')}`,
    ];
    for (const [i, [h, bytes]] of cases.entries()) {
      // The raw object (read without the adapter) holds exactly the bytes: no aws-chunked framing.
      expect((await rawGet(keys[i]!)).equals(bytes), keys[i]).toBe(true);
      expect((await storage.load(h)).equals(bytes)).toBe(true);
      expect((await storage.stat(h)).size).toBe(bytes.length);
    }
    await storage.close();
  });

  it('contentMD5: true sends the MD5 of each PUT body and each part; by default the signed SHA-256 is the checksum', async () => {
    const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('base64');
    const withMd5 = openOn(server, { contentMD5: true, multipartThreshold: 100 * KiB, partSize: 40 * KiB });
    await withMd5.create();
    let spy = spySend();
    const small = patternBytes(1000, 4);
    const big = patternBytes(130 * KiB, 8);
    await withMd5.save({ type: 'key', name: 'md5-small' }, small);
    await withMd5.save({ type: 'data', name: 'fe'.padEnd(64, '5') }, big);
    const put = commandsOf(spy, PutObjectCommand);
    expect(put.map((c) => c.input.ContentMD5)).toEqual([md5(small)]);
    expect(put[0]!.input.ContentLength).toBe(1000);
    const parts = commandsOf(spy, UploadPartCommand);
    expect(parts.map((c) => c.input.ContentMD5)).toEqual([0, 1, 2, 3].map((i) => md5(big.subarray(i * 40 * KiB, (i + 1) * 40 * KiB))));
    expect((await withMd5.load({ type: 'data', name: 'fe'.padEnd(64, '5') })).equals(big)).toBe(true);
    await withMd5.close();

    spy.mockRestore();
    spy = spySend();
    const plain = openOn(server);
    await plain.save({ type: 'key', name: 'plain' }, small);
    const plainPut = commandsOf(spy, PutObjectCommand);
    expect(plainPut[0]!.input.ContentMD5).toBeUndefined();
    expect(Buffer.isBuffer(plainPut[0]!.input.Body)).toBe(true);
    await plain.close();
  });

  it('ranged loads return exactly the requested bytes, across multipart part boundaries', async () => {
    const storage = openOn(server, { multipartThreshold: 128 * KiB, partSize: 50 * KiB });
    await storage.create();
    const h: Handle = { type: 'data', name: 'ef'.padEnd(64, '3') };
    const bytes = patternBytes(300 * KiB + 11, 11);
    await storage.save(h, bytes);
    const ranges: Array<[number, number]> = [
      [0, 1],
      [50 * KiB - 3, 7],
      [100 * KiB, 100 * KiB],
      [bytes.length - 1, 1],
      [bytes.length, 0],
      [12345, 0],
    ];
    for (const [offset, length] of ranges) {
      const got = await storage.load(h, { offset, length });
      expect(got.equals(bytes.subarray(offset, offset + length)), `${offset}+${length}`).toBe(true);
    }
    expect((await storage.load(h, { offset: 1000 })).equals(bytes.subarray(1000))).toBe(true);
    expect((await storage.load(h, { offset: bytes.length })).length).toBe(0);
    await expect(storage.load(h, { offset: bytes.length - 5, length: 6 })).rejects.toThrow(/past the end/);
    await expect(storage.load(h, { offset: bytes.length + 1 })).rejects.toThrow(/past the end/);
    await expect(storage.load(h, { offset: bytes.length + 1, length: 0 })).rejects.toThrow(/past the end/);
    await storage.close();
  });

  it('a ranged load with into reads the response body into it (a view of its first length bytes)', async () => {
    const storage = openOn(server, { multipartThreshold: 128 * KiB, partSize: 50 * KiB });
    await storage.create();
    const h: Handle = { type: 'data', name: 'fa'.padEnd(64, '4') };
    const bytes = patternBytes(300 * KiB + 11, 13);
    await storage.save(h, bytes);
    const into = Buffer.alloc(200 * KiB, 0xab);
    const connect = vi.spyOn(net, 'connect');
    for (const [offset, length] of [
      [50 * KiB - 3, 150 * KiB],
      [7, 1],
      [bytes.length - 200 * KiB, 200 * KiB],
    ] as Array<[number, number]>) {
      const tail = Buffer.from(into.subarray(length));
      const got = await storage.load(h, { offset, length, into });
      expect(got.buffer).toBe(into.buffer);
      expect(got.byteOffset).toBe(into.byteOffset);
      expect(got.equals(bytes.subarray(offset, offset + length)), `${offset}+${length}`).toBe(true);
      expect(into.subarray(length).equals(tail)).toBe(true);
    }
    // The bodies came straight off the adapter's own kept-alive connection (direct-read.ts), not Node's HTTP client.
    expect(connect).toHaveBeenCalledTimes(1);
    // Too short, or no length: a buffer of its own, and into is not touched.
    const short = Buffer.alloc(99, 0xab);
    const own = await storage.load(h, { offset: 1, length: 100, into: short });
    expect(own.buffer).not.toBe(short.buffer);
    expect(own.equals(bytes.subarray(1, 101))).toBe(true);
    const rest = await storage.load(h, { offset: bytes.length - 50, into: short });
    expect(rest.equals(bytes.subarray(bytes.length - 50))).toBe(true);
    expect(short.every((b) => b === 0xab)).toBe(true);
    // A range past the end still rejects.
    await expect(storage.load(h, { offset: bytes.length - 5, length: 6, into })).rejects.toThrow(/past the end/);
    await storage.close();
  });

  it('list pages through continuation tokens and yields each file once', async () => {
    const storage = openOn(server, { listPageSize: 7 });
    await storage.create();
    const names = new Set<string>();
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const h = dataHandle(i);
        names.add(h.name);
        await storage.save(h, patternBytes(i + 1, i + 1));
      }),
    );
    await storage.save({ type: 'snapshot', name: 's1' }, Buffer.from('snap'));
    const spy = spySend();
    const listed: string[] = [];
    for await (const info of storage.list('data')) {
      listed.push(info.name);
      expect(info.size).toBe(parseInt(info.name.slice(0, 4), 16) + 1);
    }
    expect(listed.sort()).toEqual([...names].sort());
    const pages = commandsOf(spy, ListObjectsV2Command);
    expect(pages.length).toBe(Math.ceil(40 / 7));
    for (const p of pages) expect(p.input.MaxKeys).toBe(7);

    const snaps: string[] = [];
    for await (const info of storage.list('snapshot')) snaps.push(info.name);
    expect(snaps).toEqual(['s1']);
    await storage.close();
  });

  it('removeMany deletes in batches of at most 1000 keys; missing keys are fine', async () => {
    const storage = openOn(server);
    await storage.create();
    const present = [dataHandle(1), dataHandle(2), { type: 'index', name: 'x1' } as Handle];
    for (const h of present) await storage.save(h, Buffer.from('bye'));
    const keep: Handle = { type: 'index', name: 'keep' };
    await storage.save(keep, Buffer.from('stay'));
    const spy = spySend();
    const many = [...present, ...Array.from({ length: 2100 }, (_, i) => dataHandle(1000 + i))];
    await storage.removeMany(many);
    const batches = commandsOf(spy, DeleteObjectsCommand);
    expect(batches.map((b) => (b.input.Delete as { Objects: unknown[] }).Objects.length)).toEqual([1000, 1000, 103]);
    for (const h of present) await expect(storage.stat(h)).rejects.toSatisfy((e) => storage.isNotFound(e));
    expect((await storage.load(keep)).toString()).toBe('stay');
    // remove() of a missing file is not-found, as the contract says (S3 itself would not complain).
    await expect(storage.remove(present[0]!)).rejects.toSatisfy((e) => storage.isNotFound(e));
    await storage.close();
  });

  it('a failed multipart upload is aborted and the error propagates', async () => {
    const storage = openOn(server, { multipartThreshold: 64 * KiB, partSize: 16 * KiB, partConcurrency: 2 });
    await storage.create();
    const original = S3Client.prototype.send;
    let partCalls = 0;
    const spy = vi.spyOn(S3Client.prototype, 'send').mockImplementation(function (this: S3Client, command: unknown, ...rest: unknown[]) {
      if (command instanceof UploadPartCommand && ++partCalls === 3) {
        return Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
      }
      return (original as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
    } as typeof original);
    const h: Handle = { type: 'data', name: 'aa'.padEnd(64, '9') };
    const err = await storage.save(h, patternBytes(200 * KiB, 2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('transient');
    expect((err as Error).message).toMatch(/multipart/);
    expect((err as Error).message).toContain(`data/aa/${h.name}`);
    const aborts = commandsOf(spy, AbortMultipartUploadCommand);
    expect(aborts.length).toBe(1);
    expect(typeof aborts[0]!.input.UploadId).toBe('string');
    spy.mockRestore();
    // Nothing visible was left behind.
    await expect(storage.stat(h)).rejects.toSatisfy((e) => storage.isNotFound(e));
    await storage.close();
  });

  it('a wrong secret gives an auth error naming endpoint and bucket, never the secret', async () => {
    const secret = 'WRONG-secret-0123456789-abcdefghijklmnop';
    const storage = openOn(server, { secretAccessKey: secret });
    for (const op of [
      () => storage.create(),
      () => storage.save({ type: 'key', name: 'k' }, Buffer.from('x')),
      () => storage.load({ type: 'key', name: 'k' }),
      () => storage.load({ type: 'key', name: 'k' }, { offset: 0, length: 1, into: Buffer.alloc(1) }),
      async () => {
        for await (const _ of storage.list('snapshot')) void _;
      },
    ]) {
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StorageError);
      const e = err as StorageError;
      expect(e.kind).toBe('auth');
      expect(e.message).toContain(server.endpoint);
      expect(e.message).toContain(`"${server.bucket}"`);
      expect(e.message).toMatch(/access denied/i);
      for (const text of [e.message, e.stack ?? '', inspect(e, { depth: 20 }), JSON.stringify(e)]) {
        expect(text).not.toContain(secret);
        expect(text).not.toContain(server.secretAccessKey);
      }
    }
    await storage.close();
  });

  it('an unknown access key id is an auth error too', async () => {
    const storage = openOn(server, { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'whatever-secret' });
    const err = await storage.create().catch((e: unknown) => e);
    expect((err as StorageError).kind).toBe('auth');
    expect((err as Error).message).not.toContain('whatever-secret');
    await storage.close();
  });

  it('a missing bucket is a config error unless createBucket is set', async () => {
    const bucket = `missing-${freshPrefix('b')}`;
    const storage = openOn(server, { bucket });
    const err = await storage.create().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).kind).toBe('config');
    expect((err as Error).message).toContain(`bucket "${bucket}" does not exist at ${server.endpoint}`);
    const saveErr = await storage.save({ type: 'key', name: 'k' }, Buffer.from('x')).catch((e: unknown) => e);
    expect((saveErr as StorageError).kind).toBe('config');
    expect((saveErr as Error).message).toContain(`bucket "${bucket}" does not exist`);
    expect(storage.isNotFound(saveErr)).toBe(false);
    await storage.close();

    const creating = openOn(server, { bucket, createBucket: true });
    await creating.create();
    await creating.create(); // idempotent
    await creating.save({ type: 'key', name: 'k' }, Buffer.from('now it works'));
    expect((await creating.load({ type: 'key', name: 'k' })).toString()).toBe('now it works');
    await creating.close();
  });

  it('opens from a repository URL; location carries no credentials', async () => {
    const prefix = freshPrefix();
    const url = `s3:${server.endpoint}/${server.bucket}/${prefix}`;
    const storage = openS3Storage(url, { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey }, {});
    expect(storage.location).toBe(url);
    expect(storage.location).not.toContain(server.secretAccessKey);
    await storage.create();
    await storage.save({ type: 'lock', name: 'l1' }, Buffer.from('lock'));
    expect((await rawGet(`${prefix}/locks/l1`)).toString()).toBe('lock');
    await storage.close();
  });

  it('takes credentials from the given environment', async () => {
    const storage = openS3Storage(
      `s3:${server.endpoint}/${server.bucket}/${freshPrefix()}`,
      {},
      { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey, AWS_REGION: 'us-east-1' },
    );
    await storage.create();
    await storage.save({ type: 'key', name: 'env' }, Buffer.from('env creds'));
    expect((await storage.load({ type: 'key', name: 'env' })).toString()).toBe('env creds');
    await storage.close();
  });
});
