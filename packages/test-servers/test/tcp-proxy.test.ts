import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy } from '../src/tcp-proxy.js';

let echo: Server;
let echoPort: number;

beforeAll(async () => {
  echo = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((r) => echo.close(() => r()));
});

/** Send `payload` through a new connection; resolve with what came back and how the connection ended. */
function roundTrip(port: number, payload: Buffer): Promise<{ received: Buffer; error?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    let error: Error | undefined;
    const s: Socket = connect({ host: '127.0.0.1', port });
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= payload.length) s.end();
    });
    s.on('error', (e) => (error = e));
    s.on('close', () => resolve({ received: Buffer.concat(chunks), error }));
    s.write(payload);
  });
}

describe('startTcpProxy', () => {
  it('forwards bytes unchanged in both directions', async () => {
    const proxy = await startTcpProxy({ targetPort: echoPort });
    try {
      const payload = Buffer.alloc(1 << 20);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
      const { received, error } = await roundTrip(proxy.port, payload);
      expect(error).toBeUndefined();
      expect(received.equals(payload)).toBe(true);
      expect(proxy.cuts).toBe(0);
      expect(proxy.connections).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it('cuts a connection after N bytes counted in both directions', async () => {
    const proxy = await startTcpProxy({ targetPort: echoPort, cutAfterBytes: 1000 });
    try {
      const payload = Buffer.alloc(100_000, 0x61);
      const { received } = await roundTrip(proxy.port, payload);
      // At most 1000 bytes cross the proxy in total, so at most 1000 (minus what went up) come back.
      expect(received.length).toBeLessThan(1000);
      expect(proxy.cuts).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it('setCutAfter(undefined) stops cutting; cutAll drops open connections', async () => {
    const proxy = await startTcpProxy({ targetPort: echoPort, cutAfterBytes: 10 });
    try {
      proxy.setCutAfter(undefined);
      const payload = Buffer.alloc(50_000, 0x62);
      const ok = await roundTrip(proxy.port, payload);
      expect(ok.received.equals(payload)).toBe(true);

      const s = connect({ host: '127.0.0.1', port: proxy.port });
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.write('hello');
      await new Promise<void>((r) => s.once('data', () => r()));
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', () => {});
      proxy.cutAll();
      await closed;
      expect(proxy.cuts).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it('rejects an invalid threshold', async () => {
    const proxy = await startTcpProxy({ targetPort: echoPort });
    try {
      expect(() => proxy.setCutAfter(-1)).toThrow(RangeError);
    } finally {
      await proxy.stop();
    }
  });
});
