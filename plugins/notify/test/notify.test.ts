import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadTestPlugins, runBackupWithPlugins } from '@kiwi-backup/core/testing';
import notify from '../src/index.js';

interface Hit {
  method: string;
  path: string;
  body: any;
  headers: IncomingMessage['headers'];
}

/** A monitoring endpoint on loopback; `respond` decides each answer (status, or 'hang'). */
async function monitor(respond: (hit: Hit, n: number) => number | 'hang' = () => 200): Promise<{ url: string; hits: Hit[]; server: Server; close(): Promise<void> }> {
  const hits: Hit[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (d: string) => (text += d));
    req.on('end', () => {
      const hit: Hit = { method: req.method!, path: req.url!, body: text ? JSON.parse(text) : undefined, headers: req.headers };
      hits.push(hit);
      const r = respond(hit, hits.length);
      if (r === 'hang') {
        hanging.push(res);
        return;
      }
      res.writeHead(r).end('OK');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/ping/0b7c3c1e-secret-uuid`,
    hits,
    server,
    close: () =>
      new Promise((r) => {
        for (const h of hanging) h.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const plugin = (options: Record<string, unknown>) => [{ name: 'notify', module: notify, options }];

describe('notify', () => {
  let m: Awaited<ReturnType<typeof monitor>>;
  afterEach(async () => m?.close());

  it('pings <url>/start, then <url> with the run as JSON after a success', async () => {
    m = await monitor();
    const run = await runBackupWithPlugins(plugin({ url: m.url }), { tags: ['nightly'], snapshotId: 'ab'.repeat(32) });
    expect(run.status).toBe('success');
    expect(m.hits.map((h) => `${h.method} ${h.path}`)).toEqual(['POST /ping/0b7c3c1e-secret-uuid/start', 'POST /ping/0b7c3c1e-secret-uuid']);
    expect(m.hits[0]!.body).toMatchObject({ event: 'start', status: 'running', tags: ['nightly'] });
    expect(m.hits[1]!.body).toMatchObject({ event: 'success', status: 'success', snapshotId: 'ab'.repeat(32), stats: { totalFiles: 0 } });
    expect(typeof m.hits[1]!.body.durationMs).toBe('number');
    expect(m.hits[1]!.headers['content-type']).toBe('application/json');
  });

  it('pings <url>/fail with the error after a failed backup; partial counts as failure unless told otherwise', async () => {
    m = await monitor();
    const failed = await runBackupWithPlugins(plugin({ url: m.url }), { body: () => { throw new Error('disk on fire'); } });
    expect(failed.status).toBe('failure');
    expect(m.hits.at(-1)!.path).toBe('/ping/0b7c3c1e-secret-uuid/fail');
    expect(m.hits.at(-1)!.body).toMatchObject({ event: 'failure', status: 'failure', error: 'disk on fire' });

    const partial = await runBackupWithPlugins(plugin({ url: m.url }), { body: (b) => b.reportError('/srv/locked', 'EACCES') });
    expect(partial.status).toBe('partial');
    expect(m.hits.at(-1)!.path).toBe('/ping/0b7c3c1e-secret-uuid/fail');
    await runBackupWithPlugins(plugin({ url: m.url, partial: 'success' }), { body: (b) => b.reportError('/srv/locked', 'EACCES') });
    expect(m.hits.at(-1)!.path).toBe('/ping/0b7c3c1e-secret-uuid');
  });

  it('an interrupted backup pings failure too (onBackupStop always runs)', async () => {
    m = await monitor();
    const ac = new AbortController();
    const run = await runBackupWithPlugins(plugin({ url: m.url }), { signal: ac.signal, files: ['/srv/a'], body: () => ac.abort() });
    expect(run.status).toBe('interrupted');
    expect(m.hits.at(-1)!.body).toMatchObject({ event: 'failure', status: 'interrupted' });
  });

  it('retries a 5xx, and the backup is not affected when the monitor never answers in time', async () => {
    m = await monitor((_h, n) => (n <= 2 ? 503 : 200));
    const run = await runBackupWithPlugins(plugin({ url: m.url, retries: 2, retryDelay: 10, start: false }));
    expect(run.status).toBe('success');
    expect(m.hits.map((h) => h.path)).toEqual(['/ping/0b7c3c1e-secret-uuid', '/ping/0b7c3c1e-secret-uuid', '/ping/0b7c3c1e-secret-uuid']);
    await m.close();

    m = await monitor(() => 'hang');
    const slow = await runBackupWithPlugins(plugin({ url: m.url, timeout: 200, retries: 1, retryDelay: 10 }));
    expect(slow.status).toBe('success');
    expect(slow.stopErrors).toEqual([]);
    expect(m.hits).toHaveLength(4); // start and success, each tried twice
    const warnings = slow.logs.filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warnings.join('\n')).toMatch(/could not ping http:\/\/127\.0\.0\.1:\d+\/… \(success\): no answer within 200 ms after 2 attempts; the backup is not affected/);
  });

  it('an unreachable monitor, or a 4xx, is logged without the secret part of the URL; no retry on 4xx', async () => {
    m = await monitor(() => 404);
    const run = await runBackupWithPlugins(plugin({ url: m.url, retries: 3, retryDelay: 10 }));
    expect(run.status).toBe('success');
    expect(m.hits).toHaveLength(2);
    const text = run.logs.map((l) => l.message).join('\n');
    expect(text).toMatch(/HTTP 404/);
    expect(text).not.toContain('secret-uuid');
    await m.close();

    const gone = await monitor();
    const closed = `${gone.url}`;
    await gone.close();
    const down = await runBackupWithPlugins(plugin({ url: closed, retries: 0 }));
    expect(down.status).toBe('success');
    const downText = down.logs.map((l) => l.message).join('\n');
    expect(downText).toMatch(/could not ping http:\/\/127\.0\.0\.1:\d+\/… \(success\): ECONNREFUSED/);
    expect(downText).not.toContain('secret-uuid');
  });

  it('GET pings, explicit URLs, extra headers; no pings on dry runs unless asked', async () => {
    m = await monitor();
    await runBackupWithPlugins(plugin({ success: `${m.url}/ok`, failure: false, start: false, method: 'GET', headers: { 'X-Api-Key': 'k' } }));
    expect(m.hits).toHaveLength(1);
    expect(m.hits[0]).toMatchObject({ method: 'GET', path: '/ping/0b7c3c1e-secret-uuid/ok', body: undefined });
    expect(m.hits[0]!.headers['x-api-key']).toBe('k');
    await runBackupWithPlugins(plugin({ url: m.url }), { dryRun: true });
    expect(m.hits).toHaveLength(1);
    await runBackupWithPlugins(plugin({ url: m.url, dryRun: true }), { dryRun: true });
    expect(m.hits.map((h) => h.path).slice(1)).toEqual(['/ping/0b7c3c1e-secret-uuid/start', '/ping/0b7c3c1e-secret-uuid']);
  });

  it('the start ping does not hold up the backup', async () => {
    // The monitor answers the start ping only once the backup itself runs: a plug-in that waited for
    // that answer before the backup would time out on it.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url!);
      req.resume();
      if (req.url!.endsWith('/start')) void released.then(() => res.writeHead(200).end());
      else res.writeHead(200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ping/x`;
      const run = await runBackupWithPlugins(plugin({ url, timeout: 3000, retries: 0 }), { body: () => release() });
      expect(run.status).toBe('success');
      expect(run.logs.filter((l) => l.level === 'warn')).toEqual([]);
      expect(hits).toEqual(['/ping/x/start', '/ping/x']);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('bad options are refused when the plug-in loads, naming the option', async () => {
    await expect(loadTestPlugins(plugin({}))).rejects.toThrow(/notify: give "url"/);
    await expect(loadTestPlugins(plugin({ url: 'ftp://x/y' }))).rejects.toThrow(/"url" must be an http:\/\/ or https:\/\/ URL/);
    await expect(loadTestPlugins(plugin({ url: 'http://x', retries: -1 }))).rejects.toThrow(/"retries"/);
    await expect(loadTestPlugins(plugin({ url: 'http://x', timeout: 'soon' }))).rejects.toThrow(/"timeout"/);
    await expect(loadTestPlugins(plugin({ url: 'http://x', mehtod: 'GET' }))).rejects.toThrow(/unknown option "mehtod"/);
  });
});

