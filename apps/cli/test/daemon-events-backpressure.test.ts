// GET /api/events under backpressure: a client that stops reading is dropped before the daemon's memory
// for it grows without bound, and the number of clients is limited. These run the API server in-process
// (from the sources), with a fake daemon behind it, and look at its side of each connection.
import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { EventBus, now, type DaemonEvent } from '../src/daemon/events.js';
import { SSE_MAX_CLIENTS, SSE_MAX_QUEUED_BYTES, startApiServer, type DaemonApi } from '../src/daemon/http.js';
import { sleep } from './helpers.js';

const TOKEN = 'a-token-of-the-right-length';

function fakeApi(bus: EventBus, status: () => Promise<unknown> = async () => ({ state: 'running', jobs: [] })): DaemonApi {
  return {
    bus,
    healthy: () => true,
    status,
    hasJob: () => false,
    runs: async () => [],
    snapshots: async () => [],
    runNow: async () => ({ result: 'closed' }),
  };
}

/** Waits for a condition; the limit is generous (a loaded 2-core machine), the polling quick. */
async function waitFor(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Lets pending I/O and every queued microtask run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The server's side of one `/api/events` request: its response, and what was written to it. */
interface Served {
  res: ServerResponse;
  /** The client's port, to tell the connections apart. */
  port: number;
  writes: number;
  /** The most bytes ever queued for the client (`res.writableLength`, the socket's queue included) after a write. */
  maxQueued: number;
  closed: boolean;
}

function watchEventResponses(server: Server): Served[] {
  const served: Served[] = [];
  // Prepended, so the response is wrapped before the API's handler writes anything to it.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== '/api/events') return;
    const s: Served = { res, port: req.socket.remotePort!, writes: 0, maxQueued: 0, closed: false };
    const write = res.write as (...args: unknown[]) => boolean;
    res.write = ((...args: unknown[]) => {
      const ok = write.apply(res, args);
      s.writes++;
      s.maxQueued = Math.max(s.maxQueued, res.writableLength);
      return ok;
    }) as typeof res.write;
    res.on('close', () => (s.closed = true));
    served.push(s);
  });
  return served;
}

/** A reading client of the event stream (node:http, its own connection); it keeps each event's type and the start of a log message. */
interface EventClient {
  status: number;
  localPort: number;
  events: Array<{ type: string; message?: string }>;
  close(): void;
}

function openEvents(base: string): Promise<EventClient> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/api/events', base), { headers: { Authorization: `Bearer ${TOKEN}` }, agent: false }, (res) => {
      const c: EventClient = { status: res.statusCode!, localPort: req.socket!.localPort!, events: [], close: () => req.destroy() };
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buffer += d;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!type || !data) continue;
          const message = (JSON.parse(data) as { message?: string }).message;
          c.events.push({ type, ...(message !== undefined ? { message: message.slice(0, 80) } : {}) });
        }
      });
      res.on('error', () => undefined);
      resolve(c);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A client that sends the request with the token, reads up to the first event, then never reads again. */
