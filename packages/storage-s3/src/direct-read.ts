/**
 * The S3 adapter's HTTP transport: the SDK's NodeHttpHandler for every request, except ranged
 * reads into a caller's buffer, whose response body goes from the socket straight into that buffer.
 *
 * Why: Node's HTTP client hands a response body over in 64 KiB chunks, each read into a fresh
 * buffer, copied into another by the parser and passed through a stream before Kiwi copies it
 * into its read buffer. A restore reads hundreds of MiB that way, on the thread that also
 * decrypts and verifies. Here the socket reads the body into the destination itself (Node's
 * `onread` option), so a response costs the kernel's copy and nothing per chunk.
 *
 * The SDK still does everything else: it resolves the endpoint, signs the request (credentials
 * from its chain), parses headers and error responses, and follows region redirects. Only the
 * bytes on the wire are ours, and only for what is simple and well defined:
 * - a GET whose `client.send` options came from {@link DirectReadHandler.optionsFor};
 * - answered with a Content-Length (not chunked) that fits the buffer, for a 2xx status; an error
 *   status with a small Content-Length body is read and handed to the SDK as usual.
 * Anything else (a chunked answer, a body larger than the buffer, too many connections) is sent
 * again through NodeHttpHandler: reads are idempotent.
 *
 * Connections are kept alive per origin and reused; a reused connection that the server closed
 * while idle is replaced once, transparently. Timeouts, aborts and dropped connections reject
 * with the same kinds of errors as NodeHttpHandler (TimeoutError, AbortError, ECONNRESET).
 */
import net from 'node:net';
import tls from 'node:tls';
import { PassThrough, Readable } from 'node:stream';

/** Where the body of one response goes. */
export interface BodySink {
  /** The destination; a 2xx body must fit, else the request goes through NodeHttpHandler. */
  readonly buffer: Buffer;
  /** Set when the direct path received the body: the number of bytes written to `buffer`. */
  received?: number;
}

/** The parts of the SDK's HttpRequest that are used here. */
export interface HttpRequestLike {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query?: Record<string, string | Array<string | null> | null>;
  fragment?: string;
  headers: Record<string, string>;
  body?: unknown;
}

export interface HttpResponseLike {
  statusCode: number;
  reason?: string;
  headers: Record<string, string>;
  body: Readable;
}

interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener?(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener?(type: 'abort', listener: () => void): void;
  // The SDK's own AbortSignal type has only `onabort`.
  onabort?: ((this: never, ev: never) => unknown) | null;
}

export interface HandlerOptionsLike {
  abortSignal?: AbortSignalLike;
  requestTimeout?: number;
}

/** The SDK's handler interface (NodeHttpHandler), as far as it is used. */
export interface InnerHandler {
  handle(request: HttpRequestLike, options?: HandlerOptionsLike): Promise<{ response: HttpResponseLike }>;
  updateHttpClientConfig(key: never, value: never): void;
  httpHandlerConfigs(): unknown;
  destroy?(): void;
  readonly metadata?: unknown;
}

export interface DirectReadOptions {
  /** Milliseconds to establish a connection (TCP and TLS). */
  connectionTimeout: number;
  /** Milliseconds a request may go without receiving data. */
  socketTimeout: number;
  /** Connections per origin, busy and idle; beyond that, requests go through NodeHttpHandler. */
  maxSockets: number;
  /** Extra CA certificates (PEM) trusted for HTTPS, in addition to Node's. */
  ca?: string | Buffer;
}

/** Largest response head read (status line and headers). */
const HEAD_MAX = 16 * 1024;
/** Largest error body read on the direct path; a longer one is fetched again by NodeHttpHandler. */
const ERROR_BODY_MAX = 1024 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Sent again through NodeHttpHandler. */
const FALLBACK = Symbol('fallback');

export class DirectReadHandler {
  readonly metadata: unknown;
  readonly #inner: InnerHandler;
  readonly #opts: DirectReadOptions;
  readonly #sinks = new WeakMap<object, BodySink>();
  readonly #idle = new Map<string, Connection[]>();
  readonly #open = new Map<string, number>();
  #destroyed = false;

  constructor(inner: InnerHandler, options: DirectReadOptions) {
    this.#inner = inner;
    this.#opts = options;
    this.metadata = inner.metadata;
  }

  /** Options for `client.send` that route the body of that request's response into `sink`. */
  optionsFor(sink: BodySink): Record<never, never> {
    const options = {};
    this.#sinks.set(options, sink);
    return options;
  }

