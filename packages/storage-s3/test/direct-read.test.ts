import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isTransientError } from '@kiwi-backup/core';
import {
  DirectReadHandler,
  requestTarget,
  type BodySink,
  type HttpRequestLike,
  type HttpResponseLike,
  type InnerHandler,
} from '../src/direct-read.js';
import { patternBytes } from './helpers.js';

const fixtures = join(import.meta.dirname, 'fixtures');
const cert = readFileSync(join(fixtures, 'localhost-cert.pem'));
const key = readFileSync(join(fixtures, 'localhost-key.pem'));

/** What a scripted server does with one request (its head, as text). */
type Respond = (socket: net.Socket, head: string, n: number) => void;

/** A raw HTTP/1.1 server whose answers the test scripts byte by byte; counts connections and requests. */
async function scriptedServer(respond: Respond, secure = false) {
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        respond(socket, head, ++requests);
      }
    });
  };
  const server = secure ? tls.createServer({ key, cert }, onSocket) : net.createServer(onSocket);
  let connections = 0;
  server.on(secure ? 'secureConnection' : 'connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  servers.push({ close: () => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }) });
  return {
    port,
    get requests() {
      return requests;
    },
    get connections() {
      return connections;
    },
    sockets,
  };
}

const servers: Array<{ close(): Promise<void> }> = [];
const handlers: DirectReadHandler[] = [];
afterEach(async () => {
  for (const h of handlers.splice(0)) h.destroy();
  for (const s of servers.splice(0)) await s.close();
});

