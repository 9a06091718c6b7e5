import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithServer } from '../src/require.js';
import { S3_SERVER_INSTALL_HINT, s3ServerAvailable, startS3Server, type S3TestServer } from '../src/s3.js';

function client(server: S3TestServer, secret = server.secretAccessKey): S3Client {
  const config: S3ClientConfig = {
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: secret },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  return new S3Client(config);
}

describeWithServer('S3 test server (s3rver)', s3ServerAvailable(), S3_SERVER_INSTALL_HINT, () => {
  let server: S3TestServer;
  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('serves the bucket with the generated credentials and rejects others', async () => {
    const s3 = client(server);
    await s3.send(new HeadBucketCommand({ Bucket: server.bucket }));
    const body = Buffer.from('hello s3rver');
    await s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'a/b', Body: body, ContentLength: body.length }));
    const got = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'a/b' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);

    const bad = client(server, 'not-the-secret');
    await expect(bad.send(new HeadBucketCommand({ Bucket: server.bucket }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 403 },
    });
    s3.destroy();
    bad.destroy();
  });

  it('serves whole objects and ranges byte for byte while answers share reused buffers', async () => {
    const s3 = client(server);
    // Objects of different sizes, one above the 16 MiB served from pooled buffers.
    const sizes = [0, 1, 4096, 300_000, 3 * 1024 * 1024 + 17, 17 * 1024 * 1024 + 5, 12 * 1024 * 1024, 11 * 1024 * 1024 + 3];
    const objects = sizes.map((n) => randomBytes(n));
    await Promise.all(
      objects.map((body, i) =>
        s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: `pool/${i}`, Body: body, ContentLength: body.length })),
      ),
    );
    const get = async (i: number, range?: [number, number]): Promise<Buffer> => {
      const got = await s3.send(
        new GetObjectCommand({ Bucket: server.bucket, Key: `pool/${i}`, ...(range ? { Range: `bytes=${range[0]}-${range[1]}` } : {}) }),
      );
      return Buffer.from(await got.Body!.transformToByteArray());
    };
    // Many reads at once, whole and ranged, so that buffers are handed from answer to answer.
    for (let round = 0; round < 3; round++) {
      const jobs: Promise<void>[] = [];
      objects.forEach((body, i) => {
        jobs.push(get(i).then((b) => expect(b.equals(body), `object ${i} whole`).toBe(true)));
        if (body.length > 2) {
          const a = Math.floor(body.length / 3);
          const z = body.length - 2;
          jobs.push(get(i, [a, z]).then((b) => expect(b.equals(body.subarray(a, z + 1)), `object ${i} range`).toBe(true)));
        }
      });
      await Promise.all(jobs);
    }
    // 'bytes=0-0' is one byte, as on S3.
    expect((await get(4, [0, 0])).equals(objects[4]!.subarray(0, 1))).toBe(true);
    const head = await s3.send(new HeadObjectCommand({ Bucket: server.bucket, Key: 'pool/4' }));
    expect(head.ContentLength).toBe(objects[4]!.length);

    // An answer the client has not read yet keeps its buffer: other answers that need a buffer
    // as large meanwhile get their own, and the stalled one still arrives intact.
    const stalled = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'pool/6' }));
    await new Promise((r) => setTimeout(r, 200)); // the server has read the object and is blocked on the socket
    const meanwhile = await Promise.all([get(7), get(7), get(6)]);
    expect(meanwhile[0]!.equals(objects[7]!)).toBe(true);
    expect(meanwhile[2]!.equals(objects[6]!)).toBe(true);
    expect(Buffer.from(await stalled.Body!.transformToByteArray()).equals(objects[6]!)).toBe(true);

    // A client that goes away in the middle of an answer does not break later answers.
    const cut = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'pool/5' }));
    const stream = cut.Body as Readable;
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    const again = await Promise.all([get(5), get(3), get(4)]);
    expect(again[0]!.equals(objects[5]!)).toBe(true);
    expect(again[1]!.equals(objects[3]!)).toBe(true);
    expect(again[2]!.equals(objects[4]!)).toBe(true);
    s3.destroy();
  });

  it('a metadata or MD5 file torn by a kill is repaired when read, not answered with HTTP 500', async () => {
    const s3 = client(server);
    const body = randomBytes(5000);
    await s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'torn/x', Body: body, ContentLength: body.length }));
    const file = (resource: string): string => join(server.directory, server.bucket, 'torn', `x._S3rver_${resource}`);
    expect((await readFile(file('object'))).equals(body)).toBe(true); // the layout this test relies on
    await writeFile(file('metadata.json'), '{"content-ty');
    await writeFile(file('object.md5'), '');
    // HeadBucket is routed to the bucket listing, which reads every object's metadata.
    await s3.send(new HeadBucketCommand({ Bucket: server.bucket }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: 'torn/' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['torn/x']);
    const head = await s3.send(new HeadObjectCommand({ Bucket: server.bucket, Key: 'torn/x' }));
    expect(head.ETag).toBe(`"${createHash('md5').update(body).digest('hex')}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'torn/x' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    s3.destroy();
  });

  it('killed in the middle of a burst of PUTs: after restart the bucket lists and every listed object reads back whole', async () => {
    for (let round = 0; round < 3; round++) {
      const s3 = client(server);
      const bodies = new Map<string, Buffer[]>(); // every content PUT (or about to be) under a key
      const puts: Promise<unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        const key = `burst/${round}/${i}`;
        const body = randomBytes(64 * 1024 + ((i * 7919) % 900_000));
        // Some keys are written twice, as Kiwi rewrites a lock file.
        const second = i % 5 === 0 ? randomBytes(body.length) : undefined;
        bodies.set(key, second ? [body, second] : [body]);
        puts.push(
          s3
            .send(new PutObjectCommand({ Bucket: server.bucket, Key: key, Body: body, ContentLength: body.length }))
            .then(() => {
              if (!second) return;
              return s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: key, Body: second, ContentLength: second.length }));
            })
            .catch(() => undefined),
        );
      }
      await new Promise((r) => setTimeout(r, 20 + round * 40));
      await server.halt();
      await Promise.all(puts);
      s3.destroy();

      await server.restart();
      const s3b = client(server);
      await s3b.send(new HeadBucketCommand({ Bucket: server.bucket }));
      const listed = await s3b.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: `burst/${round}/` }));
      for (const o of listed.Contents ?? []) {
        const got = await s3b.send(new GetObjectCommand({ Bucket: server.bucket, Key: o.Key! }));
        const bytes = Buffer.from(await got.Body!.transformToByteArray());
        // Whole: the bytes of one of the PUTs of that key, with that content's ETag.
        const key = o.Key!;
        expect(bodies.get(key)!.some((c) => c.equals(bytes)), `${key} is whole`).toBe(true);
        expect(got.ETag, `${key} ETag`).toBe(`"${createHash('md5').update(bytes).digest('hex')}"`);
      }
      s3b.destroy();
    }
  });

  it('halt() makes it unreachable; restart() brings it back on the same port with its data', async () => {
    const s3 = client(server);
    const port = server.port;
    await server.halt();
    await expect(s3.send(new HeadBucketCommand({ Bucket: server.bucket }))).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    await server.restart();
    expect(server.port).toBe(port);
    const got = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'a/b' }));
    expect(await got.Body!.transformToString()).toBe('hello s3rver');
    s3.destroy();
  });
});