  async handle(request: HttpRequestLike, options: HandlerOptionsLike = {}): Promise<{ response: HttpResponseLike }> {
    const sink = this.#sinks.get(options);
    if (!sink || this.#destroyed || request.method !== 'GET' || request.body != null || !sendable(request)) {
      return this.#inner.handle(request, options);
    }
    const origin = `${request.protocol}//${request.hostname}:${request.port ?? (request.protocol === 'https:' ? 443 : 80)}`;
    let conn = this.#takeIdle(origin);
    if (!conn && (this.#open.get(origin) ?? 0) >= this.#opts.maxSockets) return this.#inner.handle(request, options);
    // A kept-alive connection may have been closed by the server meanwhile: if it fails before
    // any byte of the answer, the request is sent once more on a new connection.
    for (;;) {
      const reused = conn !== undefined;
      conn ??= await this.#connect(request, origin, options.abortSignal);
      const result = await conn.exchange(request, sink, options.abortSignal).catch((err: unknown) => {
        if (reused && err instanceof StaleConnection) return undefined;
        throw err instanceof StaleConnection ? err.cause : err;
      });
      if (result === undefined) {
        conn = undefined;
        continue;
      }
      if (result === FALLBACK) return this.#inner.handle(request, options);
      return { response: result };
    }
  }

  updateHttpClientConfig(key: never, value: never): void {
    this.#inner.updateHttpClientConfig(key, value);
  }

  httpHandlerConfigs(): unknown {
    return this.#inner.httpHandlerConfigs();
  }

  destroy(): void {
    this.#destroyed = true;
    for (const list of this.#idle.values()) for (const c of list) c.socket.destroy();
    this.#idle.clear();
    this.#inner.destroy?.();
  }

  #takeIdle(origin: string): Connection | undefined {
    const list = this.#idle.get(origin);
    while (list && list.length > 0) {
      const c = list.pop()!;
      if (!c.socket.destroyed) return c;
    }
    return undefined;
  }

  /** A new connection; counted against maxSockets until it closes. */
  #connect(request: HttpRequestLike, origin: string, signal: AbortSignalLike | undefined): Promise<Connection> {
    const host = request.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = request.port ?? (request.protocol === 'https:' ? 443 : 80);
    const conn = new Connection(
      (onread) =>
        request.protocol === 'https:'
          ? tls.connect({
              host,
              port,
              ...(net.isIP(host) ? {} : { servername: host }),
              ...(this.#opts.ca !== undefined ? { ca: this.#opts.ca } : {}),
              ALPNProtocols: ['http/1.1'],
              // Node supports onread for TLS sockets too; @types/node does not list it.
              onread,
            } as tls.ConnectionOptions)
          : net.connect({ host, port, onread }),
      this.#opts.socketTimeout,
      (c) => {
        if (this.#destroyed || !c.keepAlive) return c.socket.destroy();
        const list = this.#idle.get(origin) ?? [];
        this.#idle.set(origin, list);
        list.push(c);
      },
      () => {
        this.#open.set(origin, (this.#open.get(origin) ?? 1) - 1);
        const list = this.#idle.get(origin);
        const i = list?.indexOf(conn) ?? -1;
        if (i >= 0) list!.splice(i, 1);
      },
    );
    // Counted once the socket exists ('close', which uncounts it, comes later, asynchronously).
    this.#open.set(origin, (this.#open.get(origin) ?? 0) + 1);
    return conn.connected(`${host}:${port}`, request.protocol === 'https:', this.#opts.connectionTimeout, signal).then(() => conn);
  }
}

/** A request that is safe to write as an HTTP/1.1 head (no line breaks in what is sent). */
function sendable(request: HttpRequestLike): boolean {
  const bad = /[\r\n]/;
  if (bad.test(request.path) || bad.test(request.hostname)) return false;
  for (const [k, v] of Object.entries(request.headers)) if (bad.test(k) || bad.test(String(v))) return false;
  return true;
}

/** RFC 3986 escaping of a query part, as the SDK signs it. */
function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The request target: the (already escaped) path and the query, in the order and form the SDK sends. */
export function requestTarget(request: Pick<HttpRequestLike, 'path' | 'query'>): string {
  const parts: string[] = [];
  for (const key of Object.keys(request.query ?? {}).sort()) {
    const value = request.query![key];
    const k = escapeUri(key);
    if (Array.isArray(value)) {
      for (const v of value) parts.push(`${k}=${escapeUri(v ?? '')}`);
    } else if (value === null || value === undefined) {
      parts.push(k);
    } else {
      parts.push(`${k}=${escapeUri(value)}`);
    }
  }
  return parts.length > 0 ? `${request.path}?${parts.join('&')}` : request.path;
}

function headText(request: HttpRequestLike): string {
  let head = `GET ${requestTarget(request)} HTTP/1.1\r\n`;
  let host = false;
  for (const [k, v] of Object.entries(request.headers)) {
    if (k.toLowerCase() === 'host') host = true;
    head += `${k}: ${v}\r\n`;
  }
  if (!host) head += `host: ${request.hostname}${request.port ? `:${request.port}` : ''}\r\n`;
  return `${head}\r\n`;
}

/** A connection error with a code the retry layer knows. */
function netError(message: string, code: string, name = 'Error'): Error {
  const err = new Error(message) as Error & { code: string };
  err.code = code;
  err.name = name;
  return err;
}

/** The connection was reset or closed before any byte of the answer arrived (a kept-alive one may be stale). */
class StaleConnection extends Error {
  constructor(override readonly cause: unknown) {
    super('connection failed before the response');
  }
}

interface Exchange {
  sink: BodySink;
  phase: 'head' | 'body';
  target: Buffer;
  pos: number;
  length: number;
  status: number;
  reason: string;
  headers: Record<string, string>;
  gotBytes: boolean;
  settle(result: HttpResponseLike | typeof FALLBACK | Error): void;
}

/** One HTTP/1.1 connection whose socket reads into the buffer the current response wants. */
class Connection {
  readonly socket: net.Socket;
  keepAlive = true;
  readonly #head = Buffer.allocUnsafe(HEAD_MAX);
  #headLen = 0;
  #ex: Exchange | undefined;
  readonly #socketTimeout: number;
  readonly #release: (c: Connection) => void;

  constructor(open: (onread: net.OnReadOpts) => net.Socket, socketTimeout: number, release: (c: Connection) => void, closed: () => void) {
    this.#socketTimeout = socketTimeout;
    this.#release = release;
    this.socket = open({
      buffer: () => this.#nextBuffer(),
      callback: (n) => {
        this.#onRead(n);
        return true;
      },
    });
    this.socket.setNoDelay(true);
    this.socket.on('error', (err) => this.#fail(err));
    this.socket.on('timeout', () => {
      this.socket.destroy(netError(`no data from the server for ${this.#socketTimeout} ms`, 'ETIMEDOUT', 'TimeoutError'));
    });
    this.socket.on('close', () => {
      this.#fail(netError('the server closed the connection', 'ECONNRESET'));
      closed();
    });
  }

  /** Resolves once connected (and, for HTTPS, once the TLS handshake verified the server). */
  connected(where: string, secure: boolean, timeoutMs: number, signal: AbortSignalLike | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        reject(netError(`could not connect to ${where} within ${timeoutMs} ms`, 'ETIMEDOUT', 'TimeoutError'));
      }, timeoutMs);
      const off = onAbort(signal, () => {
        this.socket.destroy();
        reject(abortError());
      });
      const done = (err?: Error) => {
        clearTimeout(timer);
        off();
        this.socket.off('error', done);
        if (err) reject(err);
        else resolve();
      };
      this.socket.once(secure ? 'secureConnect' : 'connect', () => done());
      this.socket.once('error', done);
    });
  }

  /** Send the request and read its response; FALLBACK when it must go through NodeHttpHandler. */
  exchange(request: HttpRequestLike, sink: BodySink, signal: AbortSignalLike | undefined): Promise<HttpResponseLike | typeof FALLBACK> {
    if (signal?.aborted) return Promise.reject(abortError());
    return new Promise((resolve, reject) => {
      const off = onAbort(signal, () => this.socket.destroy(abortError()));
      this.#headLen = 0;
      this.#ex = {
        sink,
        phase: 'head',
        target: this.#head,
        pos: 0,
        length: 0,
        status: 0,
        reason: '',
        headers: {},
        gotBytes: false,
        settle: (result) => {
          off();
          this.#ex = undefined;
          if (result instanceof Error) reject(result);
          else resolve(result);
        },
      };
      this.socket.ref();
      this.socket.setTimeout(this.#socketTimeout);
      this.socket.write(headText(request));
    });
  }

  #nextBuffer(): Uint8Array {
    const ex = this.#ex;
    if (ex?.phase === 'body') return ex.target.subarray(ex.pos, ex.length);
    return this.#head.subarray(this.#headLen);
  }

