/** The official notify plug-in through the built CLI, named in the config as users do (it ships with the CLI). */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jsonLines, removeDir, runKiwi, tempDir } from './helpers.js';

let work: string;
let server: Server;
let hits: Array<{ path: string; body: any }>;
let url: string;

beforeEach(async () => {
  work = await tempDir('kiwi-cli-notify-');
  await mkdir(join(work, 'src'));
  await writeFile(join(work, 'src', 'a.txt'), 'a\n');
  hits = [];
  server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (d: string) => (text += d));
    req.on('end', () => {
      hits.push({ path: req.url!, body: text ? JSON.parse(text) : undefined });
      res.writeHead(200).end('OK');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ping/abc-secret`;
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await removeDir(work);
});

async function backup(options: Record<string, unknown>) {
  const cfg = join(work, 'kiwi.json');
  await writeFile(cfg, JSON.stringify({ plugins: [{ name: 'notify', options }] }));
  const env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_PASSWORD: 'pw', KIWI_REPOSITORY: join(work, 'repo') };
  if (!hits.length) await runKiwi(['init'], { env });
  return runKiwi(['backup', join(work, 'src'), '--config', cfg, '--json'], { env });
}

it('kiwi backup with notify by name: start and success pings with the snapshot id', async () => {
  const r = await backup({ url });
  expect(r.code, r.stderr).toBe(0);
  const snapshot = jsonLines(r.stdout).find((l) => l.message_type === 'summary')!.snapshot_id;
  expect(hits.map((h) => h.path)).toEqual(['/ping/abc-secret/start', '/ping/abc-secret']);
  expect(hits[1]!.body).toMatchObject({ event: 'success', status: 'success', snapshotId: snapshot });
  expect(r.stdout + r.stderr).not.toContain('abc-secret');
});

it('a monitor that is down never fails the backup', async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const r = await backup({ url, retries: 1, retryDelay: 10, timeout: '2s' });
  expect(r.code, r.stderr).toBe(0);
  const warnings = jsonLines(r.stdout).filter((l) => l.message_type === 'log' && l.level === 'warn').map((l) => String(l.message));
  expect(warnings.join('\n')).toMatch(/could not ping http:\/\/127\.0\.0\.1:\d+\/… \(success\): ECONNREFUSED after 2 attempts; the backup is not affected/);
});
