/**
 * list yields only what load reads: objects under a type's prefix that are not its files (a pack
 * under the wrong data/xx/, a key `index/a b`) are skipped with a warning and never fail the listing.
 */
import { createServer } from 'node:http';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { StorageError } from '@kiwi-backup/core';
import type { FileType, Storage } from '@kiwi-backup/core';
import { describeWithServer, startS3Server, type S3TestServer } from '@kiwi-backup/test-servers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Storage } from '../src/index.js';
import { matchKey } from '../src/list.js';
import { freshPrefix, installHint, openOn, patternBytes, rawClient, serverAvailable } from './helpers.js';

async function listed(s: Storage, type: FileType): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const f of s.list(type)) {
    expect(out.has(f.name), `${f.name} listed twice`).toBe(false);
    out.set(f.name, f.size);
  }
  return out;
}

describe('matchKey', () => {
  const pack = 'a8'.repeat(32);
  it('takes a pack only under data/<its first two hex digits>/', () => {
    expect(matchKey('data', `a8/${pack}`, 7)).toEqual({ name: pack, size: 7 });
    expect(matchKey('data', `00/${pack}`, 2)).toBe('a pack of that name belongs in data/a8/, where it is loaded from');
    expect(matchKey('data', pack, 2)).toBe('a pack of that name belongs in data/a8/, where it is loaded from');
    expect(matchKey('data', `a8/old/${pack}`, 2)).toBe('a pack of that name belongs in data/a8/, where it is loaded from');
    expect(matchKey('data', 'a8/a8', 2)).toBe('not a pack file name (64 lowercase hex digits)');
    expect(matchKey('data', `A8/${pack.toUpperCase()}`, 2)).toBe('not a pack file name (64 lowercase hex digits)');
    expect(matchKey('data', `a8/${pack}.bak`, 2)).toBe('not a pack file name (64 lowercase hex digits)');
  });
  it('takes other files by the names assertValidHandle accepts; folder markers and config.* need no word', () => {
    expect(matchKey('index', 'abc', 3)).toEqual({ name: 'abc', size: 3 });
    expect(matchKey('index', 'a b', 3)).toBe('not a valid index file name');
    expect(matchKey('key', '..', 3)).toBe('not a valid key file name');
    expect(matchKey('snapshot', 'old/abc', 3)).toBe("not a snapshot file (a key below snapshots/'s own files)");
    expect(matchKey('data', 'a8/', 0)).toBeUndefined();
    expect(matchKey('index', '', 0)).toBeUndefined();
    expect(matchKey('config', '', 5)).toEqual({ name: 'config', size: 5 });
    expect(matchKey('config', '.bak', 5)).toBeUndefined();
  });
});

describe('a server whose listing never ends', () => {
  it('sends the same continuation token again: the listing fails naming it instead of going round forever', async () => {
    let pages = 0;
    // Every ListObjectsV2 answer: one index file, "truncated", and always the same next token.
    const server = createServer((req, res) => {
      pages++;
      req.resume();
      const n = pages;
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>index/</Prefix>` +
          `<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>same-token</NextContinuationToken>` +
          `<Contents><Key>index/f${n}</Key><Size>10</Size></Contents></ListBucketResult>`,
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const storage = createS3Storage({ endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`, bucket: 'b', accessKeyId: 'AKID', secretAccessKey: 'unused-secret' });
    try {
      const names: string[] = [];
      const err = await (async () => {
        for await (const f of storage.list('index')) names.push(f.name);
      })().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as Error).message).toMatch(/list index at s3:.*continuation token it had sent before/);
      // The first page with the token, the second that sent it back: two requests, not thousands.
      expect(pages).toBe(2);
      expect(names).toEqual(['f1', 'f2']);
    } finally {
      await storage.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describeWithServer('S3 test server (s3rver)', serverAvailable, installHint, () => {
  let server: S3TestServer;
  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('skips misplaced packs and invalid names, warning once per object', async () => {
    const prefix = freshPrefix();
    const warnings: string[] = [];
    const storage = openOn(server, { prefix, onWarning: (m) => warnings.push(m) });
    const raw = rawClient(server);
    const put = (key: string, body: Uint8Array | string) => raw.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${prefix}/${key}`, Body: Buffer.from(body) }));
    try {
      await storage.create();
      const pack = patternBytes(5000, 3);
      const id = 'a8'.repeat(32);
      await storage.save({ type: 'data', name: id }, pack);
      await storage.save({ type: 'index', name: 'cd'.repeat(32) }, Buffer.from('index'));
      // A 2-byte copy under the real pack's name, a pack at the top of data/, names core refuses, a folder marker.
      await put(`data/00/${id}`, 'x\n');
      await put(`data/${'bb'.repeat(32)}`, 'moved');
      await put('data/ab/ab', 'x');
      await put('index/a b', 'x');
      await put('index/', '');
      expect(await listed(storage, 'data')).toEqual(new Map([[id, 5000]]));
      expect(await listed(storage, 'index')).toEqual(new Map([['cd'.repeat(32), 5]]));
      expect((await storage.stat({ type: 'data', name: id })).size).toBe(5000);
      const loc = storage.location;
      expect(warnings.sort()).toEqual(
        [
          `list data: skipped ${loc}/data/00/${id}: a pack of that name belongs in data/a8/, where it is loaded from`,
          `list data: skipped ${loc}/data/${'bb'.repeat(32)}: a pack of that name belongs in data/bb/, where it is loaded from`,
          `list data: skipped ${loc}/data/ab/ab: not a pack file name (64 lowercase hex digits)`,
          `list index: skipped ${loc}/index/a b: not a valid index file name`,
        ].sort(),
      );
      await listed(storage, 'data');
      expect(warnings).toHaveLength(4);
    } finally {
      raw.destroy();
      await storage.close();
    }
  });

  it('rejects an onWarning option that is not a function', () => {
    expect(() => openOn(server, { onWarning: 'log' as never })).toThrow(/onWarning must be a function/);
  });
});