  #onRead(n: number): void {
    const ex = this.#ex;
    if (!ex) {
      // Bytes nobody asked for: the connection is out of step.
      this.socket.destroy();
      return;
    }
    ex.gotBytes = true;
    if (ex.phase === 'body') {
      ex.pos += n;
      if (ex.pos === ex.length) this.#complete(ex);
      return;
    }
    const from = Math.max(0, this.#headLen - 3);
    this.#headLen += n;
    const end = this.#head.subarray(0, this.#headLen).indexOf(CRLFCRLF, from);
    if (end < 0) {
      if (this.#headLen === HEAD_MAX) this.#abandon(ex, new Error(`the response head is larger than ${HEAD_MAX} bytes`));
      return;
    }
    this.#startBody(ex, end);
  }

  /** Parse the head ending at `end` and set up the body. */
  #startBody(ex: Exchange, end: number): void {
    const lines = this.#head.toString('latin1', 0, end).split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (!m) return this.#abandon(ex, new Error('the server sent a malformed HTTP status line'));
    const status = Number(m[2]);
    const bodyStart = end + 4;
    if (status >= 100 && status < 200) {
      // An interim answer: drop it and read on.
      this.#head.copy(this.#head, 0, bodyStart, this.#headLen);
      this.#headLen -= bodyStart;
      const next = this.#head.subarray(0, this.#headLen).indexOf(CRLFCRLF);
      if (next >= 0) this.#startBody(ex, next);
      return;
    }
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) return this.#abandon(ex, new Error('the server sent a malformed HTTP header'));
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const connection = (headers['connection'] ?? '').toLowerCase();
    this.keepAlive = m[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    const lengthText = headers['content-length'];
    const length = lengthText !== undefined && /^\d+$/.test(lengthText) ? Number(lengthText) : undefined;
    const ok = status >= 200 && status < 300;
    if (headers['transfer-encoding'] !== undefined || length === undefined || (ok ? length > ex.sink.buffer.length : length > ERROR_BODY_MAX)) {
      // Not framed the simple way, or too big for the buffer: NodeHttpHandler asks again.
      this.keepAlive = false;
      this.socket.destroy();
      ex.settle(FALLBACK);
      return;
    }
    const already = this.#headLen - bodyStart;
    if (already > length) return this.#abandon(ex, new Error('the server sent more bytes than its Content-Length'));
    ex.phase = 'body';
    ex.status = status;
    ex.reason = m[3] ?? '';
    ex.headers = headers;
    ex.length = length;
    ex.target = ok ? ex.sink.buffer : Buffer.allocUnsafe(length);
    this.#head.copy(ex.target, 0, bodyStart, this.#headLen);
    ex.pos = already;
    this.#headLen = 0;
    if (ex.pos === ex.length) this.#complete(ex);
  }