/** An inner handler standing in for NodeHttpHandler: records what falls back to it. */
function fakeInner() {
  const calls: HttpRequestLike[] = [];
  const inner: InnerHandler = {
    async handle(request) {
      calls.push(request);
      return { response: { statusCode: 299, headers: {}, body: null as unknown as HttpResponseLike['body'] } };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
    destroy() {},
  };
  return { inner, calls };
}

function handlerFor(inner: InnerHandler, opts: Partial<ConstructorParameters<typeof DirectReadHandler>[1]> = {}) {
  const h = new DirectReadHandler(inner, { connectionTimeout: 2000, socketTimeout: 2000, maxSockets: 4, ...opts });
  handlers.push(h);
  return h;
}

function get(port: number, path = '/bucket/key', protocol = 'http:'): HttpRequestLike {
  return {
    method: 'GET',
    protocol,
    hostname: protocol === 'https:' ? 'localhost' : '127.0.0.1',
    port,
    path,
    query: { 'x-id': 'GetObject' },
    headers: { host: `127.0.0.1:${port}`, range: 'bytes=0-99', authorization: 'AWS4-HMAC-SHA256 Credential=…' },
  };
}

/** Answer `body` with a Content-Length, written in pieces of `piece` bytes. */
function answer(socket: net.Socket, body: Buffer, { status = '206 Partial Content', piece = 7000, extra = '' } = {}) {
  const head = Buffer.from(`HTTP/1.1 ${status}\r\ncontent-length: ${body.length}\r\nx-amz-request-id: abc\r\n${extra}\r\n`, 'latin1');
  const all = Buffer.concat([head, body]);
  for (let i = 0; i < all.length; i += piece) socket.write(all.subarray(i, i + piece));
}

async function readAll(body: HttpResponseLike['body']): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

describe('DirectReadHandler', () => {
  it('reads a 2xx body straight into the sink, in many socket reads, and reuses the connection', async () => {
    const body = patternBytes(300_000, 3);
    const heads: string[] = [];
    const srv = await scriptedServer((s, head) => {
      heads.push(head);
      answer(s, body, { piece: 4099 });
    });
    const { inner, calls } = fakeInner();
    const h = handlerFor(inner);
    for (let i = 0; i < 3; i++) {
      const sink: BodySink = { buffer: Buffer.alloc(400_000, 0xee) };
      const { response } = await h.handle(get(srv.port), h.optionsFor(sink));
      expect(response.statusCode).toBe(206);
      expect(response.headers['content-length']).toBe('300000');
      expect(response.headers['x-amz-request-id']).toBe('abc');
      expect(sink.received).toBe(body.length);
      expect(sink.buffer.subarray(0, body.length).equals(body)).toBe(true);
      expect(sink.buffer.subarray(body.length).every((b) => b === 0xee)).toBe(true); // nothing past the body
      expect((await readAll(response.body)).length).toBe(0);
    }
    expect(calls).toHaveLength(0);
    expect(srv.connections).toBe(1);
    // The request went out as the SDK built it: path, sorted and escaped query, every header.
    expect(heads[0]).toMatch(/^GET \/bucket\/key\?x-id=GetObject HTTP\/1\.1\r\n/);
    expect(heads[0]).toContain('\r\nrange: bytes=0-99');
    expect(heads[0]).toContain('\r\nauthorization: AWS4-HMAC-SHA256');
  });

  it('an error status with a small body goes to the SDK as it came, without asking again', async () => {
    const xml = '<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>missing</Message></Error>';
    const srv = await scriptedServer((s) => answer(s, Buffer.from(xml), { status: '404 Not Found', extra: 'content-type: application/xml\r\n' }));
    const { inner, calls } = fakeInner();
    const h = handlerFor(inner);
    const sink: BodySink = { buffer: Buffer.alloc(10) };
    const { response } = await h.handle(get(srv.port), h.optionsFor(sink));
    expect(response.statusCode).toBe(404);
    expect(response.reason).toBe('Not Found');
    expect((await readAll(response.body)).toString()).toBe(xml);
    expect(sink.received).toBeUndefined();
    expect(sink.buffer.every((b) => b === 0)).toBe(true);
    expect(calls).toHaveLength(0);
    expect(srv.requests).toBe(1);
  });

  it('a chunked answer, or a body larger than the sink, is asked again through NodeHttpHandler', async () => {
    const srv = await scriptedServer((s, _head, n) => {
      if (n === 1) s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      else answer(s, Buffer.alloc(50), { status: '200 OK' });
    });
    const { inner, calls } = fakeInner();
    const h = handlerFor(inner);
    const first: BodySink = { buffer: Buffer.alloc(100) };
    expect((await h.handle(get(srv.port), h.optionsFor(first))).response.statusCode).toBe(299);
    const second: BodySink = { buffer: Buffer.alloc(49) };
    expect((await h.handle(get(srv.port), h.optionsFor(second))).response.statusCode).toBe(299);
    expect(calls).toHaveLength(2);
    expect(first.received).toBeUndefined();
    expect(second.received).toBeUndefined();
    expect(second.buffer.every((b) => b === 0)).toBe(true);
  });

  it('requests without a sink, and other methods, go through NodeHttpHandler', async () => {
    const { inner, calls } = fakeInner();
    const h = handlerFor(inner);
    await h.handle(get(1));
    await h.handle({ ...get(1), method: 'PUT' }, h.optionsFor({ buffer: Buffer.alloc(1) }));
    await h.handle({ ...get(1), headers: { evil: 'a\r\nb: c' } }, h.optionsFor({ buffer: Buffer.alloc(1) }));
    expect(calls).toHaveLength(3);
  });

  it('a kept-alive connection the server closed meanwhile is replaced without an error', async () => {
    const body = patternBytes(1000);
    const srv = await scriptedServer((s) => answer(s, body));
    const { inner } = fakeInner();
    const h = handlerFor(inner);
    const sink = () => ({ buffer: Buffer.alloc(1000) }) as BodySink;
    await h.handle(get(srv.port), h.optionsFor(sink()));
    for (const s of srv.sockets) s.destroy(); // the server drops its idle connection
    await new Promise((r) => setTimeout(r, 50));
    const again = sink();
    await h.handle(get(srv.port), h.optionsFor(again));
    expect(again.buffer.equals(body)).toBe(true);
    expect(srv.connections).toBe(2);
  });

  it('a reused connection that closes before any byte of the answer is retried once on a new one', async () => {
    const body = patternBytes(1000);
    // The second request arrives just as the server gives up on the idle connection.
    const srv = await scriptedServer((s, _head, n) => (n === 2 ? s.destroy() : answer(s, body)));
    const { inner } = fakeInner();
    const h = handlerFor(inner);
    await h.handle(get(srv.port), h.optionsFor({ buffer: Buffer.alloc(1000) }));
    const again: BodySink = { buffer: Buffer.alloc(1000) };
    await h.handle(get(srv.port), h.optionsFor(again));
    expect(again.buffer.equals(body)).toBe(true);
    expect(srv.requests).toBe(3);
    expect(srv.connections).toBe(2);
  });

  it('a new connection that closes before answering is an error, not retried', async () => {
    const srv = await scriptedServer((s) => s.destroy());
    const h = handlerFor(fakeInner().inner);
    const err = await h.handle(get(srv.port), h.optionsFor({ buffer: Buffer.alloc(10) })).catch((e: unknown) => e as Error);
    expect((err as Error & { code?: string }).code).toBe('ECONNRESET');
    expect((err as Error).message).toMatch(/before the response/);
    expect(isTransientError(err)).toBe(true);
    expect(srv.requests).toBe(1);
  });

  it('"Connection: close" is honoured: the next request opens a new connection', async () => {
    const srv = await scriptedServer((s) => {
      answer(s, Buffer.alloc(10), { extra: 'connection: close\r\n' });
      s.end();
    });
    const { inner } = fakeInner();
    const h = handlerFor(inner);
    for (let i = 0; i < 2; i++) await h.handle(get(srv.port), h.optionsFor({ buffer: Buffer.alloc(10) }));
    expect(srv.connections).toBe(2);
    expect(srv.requests).toBe(2);
  });

  it('a connection cut in the middle of the body is a transient error saying how far it got; the next read works', async () => {
    const body = patternBytes(100_000);
    const srv = await scriptedServer((s, _h, n) => {
      if (n === 1) {
        s.write(`HTTP/1.1 206 Partial Content\r\ncontent-length: ${body.length}\r\n\r\n`);
        s.write(body.subarray(0, 30_000), () => s.destroy());
      } else {
        answer(s, body);
      }
    });
    const { inner } = fakeInner();
    const h = handlerFor(inner);
    const err = await h.handle(get(srv.port), h.optionsFor({ buffer: Buffer.alloc(body.length) })).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/after 30000 of 100000 body bytes/);
    expect(isTransientError(err)).toBe(true);
    const sink: BodySink = { buffer: Buffer.alloc(body.length) };
    await h.handle(get(srv.port), h.optionsFor(sink));
    expect(sink.buffer.equals(body)).toBe(true);
  });

  it('a server that stops answering hits the socket timeout (TimeoutError, transient)', async () => {
    const srv = await scriptedServer(() => {});
    const { inner } = fakeInner();
    const h = handlerFor(inner, { socketTimeout: 200 });
    const t0 = Date.now();
    const err = await h.handle(get(srv.port), h.optionsFor({ buffer: Buffer.alloc(10) })).catch((e: unknown) => e as Error);
    expect((err as Error).name).toBe('TimeoutError');
    expect(isTransientError(err)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('an abort rejects with AbortError and drops the connection', async () => {
    const srv = await scriptedServer((s) => s.write('HTTP/1.1 206 Partial Content\r\ncontent-length: 100\r\n\r\nabc'));
    const { inner } = fakeInner();
    const h = handlerFor(inner);
    const ac = new AbortController();
    const options = Object.assign(h.optionsFor({ buffer: Buffer.alloc(100) }), { abortSignal: ac.signal });
    const pending = h.handle(get(srv.port), options);
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await new Promise((r) => setTimeout(r, 50));
    expect(srv.sockets.size).toBe(0);
  });

  it('at maxSockets connections, further requests go through NodeHttpHandler', async () => {
    const srv = await scriptedServer((s) => setTimeout(() => answer(s, Buffer.alloc(10)), 100));
    const { inner, calls } = fakeInner();
    const h = handlerFor(inner, { maxSockets: 2 });
    await Promise.all(Array.from({ length: 3 }, () => h.handle(get(srv.port), h.optionsFor({ buffer: Buffer.alloc(10) }))));
    expect(srv.connections).toBe(2);
    expect(calls).toHaveLength(1);
  });

  it('HTTPS: verifies the server certificate (the given CA is trusted, nothing else)', async () => {
    const body = patternBytes(50_000, 9);
    const srv = await scriptedServer((s) => answer(s, body), true);
    const trusting = handlerFor(fakeInner().inner, { ca: cert });
    const sink: BodySink = { buffer: Buffer.alloc(body.length) };
    await trusting.handle(get(srv.port, '/b/k', 'https:'), trusting.optionsFor(sink));
    expect(sink.buffer.equals(body)).toBe(true);
    const strict = handlerFor(fakeInner().inner);
    await expect(strict.handle(get(srv.port, '/b/k', 'https:'), strict.optionsFor({ buffer: Buffer.alloc(body.length) }))).rejects.toMatchObject({
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
  });
});

describe('requestTarget', () => {
  it('appends the query sorted and RFC 3986-escaped, as the SDK signs it', () => {
    expect(requestTarget({ path: '/b/k', query: {} })).toBe('/b/k');
    expect(requestTarget({ path: '/b/k%20x', query: { 'x-id': 'GetObject', a: "it's (1)*", list: ['x', 'y z'], flag: null } })).toBe(
      "/b/k%20x?a=it%27s%20%281%29%2A&flag&list=x&list=y%20z&x-id=GetObject",
    );
  });
});
