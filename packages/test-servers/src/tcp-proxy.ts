import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxyOptions {
  /** Host the proxy forwards to (default `127.0.0.1`). */
  targetHost?: string;
  targetPort: number;
  /**
   * Cut each connection after this many bytes have passed through it, counting
   * both directions. `undefined` (default) never cuts.
   */
  cutAfterBytes?: number;
}

export interface TcpProxy {
  /** The loopback port the proxy listens on (`127.0.0.1`). */
  readonly port: number;
  readonly host: string;
  /**
   * Change the cut threshold for connections opened from now on AND for open ones
   * (each connection keeps counting its bytes since it opened). `undefined` stops cutting.
   */
  setCutAfter(bytes: number | undefined): void;
  /** Abruptly destroy every open connection (both sides see a reset/close). */
  cutAll(): void;
  /** Number of connections cut so far (by a threshold or `cutAll`). */
  readonly cuts: number;
  /** Number of connections accepted so far. */
  readonly connections: number;
  /** Stop listening and destroy every connection. */
  stop(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  bytes: number;
  cut: boolean;
}

/**
 * A small TCP proxy on a free loopback port that forwards to a target and can
 * cut connections after N bytes (both directions counted), to simulate dropped
 * connections in fault tests. A cut destroys both sockets with a reset (RST)
 * where the platform allows it.
 */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const targetHost = options.targetHost ?? '127.0.0.1';
  const targetPort = options.targetPort;
  let cutAfter = options.cutAfterBytes;
  let cuts = 0;
  let connections = 0;
  const pairs = new Set<Pair>();

  const kill = (pair: Pair): void => {
    if (pair.cut) return;
    pair.cut = true;
    cuts++;
    for (const s of [pair.client, pair.upstream]) {
      // resetAndDestroy sends an RST (Node >= 16.17), which is what a dropped connection looks like.
      if (typeof s.resetAndDestroy === 'function' && !s.destroyed && !s.connecting) s.resetAndDestroy();
      else s.destroy();
    }
  };

  const forward = (pair: Pair, from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      if (pair.cut) return;
      if (cutAfter !== undefined && pair.bytes + chunk.length > cutAfter) {
        // Pass through exactly the bytes allowed, then cut.
        const allowed = Math.max(0, cutAfter - pair.bytes);
        pair.bytes += allowed;
        if (allowed > 0) to.write(chunk.subarray(0, allowed), () => kill(pair));
        else kill(pair);
        // Guarantee the cut even if the write callback never fires.
        setImmediate(() => kill(pair));
        return;
      }
      pair.bytes += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => {
      if (!pair.cut) to.end();
    });
  };

  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    connections++;
    const upstream = connect({ host: targetHost, port: targetPort });
    const pair: Pair = { client, upstream, bytes: 0, cut: false };
    pairs.add(pair);
    const cleanup = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', cleanup);
    upstream.on('error', cleanup);
    client.on('close', cleanup);
    upstream.on('close', cleanup);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    if (cutAfter === 0) {
      kill(pair);
      return;
    }
    forward(pair, client, upstream);
    forward(pair, upstream, client);
    upstream.once('connect', () => client.resume());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no listening address');

  return {
    port: address.port,
    host: '127.0.0.1',
    get cuts() {
      return cuts;
    },
    get connections() {
      return connections;
    },
    setCutAfter(bytes) {
      if (bytes !== undefined && (!Number.isInteger(bytes) || bytes < 0)) {
        throw new RangeError(`cutAfter must be a non-negative integer, got ${bytes}`);
      }
      cutAfter = bytes;
      if (bytes !== undefined) for (const p of pairs) if (p.bytes >= bytes) kill(p);
    },
    cutAll() {
      for (const p of pairs) kill(p);
    },
    stop() {
      for (const p of pairs) kill(p);
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