async function openStalledClient(base: string): Promise<Socket> {
  const url = new URL(base);
  const socket = connect(Number(url.port), url.hostname);
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(`GET /api/events HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
  let got = '';
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer): void => {
      got += d.toString('latin1');
      if (!got.includes('event: status')) return;
      socket.off('data', onData);
      socket.pause();
      resolve();
    };
    socket.on('data', onData);
  });
  return socket;
}

const logEvent = (message: string): DaemonEvent => ({ type: 'log', time: now(), level: 'info', message });

describe('GET /api/events backpressure and client limit', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(status?: () => Promise<unknown>) {
    const bus = new EventBus();
    const http = await startApiServer(fakeApi(bus, status), TOKEN, { host: '127.0.0.1', port: 0 });
    cleanups.push(() => http.close());
    return { bus, http, served: watchEventResponses(http.server) };
  }

  it('a client that stops reading is dropped once its queue passes the bound, and gets no more writes; a reading client gets every event', async () => {
    const { bus, http, served } = await start();
    const stalled = await openStalledClient(http.url);
    cleanups.push(() => stalled.destroy());
    const reader = await openEvents(http.url);
    cleanups.push(() => reader.close());
    await waitFor("the reading client's status event", () => reader.events.some((e) => e.type === 'status'));
    const slow = served.find((s) => s.port === stalled.localPort)!;
    const fast = served.find((s) => s.port === reader.localPort)!;
    expect(slow).toBeDefined();
    expect(fast).toBeDefined();

    const payload = 'x'.repeat(128 * 1024);
    const big = (i: number): DaemonEvent => logEvent(`big#${i} ${payload}`);
    // One event as written: its SSE framing and the chunked encoding's few bytes included (generously).
    const eventBytes = Buffer.byteLength(`event: log\ndata: ${JSON.stringify(big(999_999))}\n\n`) + 64;
    let sent = 0;
    // The kernel's socket buffers take several MiB before anything queues in the daemon. Publish until the
    // stalled client is dropped, or until its queue has clearly outgrown the bound (it would, unbounded).
    while (!slow.res.destroyed && slow.maxQueued <= 2 * SSE_MAX_QUEUED_BYTES + eventBytes && sent < 4096) {
      // Paced by the reading client, so that it is never the one that falls behind, however slow the machine.
      await waitFor('the reading client to keep up', () => fast.res.writableLength < 256 * 1024);
      bus.publish(big(sent++));
      await turn();
    }
    expect(slow.res.destroyed).toBe(true);
    expect(slow.maxQueued).toBeGreaterThan(0);
    expect(slow.maxQueued).toBeLessThanOrEqual(SSE_MAX_QUEUED_BYTES + eventBytes);
    await waitFor('the dropped response to close', () => slow.closed);

    // It is out of the set events go to: later events reach the reader, and not one more write reaches it.
    const writesAtDrop = slow.writes;
    for (let i = 0; i < 3; i++) bus.publish(logEvent(`after-drop#${i}`));
    await waitFor('the reader to get every event', () => reader.events.filter((e) => e.message?.startsWith('big#') || e.message?.startsWith('after-drop#')).length === sent + 3);
    expect(slow.writes).toBe(writesAtDrop);
    expect(fast.res.destroyed).toBe(false);
    expect(reader.events.filter((e) => e.message?.startsWith('big#')).map((e) => e.message!.split(' ')[0])).toEqual(Array.from({ length: sent }, (_, i) => `big#${i}`));
    // The daemon's log says so (nothing about the client but that it was slow).
    await waitFor('the note in the log', () => reader.events.some((e) => e.type === 'log' && /slow/.test(e.message ?? '')));
  });

  it(`the ${SSE_MAX_CLIENTS + 1}th concurrent client gets 503 with a JSON error; the others keep their streams; a freed place can be taken again`, async () => {
    const { bus, http, served } = await start();
    const clients: EventClient[] = [];
    cleanups.push(() => clients.forEach((c) => c.close()));
    for (let i = 0; i < SSE_MAX_CLIENTS; i++) clients.push(await openEvents(http.url));
    expect(clients.map((c) => c.status)).toEqual(clients.map(() => 200));
    await waitFor('every status event', () => clients.every((c) => c.events.some((e) => e.type === 'status')));

    const refused = await fetch(new URL('/api/events', http.url), { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await refused.json()) as { error: string };
    expect(body.error).toMatch(/too many/);
    expect(body.error).toContain(String(SSE_MAX_CLIENTS));

    bus.publish(logEvent('hello'));
    await waitFor('every client to get the event', () => clients.every((c) => c.events.some((e) => e.message === 'hello')));

    // A client that leaves frees its place.
    const first = clients[0]!;
    first.close();
    await waitFor('the server to see the client leave', () => served.find((s) => s.port === first.localPort)!.closed);
    await turn();
    const again = await openEvents(http.url);
    clients.push(again);
    expect(again.status).toBe(200);
    bus.publish(logEvent('again'));
    await waitFor('the new client and the others to get the event', () => clients.slice(1).every((c) => c.events.some((e) => e.message === 'again')));
  });

  it('a client that leaves while its status is being read is never added (no writes, no place taken)', async () => {
    let asked!: () => void;
    let release!: () => void;
    const statusAsked = new Promise<void>((resolve) => (asked = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { bus, http, served } = await start(async () => {
      asked();
      await gate;
      return { state: 'running', jobs: [] };
    });
    const req = request(new URL('/api/events', http.url), { headers: { Authorization: `Bearer ${TOKEN}` }, agent: false });
    req.on('error', () => undefined);
    req.end();
    await statusAsked;
    req.destroy();
    await waitFor('the server to see the client leave', () => served[0]?.closed === true);
    release();
    // The handler goes on in microtasks only: they have all run by the next turn.
    await turn();
    bus.publish(logEvent('anyone?'));
    await turn();
    expect(served[0]!.writes).toBe(0);
  });
});
