import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CliError, ExitCode } from '../exit-codes.js';
import { now, type DaemonEvent, type EventBus } from './events.js';
import type { TaskKind } from './jobs.js';
import { PAGE_ASSETS } from './page.js';
import { tokenMatches } from './token.js';

/** What the HTTP API asks of the daemon. */
export interface DaemonApi {
  readonly bus: EventBus;
  /** True while the scheduler runs (`/healthz` answers 200). */
  healthy(): boolean;
  status(): Promise<unknown>;
  hasJob(name: string): boolean;
  runs(name: string, limit: number): Promise<unknown[]>;
  snapshots(name: string): Promise<unknown[]>;
  runNow(name: string, kind: TaskKind): Promise<{ result: 'started' | 'queued' | 'busy' | 'closed' | 'unavailable'; runId?: string; message?: string }>;
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** `--listen`: `host:port`, `:port`, `port`, or `[::1]:port`. Default 127.0.0.1:8484. */
export function parseListen(value: string | undefined): ListenAddress {
  if (value === undefined || value === '') return { host: '127.0.0.1', port: 8484 };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(value) ?? (/^\d+$/.test(value) ? [value, undefined, '127.0.0.1', value] : null);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CliError(`--listen must be host:port (e.g. 127.0.0.1:8484), not "${value}"`, ExitCode.Usage);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * How many bytes may wait, unwritten, for one client of `/api/events` (`res.writableLength`: the response's
 * and its socket's queues). Node keeps in memory whatever the socket cannot take, so a client that stops
 * reading (a stuck tab, a paused curl) would make the daemon hold every later event for it, for ever. Past
 * this it is dropped instead: the stream's `retry:` brings back a client that was only slow, and the fresh
 * `status` event it then gets stands for what it missed. Progress events are small; a reading client never
 * comes near this.
 */
export const SSE_MAX_QUEUED_BYTES = 1024 * 1024;
/** How many clients of `/api/events` at once (each costs a socket and up to SSE_MAX_QUEUED_BYTES); past it, 503. */
export const SSE_MAX_CLIENTS = 64;

const KINDS: readonly TaskKind[] = ['backup', 'prune', 'check'];

/**
 * The daemon's HTTP server (Node's own `http`: a handful of routes need no framework).
 * `/`, `/app.js`, `/app.css`: the status page (static; it asks for the token and calls the API).
 * `/healthz`: 200 while the scheduler runs, no token. `/api/*`: JSON, `Authorization: Bearer <token>`.
 */
export async function startApiServer(api: DaemonApi, token: string, listen: ListenAddress): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const sse = new Set<ServerResponse>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    // Nothing we serve takes a body: never read one.
    req.resume();

    if (path === '/healthz') {
      if (method !== 'GET' && method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'GET, HEAD' });
      return api.healthy() ? sendJson(res, 200, { status: 'ok' }) : sendJson(res, 503, { status: 'stopping' });
    }
    const asset = PAGE_ASSETS[path];
    if (asset) {
      if (method !== 'GET' && method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'GET, HEAD' });
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': asset.type, 'Content-Length': Buffer.byteLength(asset.body), 'Content-Security-Policy': PAGE_CSP });
      res.end(method === 'HEAD' ? undefined : asset.body);
      return;
    }
    if (!path.startsWith('/api/')) return sendJson(res, 404, { error: 'not found' });
    // Every API call needs the token; the answer to a bad one says nothing about what is there.
    if (!tokenMatches(req.headers.authorization, token)) {
      return sendJson(res, 401, { error: 'unauthorized: send the token of <datadir>/daemon.token as "Authorization: Bearer <token>"' }, { 'WWW-Authenticate': 'Bearer realm="kiwi"' });
    }