  #complete(ex: Exchange): void {
    const ok = ex.status >= 200 && ex.status < 300;
    let body: Readable;
    if (ok) {
      ex.sink.received = ex.length;
      body = Readable.from([]);
    } else {
      body = new PassThrough().end(ex.target);
    }
    this.socket.setTimeout(0);
    this.socket.unref();
    const response: HttpResponseLike = { statusCode: ex.status, reason: ex.reason, headers: ex.headers, body };
    ex.settle(response);
    this.#release(this);
  }

  #abandon(ex: Exchange, err: Error): void {
    this.keepAlive = false;
    this.socket.destroy();
    ex.settle(err);
  }

  #fail(err: Error): void {
    const ex = this.#ex;
    if (!ex) return;
    this.keepAlive = false;
    const e = err as Error & { code?: string };
    if (e.name === 'AbortError' || e.name === 'TimeoutError') {
      ex.settle(err);
      return;
    }
    const detail =
      ex.phase === 'body' ? ` after ${ex.pos} of ${ex.length} body bytes` : ex.gotBytes ? ' in the middle of the response head' : ' before the response';
    const failure = netError(`${err.message}${detail}`, e.code ?? 'ECONNRESET');
    ex.settle(!ex.gotBytes && (e.code === 'ECONNRESET' || e.code === 'EPIPE') ? new StaleConnection(failure) : failure);
  }
}

function abortError(): Error {
  const err = new Error('Request aborted');
  err.name = 'AbortError';
  return err;
}

/** Call `fn` when `signal` aborts; returns the function that stops listening. */
function onAbort(signal: AbortSignalLike | undefined, fn: () => void): () => void {
  if (!signal) return () => {};
  if (typeof signal.addEventListener === 'function') {
    signal.addEventListener('abort', fn, { once: true });
    return () => signal.removeEventListener?.('abort', fn);
  }
  const previous = signal.onabort as ((this: unknown, ev: unknown) => unknown) | null | undefined;
  signal.onabort = function (this: unknown, ev: unknown) {
    fn();
    return previous?.call(this, ev);
  };
  return () => {
    signal.onabort = previous ?? null;
  };
}
