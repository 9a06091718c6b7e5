/**
 * The daemon's page in a real browser: Debian's Chromium, headless, driven by playwright-core (which
 * downloads no browser of its own). Required under CI=true. Loads the page, enters the token, sees the
 * jobs, presses "Run now" and watches the progress reach "success".
 * `UPDATE_DOCS_SCREENSHOT=1` also writes docs/daemon-page.png (the screenshot in docs/daemon.md).
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { describeWithServer } from '@kiwi-backup/test-servers';
import { removeDir, runKiwi, tempDir } from './helpers.js';
import { eventually, killDaemon, startDaemon, type DaemonProcess } from './daemon-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const docsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs');

const SLOW = `
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onFile(ctx, next) {
    if (ctx.file.type === 'file') await sleep(Number(process.env.SLOW_MS ?? 0));
    await next();
  },
};
`;

describeWithServer('Chromium', existsSync(CHROMIUM), 'install Debian\'s Chromium: `apt-get install -y chromium`', () => {
  let work: string;
  let dataDir: string;
  let daemon: DaemonProcess | undefined;
  let browser: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    profile = await mkdtemp(join(tmpdir(), 'kiwi-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 820 },
    });
  });
  afterAll(async () => {
    await browser?.close();
    await rm(profile, { recursive: true, force: true });
  });

  beforeEach(async () => {
    work = await tempDir('kiwi-page-');
    dataDir = join(work, 'data');
    await mkdir(join(dataDir, 'plugins', 'slow'), { recursive: true });
    await writeFile(join(dataDir, 'plugins', 'slow', 'index.mjs'), SLOW);
    for (const d of ['photos', 'documents']) {
      await mkdir(join(work, d, '2024'), { recursive: true });
      for (let i = 0; i < 24; i++) await writeFile(join(work, d, '2024', `${d}-${String(i).padStart(3, '0')}.dat`), `${d} ${i}\n`.repeat(200 + i * 50));
    }
    const env = { KIWI_DATA_DIR: dataDir, KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init', '--repo', join(work, 'repo')], { env })).code).toBe(0);
    await writeFile(
      join(work, 'kiwi.json'),
      JSON.stringify({
        repository: './repo',
        jobs: {
          documents: { paths: ['./documents'], schedule: '0 2 * * *', tags: ['documents'] },
          photos: { paths: ['./photos'], schedule: '30 3 * * *', timezone: 'Europe/Paris', tags: ['photos'] },
        },
      }),
    );
    daemon = await startDaemon(['--config', join(work, 'kiwi.json')], { ...env, SLOW_MS: '120' }, dataDir);
    // One finished run, so the table has a result to colour.
    expect((await daemon.api('/api/jobs/documents/run', { method: 'POST' })).status).toBe(202);
    await eventually(async () => (await daemon!.api('/api/status')).body.jobs[0].lastRun?.status === 'success', 'the first run of documents');
  });
  afterEach(async () => {
    killDaemon(daemon);
    await removeDir(work);
  });

  it('enter the token, see the jobs, press "Run now", watch the progress reach success', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    await page.goto(daemon!.url);

    // A wrong token is refused with a message; the right one opens the page.
    await page.fill('#token', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await page.locator('#login-error').filter({ hasText: 'not accepted' }).waitFor();
    await page.fill('#token', daemon!.token);
    await page.click('#login-form button[type=submit]');

    problems.length = 0; // the refused token's 401 was expected
    const documents = page.locator('tr.job[data-job="documents"]');
    const photos = page.locator('tr.job[data-job="photos"]');
    await documents.waitFor();
    await photos.waitFor();
    expect(await documents.locator('.badge').getAttribute('data-status')).toBe('success');
    expect(await photos.locator('.badge').textContent()).toBe('never run');
    await expect.poll(() => photos.locator('td').nth(3).textContent()).toContain('30 3 * * *');

    await photos.locator('button', { hasText: 'Run now' }).click();
    // Live progress: files, bytes, the current path and a bar, while it runs.
    const progress = page.locator('tr.progress-row [data-progress="photos"]');
    await progress.waitFor();
    await expect.poll(async () => Number((await progress.locator('[data-files]').textContent())?.replace(/\D/g, '') ?? 0), { timeout: 30_000 }).toBeGreaterThan(2);
    await expect.poll(() => progress.locator('.current').textContent()).toMatch(/photos-\d{3}\.dat/);
    expect(await photos.locator('.badge').getAttribute('data-status')).toBe('running');
    expect(await photos.locator('button').isDisabled()).toBe(true);
    // The detail panel follows the job picked in the table.
    await photos.click();
    await expect.poll(() => page.locator('#detail-title').textContent()).toBe('photos');
    const shot = process.env.UPDATE_DOCS_SCREENSHOT ? join(docsDir, 'daemon-page.png') : join(work, 'daemon-page.png');
    await page.screenshot({ path: shot, fullPage: true });

    await photos.locator('.badge[data-status="success"]').waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator('tr.progress-row').count()).toBe(0);
    // The run and its snapshot show in the job's lists.
    await page.locator('#runs tbody tr[data-run] .badge.success').first().waitFor();
    await page.locator('#snapshots tbody tr[data-snapshot]').first().waitFor();
    const status = (await daemon!.api('/api/status')).body;
    const snapshotId = status.jobs.find((j: { name: string }) => j.name === 'photos').lastRun.snapshotId;
    expect(await page.locator('#snapshots tbody tr[data-snapshot]').first().getAttribute('data-snapshot')).toBe(snapshotId);

    // The token is kept for the tab: a reload goes straight to the jobs.
    await page.reload();
    await page.locator('tr.job[data-job="photos"] .badge[data-status="success"]').waitFor();
    expect(await page.locator('#login').isHidden()).toBe(true);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('works at phone width: no sideways scrolling, the button is reachable', async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(daemon!.url);
    await page.fill('#token', daemon!.token);
    await page.click('#login-form button[type=submit]');
    await page.locator('tr.job[data-job="photos"]').waitFor();
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    const button = page.locator('tr.job[data-job="photos"] button', { hasText: 'Run now' });
    expect(await button.isVisible()).toBe(true);
    const box = (await button.boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(390);
    if (process.env.UPDATE_DOCS_SCREENSHOT) await page.screenshot({ path: join(docsDir, 'daemon-page-phone.png'), fullPage: true });
    await page.close();
  });
});