    if (path === '/api/status') {
      if (method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'GET' });
      return sendJson(res, 200, await api.status());
    }
    if (path === '/api/events') {
      if (method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'GET' });
      const status = await api.status();
      // The status first, so that nothing is awaited between these checks and sse.add(): clients arriving
      // together cannot all pass the limit, and one that left meanwhile (its 'close' already emitted) is not
      // kept for ever.
      if (res.destroyed) return;
      if (sse.size >= SSE_MAX_CLIENTS) return sendJson(res, 503, { error: `too many clients of the event stream (at most ${SSE_MAX_CLIENTS}); close one and retry` });
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      res.write(`retry: 2000\n\n`);
      sse.add(res);
      res.on('close', () => sse.delete(res));
      send(res, `event: status\ndata: ${JSON.stringify(status)}\n\n`);
      return;
    }
    const m = /^\/api\/jobs\/([^/]+)\/(runs|snapshots|run)$/.exec(path);
    if (m) {
      let name: string;
      try {
        name = decodeURIComponent(m[1]!);
      } catch {
        return sendJson(res, 404, { error: 'no such job' });
      }
      if (!api.hasJob(name)) return sendJson(res, 404, { error: `no job named "${name.slice(0, 64)}"` });
      const what = m[2]!;
      if (what === 'run') {
        if (method !== 'POST') return sendJson(res, 405, { error: 'method not allowed: POST starts a run' }, { Allow: 'POST' });
        const kind = (url.searchParams.get('task') ?? 'backup') as TaskKind;
        if (!KINDS.includes(kind)) return sendJson(res, 400, { error: `task must be one of ${KINDS.join(', ')}` });
        const r = await api.runNow(name, kind);
        if (r.result === 'busy') return sendJson(res, 409, { error: `job "${name}" is already running or waiting (${kind})` });
        if (r.result === 'closed') return sendJson(res, 503, { error: 'the daemon is stopping' });
        if (r.result === 'unavailable') return sendJson(res, 400, { error: r.message ?? `job "${name}" cannot run ${kind}` });
        return sendJson(res, 202, { job: name, task: kind, run_id: r.runId, state: r.result });
      }
      if (method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'GET' });
      if (what === 'runs') {
        const limit = Math.min(100, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
        return sendJson(res, 200, { job: name, runs: await api.runs(name, limit) });
      }
      try {
        return sendJson(res, 200, { job: name, snapshots: await api.snapshots(name) });
      } catch (err) {
        return sendJson(res, 502, { error: `cannot list the snapshots of job "${name}": ${(err as Error).message}` });
      }
    }
    return sendJson(res, 404, { error: 'not found' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, 500, { error: `internal error: ${(err as Error).message}` });
    });
  });
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;

  /** Writes to one event client, and drops it once more than SSE_MAX_QUEUED_BYTES wait for it. */
  const send = (res: ServerResponse, chunk: string | Buffer): void => {
    res.write(chunk);
    if (res.writableLength <= SSE_MAX_QUEUED_BYTES) return;
    // destroy(), not end(): end() would keep the queue until the client reads it, which is the problem.
    sse.delete(res);
    res.destroy();
    // Not from inside the event being sent: the note is an event too.
    queueMicrotask(() => api.bus.publish({ type: 'log', time: now(), level: 'warn', message: 'dropped a slow client of the event stream (too many unread events); it may reconnect' }));
  };
  const onEvent = (e: DaemonEvent): void => {
    if (!sse.size) return;
    // Encoded once for all the clients; the queues share it.
    const chunk = Buffer.from(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    for (const res of sse) send(res, chunk);
  };
  api.bus.on('event', onEvent);
  const heartbeat = setInterval(() => {
    for (const res of sse) send(res, `: keep-alive\n\n`);
  }, 15_000);
  heartbeat.unref();

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      const where = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
      const why =
        err.code === 'EADDRINUSE'
          ? 'the address is already in use (another kiwi daemon, or another program); choose another with --listen'
          : err.code === 'EACCES'
            ? 'permission denied (ports below 1024 need privileges); choose another with --listen'
            : err.code === 'EADDRNOTAVAIL'
              ? 'this machine has no such address'
              : err.message;
      reject(new CliError(`cannot listen on ${where}: ${why}`, ExitCode.Usage, { cause: err }));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(listen.port, listen.host);
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${host}:${addr.port}/`,
    close: async () => {
      clearInterval(heartbeat);
      api.bus.off('event', onEvent);
      for (const res of sse) res.end();
      sse.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
