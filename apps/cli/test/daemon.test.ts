/**
 * `kiwi daemon` for real: the built CLI in its own process group, jobs on seconds schedules, the HTTP API
 * over HTTP. A data-directory plug-in (`probe`) records onServerStart and each backup's start and end.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, runKiwi, snapshotList, tempDir } from './helpers.js';
import { eventually, killDaemon, startDaemon, type DaemonProcess } from './daemon-helpers.js';

const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

/** Appends to $RECORD_FILE: `server-start`, `start <tag> <ms>`, `end <tag> <ms>`; $SLOW_MS per file. */
const PROBE = `
import { appendFileSync } from 'node:fs';
const rec = (line) => appendFileSync(process.env.RECORD_FILE, line + '\\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onServerStart(ctx, next) {
    rec('server-start ' + process.pid);
    if (process.env.FAIL_SERVER_START) throw new Error('cannot reach the license server');
    await next();
  },
  async onBackupStart(ctx, next) {
    const tag = ctx.backup.tags[0] ?? '-';
    rec('start ' + tag + ' ' + Date.now());
    try { await next(); } finally { rec('end ' + tag + ' ' + Date.now()); }
  },
  async onFile(ctx, next) {
    if (ctx.file.type === 'file' && process.env.SLOW_MS) await sleep(Number(process.env.SLOW_MS));
    await next();
  },
};
`;

interface Interval {
  tag: string;
  start: number;
  end: number;
}

function intervals(record: string): Interval[] {
  const open = new Map<string, number>();
  const out: Interval[] = [];
  for (const line of record.split('\n')) {
    const [what, tag, ms] = line.split(' ');
    if (what === 'start') open.set(tag!, Number(ms));
    if (what === 'end') {
      out.push({ tag: tag!, start: open.get(tag!)!, end: Number(ms) });
      open.delete(tag!);
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

function expectNoOverlap(list: Interval[]): void {
  for (let i = 1; i < list.length; i++) expect(list[i]!.start, `${list[i - 1]!.tag} and ${list[i]!.tag} overlap`).toBeGreaterThanOrEqual(list[i - 1]!.end);
}

async function usedPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { port: (srv.address() as { port: number }).port, close: () => new Promise((r) => srv.close(() => r())) };
}

describe('kiwi daemon', () => {
  let work: string;
  let dataDir: string;
  let record: string;
  let env: NodeJS.ProcessEnv;
  let daemon: DaemonProcess | undefined;

  beforeEach(async () => {
    work = await tempDir('kiwi-daemon-');
    dataDir = join(work, 'data');
    record = join(work, 'record.txt');
    await writeFile(record, '');
    await mkdir(join(dataDir, 'plugins', 'probe'), { recursive: true });
    await writeFile(join(dataDir, 'plugins', 'probe', 'index.mjs'), PROBE);
    for (const d of ['src-a', 'src-b']) {
      await mkdir(join(work, d));
      for (let i = 0; i < 4; i++) await writeFile(join(work, d, `f${i}.txt`), `${d} ${i}\n`);
    }
    env = { KIWI_DATA_DIR: dataDir, KIWI_PASSWORD: 'pw', RECORD_FILE: record };
    daemon = undefined;
  });
  afterEach(async () => {
    killDaemon(daemon);
    await removeDir(work);
  });

  async function init(repo: string): Promise<void> {
    const r = await runKiwi(['init', '--repo', repo], { env });
    expect(r.code, r.stderr).toBe(0);
  }
  async function config(jobs: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<string> {
    const file = join(work, 'kiwi.json');
    await writeFile(file, JSON.stringify({ jobs, ...extra }, null, 2));
    return file;
  }
  const runsOf = async (job: string) => (await daemon!.api(`/api/jobs/${job}/runs`)).body.runs as Array<Record<string, any>>;
  const finished = async (job: string, status = 'success') => (await runsOf(job)).filter((r) => r.status === status);

  it('acceptance 1: two jobs on seconds schedules; onServerStart once; each runs on time three times without overlapping; retention keeps what the policy says; /api/status shows the runs', async () => {
    await init(join(work, 'repo-a'));
    await init(join(work, 'repo-b'));
    const cfg = await config({
      a: { paths: ['./src-a'], repository: './repo-a', schedule: '*/2 * * * * *', tags: ['a'], forget: { keepLast: 2 } },
      b: { paths: ['./src-b'], repository: './repo-b', schedule: '*/3 * * * * *', tags: ['b'] },
    });
    daemon = await startDaemon(['--config', cfg], { ...env, SLOW_MS: '150' }, dataDir);
    expect(daemon.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await (await import('node:fs/promises')).stat(join(dataDir, 'daemon.token'))).mode & 0o777).toBe(0o600);

    await eventually(async () => (await finished('a')).length >= 3 && (await finished('b')).length >= 3, 'three successful runs of each job');
    const status = (await daemon.api('/api/status')).body;
    expect(status.version).toBeTruthy();
    expect(status.jobs.map((j: { name: string }) => j.name)).toEqual(['a', 'b']);
    for (const j of status.jobs) {
      expect(j.lastBackup.status).toBe('success');
      expect(j.runs).toBeGreaterThanOrEqual(3);
      expect(j.nextRun).toBeTruthy();
    }
    const stop = await daemon.stop();
    expect(stop.code, daemon.stderr()).toBe(0);

    const rec = await readFile(record, 'utf8');
    expect(rec.split('\n').filter((l) => l.startsWith('server-start'))).toHaveLength(1);
    const all = intervals(rec);
    for (const tag of ['a', 'b']) expectNoOverlap(all.filter((i) => i.tag === tag));

    // On time: every scheduled run is for a distinct second of its schedule, and started at or after it.
    for (const [job, every] of [['a', 2], ['b', 3]] as const) {
      const runs = (await readHistory(job)).filter((r) => r.trigger === 'schedule');
      const times = runs.map((r) => Date.parse(r.scheduledAt));
      expect(new Set(times).size).toBe(times.length);
      for (const r of runs) {
        expect(new Date(r.scheduledAt).getUTCSeconds() % every).toBe(0);
        expect(Date.parse(r.startedAt)).toBeGreaterThanOrEqual(Date.parse(r.scheduledAt));
      }
      const ok = runs.filter((r) => r.status === 'success');
      expect(ok.length).toBeGreaterThanOrEqual(3);
      for (const r of ok) expect(r.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    }
    // Retention keeps what the policy says (keepLast 2): each successful run of job a forgot all but the two
    // newest snapshots of job a; job b's snapshots (another repository) are untouched.
    const runsA = (await readHistory('a')).sort((x, y) => Date.parse(x.startedAt) - Date.parse(y.startedAt));
    const withSnapshot = runsA.filter((r) => r.snapshotId);
    const lastForget = [...runsA].reverse().find((r) => r.retention?.status === 'done')!;
    expect(lastForget.retention.kept).toBe(2);
    expect(runsA.filter((r) => r.retention?.status === 'done').flatMap((r) => r.retention.removed).length).toBeGreaterThanOrEqual(1);
    const later = withSnapshot.filter((r) => Date.parse(r.startedAt) > Date.parse(lastForget.startedAt)).map((r) => r.snapshotId);
    const keptByPolicy = withSnapshot.filter((r) => Date.parse(r.startedAt) <= Date.parse(lastForget.startedAt)).slice(-2).map((r) => r.snapshotId);
    const listed = await runKiwi(['snapshots', '--json', '--repo', join(work, 'repo-a')], { env });
    const ids = snapshotList(listed.stdout).map((l) => l.id);
    expect(ids.sort()).toEqual([...keptByPolicy, ...later].sort());
    const listedB = await runKiwi(['snapshots', '--json', '--repo', join(work, 'repo-b')], { env });
    const idsB = snapshotList(listedB.stdout);
    expect(idsB.length).toBe((await readHistory('b')).filter((r) => r.snapshotId).length);
    // The runs were recorded as interrupted or success, nothing left "running".
    expect((await readHistory('a')).every((r) => r.status !== 'running')).toBe(true);
  });

  async function readHistory(job: string): Promise<Array<Record<string, any>>> {
    const text = await readFile(join(dataDir, 'daemon', 'history', `${job}.jsonl`), 'utf8');
    const byId = new Map<string, Record<string, any>>();
    for (const l of text.split('\n').filter(Boolean)) {
      const r = JSON.parse(l);
      byId.set(r.id, r);
    }
    return [...byId.values()];
  }

  it('two jobs on one repository with overlapping schedules queue: never at once, both keep running', async () => {
    await init(join(work, 'repo'));
    const cfg = await config({
      c: { paths: ['./src-a'], repository: './repo', schedule: '* * * * * *', tags: ['c'] },
      d: { paths: ['./src-b'], repository: './repo', schedule: '* * * * * *', tags: ['d'] },
    });
    daemon = await startDaemon(['--config', cfg], { ...env, SLOW_MS: '200' }, dataDir);
    await eventually(async () => (await finished('c')).length >= 2 && (await finished('d')).length >= 2, 'two runs of each job');
    await daemon.stop();
    const all = intervals(await readFile(record, 'utf8'));
    expect(all.filter((i) => i.tag === 'c').length).toBeGreaterThanOrEqual(2);
    expect(all.filter((i) => i.tag === 'd').length).toBeGreaterThanOrEqual(2);
    expectNoOverlap(all); // c and d together: one repository, one run at a time
    const lines = daemon.lines();
    expect(lines.some((l) => l.message_type === 'job_queued')).toBe(true);
    expect(lines.some((l) => l.message_type === 'job_skipped' && /still (running|waiting)/.test(String(l.reason)))).toBe(true);
  });

  it('a job whose repository is unreachable fails with the error recorded; the daemon keeps running and the next run happens', async () => {
    const cfg = await config({
      lost: { paths: ['./src-a'], repository: './not-there', schedule: '*/2 * * * * *', tags: ['lost'] },
    });
    daemon = await startDaemon(['--config', cfg], env, dataDir);
    const failed = await eventually(async () => (await finished('lost', 'failure'))[0], 'a failed run');
    expect(failed.error).toMatch(/not-there/);
    expect(failed.error).toMatch(/repository/i);
    expect((await daemon.api('/healthz', { token: null })).status).toBe(200);
    // The repository comes back: a later run succeeds.
    await init(join(work, 'not-there'));
    await eventually(async () => (await finished('lost', 'success')).length >= 1, 'a successful run after the repository came back');
    const runs = await runsOf('lost');
    expect(runs.filter((r) => r.status === 'failure').length).toBeGreaterThanOrEqual(1);
    expect((await daemon.stop()).code).toBe(0);
  });

  it('a password in a job\'s repository URL reaches neither /api/status, the run history nor the --json log, whatever it holds', async () => {
    // An adapter that quotes its URL in its error, as a careless custom adapter may. The password holds
    // "/", "@" and a space: the daemon once stored its errors as they came, and the printable repository
    // stopped masking at the first "/".
    await writeFile(join(work, 'echo-adapter.mjs'), "export default { schemes: ['echo'], open(url) { throw new Error('cannot reach ' + url + ' right now'); } };\n");
    const repository = 'echo://backup:Tr0ub dor/x@nas.example/srv/kiwi';
    const cfg = await config({ leaky: { paths: ['./src-a'], repository, schedule: '*/2 * * * * *' } }, { storage: { echo: './echo-adapter.mjs' } });
    daemon = await startDaemon(['--config', cfg], env, dataDir);
    const failed = await eventually(async () => (await finished('leaky', 'failure'))[0], 'a failed run');
    expect(failed.error).toBe('cannot reach echo://backup:***@nas.example/srv/kiwi right now');
    const status = (await daemon.api('/api/status')).body as { jobs: Array<{ name: string; repository: string; lastRun: { error: string } }> };
    expect(status.jobs[0]).toMatchObject({ repository: 'echo://backup:***@nas.example/srv/kiwi', lastRun: { error: failed.error } });
    await daemon.waitForLine((l) => l.message_type === 'job_error');
    expect((await daemon.stop()).code).toBe(0);
    const history = await readFile(join(dataDir, 'daemon', 'history', 'leaky.jsonl'), 'utf8');
    for (const text of [daemon.stdout(), daemon.stderr(), history, JSON.stringify(status)]) expect(text).not.toMatch(/Tr0ub|dor\/x/);
  });

  it('the API: 401 without or with a wrong token (nothing leaked), 404 for an unknown job, 202 then 409 while running, events as they happen', async () => {
    await init(join(work, 'repo'));
    const cfg = await config({ 'secret-job-name': { paths: ['./src-a'], repository: './repo', schedule: '0 0 1 1 *', tags: ['m'] } });
    daemon = await startDaemon(['--config', cfg], { ...env, SLOW_MS: '400' }, dataDir);

    for (const token of [null, 'wrong-token-wrong-token', `${daemon.token}x`]) {
      for (const path of ['/api/status', '/api/jobs/secret-job-name/runs', '/api/events', '/api/jobs/nope/runs']) {
        const r = await daemon.api(path, { token });
        expect(r.status, `${path} with ${token}`).toBe(401);
        expect(r.text).not.toContain('secret-job-name');
        expect(r.text).not.toContain(work);
      }
      expect((await daemon.api('/api/jobs/secret-job-name/run', { method: 'POST', token })).status).toBe(401);
    }
    const health = await daemon.api('/healthz', { token: null });
    expect(health.status).toBe(200);
    expect(health.text).not.toContain('secret-job-name');
    const page = await daemon.api('/', { token: null });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<title>Kiwi</title>');
    expect(page.text).not.toContain('secret-job-name');

    expect((await daemon.api('/api/jobs/nope/run', { method: 'POST' })).status).toBe(404);
    expect((await daemon.api('/api/jobs/nope/runs')).status).toBe(404);
    expect((await daemon.api('/api/jobs/secret-job-name/run')).status).toBe(405);

    // Live events: open the stream first, then start a run.
    const events: Array<{ event: string; data: any }> = [];
    const ac = new AbortController();
    const stream = fetch(new URL('/api/events', daemon.url), { headers: { Authorization: `Bearer ${daemon.token}` }, signal: ac.signal }).then(async (res) => {
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
        }
      }
    }).catch(() => undefined);
    await eventually(() => events.some((e) => e.event === 'status'), 'the first status event');

    const first = await daemon.api('/api/jobs/secret-job-name/run', { method: 'POST' });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ job: 'secret-job-name', task: 'backup', state: 'started' });
    const again = await daemon.api('/api/jobs/secret-job-name/run', { method: 'POST' });
    expect(again.status).toBe(409);
    const running = (await daemon.api('/api/status')).body.jobs[0].running;
    expect(running).toMatchObject({ runId: first.body.run_id, kind: 'backup', trigger: 'manual' });

    await eventually(() => events.find((e) => e.event === 'finished' && e.data.run.id === first.body.run_id), 'the finished event');
    ac.abort();
    await stream;
    const mine = events.filter((e) => ['started', 'progress', 'finished'].includes(e.event));
    expect(mine[0]!.event).toBe('started');
    expect(mine.some((e) => e.event === 'progress' && e.data.progress.files >= 1)).toBe(true);
    const done = mine.find((e) => e.event === 'finished')!.data.run;
    expect(done).toMatchObject({ status: 'success', trigger: 'manual', kind: 'backup' });
    expect(done.stats.totalFiles).toBe(4);

    const snaps = await daemon.api('/api/jobs/secret-job-name/snapshots');
    expect(snaps.status).toBe(200);
    expect(snaps.body.snapshots).toHaveLength(1);
    expect(snaps.body.snapshots[0]).toMatchObject({ id: done.snapshotId, files: 4, paths: [join(work, 'src-a')] });
    expect((await daemon.stop()).code).toBe(0);
  });

  it('a run missed while the daemon was down runs once at start with catchUp, not without', async () => {
    await init(join(work, 'repo'));
    const cfg = await config({
      yearly: { paths: ['./src-a'], repository: './repo', schedule: '0 0 1 1 *', tags: ['y'], catchUp: true },
      plain: { paths: ['./src-b'], repository: './repo', schedule: '0 0 1 1 *', tags: ['p'] },
    });
    await mkdir(join(dataDir, 'daemon'), { recursive: true });
    const twoYearsAgo = new Date(Date.now() - 2 * 366 * 86_400_000).toISOString();
    await writeFile(join(dataDir, 'daemon', 'state.json'), JSON.stringify({ lastAlive: twoYearsAgo }));
    daemon = await startDaemon(['--config', cfg], env, dataDir);
    const run = await eventually(async () => (await finished('yearly'))[0], 'the catch-up run');
    expect(run.trigger).toBe('catch-up');
    expect(new Date(run.scheduledAt).getTime()).toBeGreaterThan(Date.parse(twoYearsAgo));
    await daemon.stop();
    expect(await readHistoryOrEmpty('yearly')).toHaveLength(1); // once, not once per missed year
    expect(await readHistoryOrEmpty('plain')).toEqual([]);
  });

  it('check (with readDataSubset) and prune run on demand and on their schedules, through the repository queue', async () => {
    await init(join(work, 'repo'));
    const cfg = await config({
      j: { paths: ['./src-a'], repository: './repo', schedule: '0 0 1 1 *', tags: ['j'], check: { schedule: '0 0 1 1 *', readDataSubset: '1/1' }, prune: { schedule: '0 3 * * 0' } },
    });
    daemon = await startDaemon(['--config', cfg], env, dataDir);
    const backup = await daemon.api('/api/jobs/j/run', { method: 'POST' });
    await eventually(async () => (await finished('j')).some((r) => r.id === backup.body.run_id), 'the backup');
    const check = await daemon.api('/api/jobs/j/run?task=check', { method: 'POST' });
    expect(check.status).toBe(202);
    const checked = await eventually(async () => (await runsOf('j')).find((r) => r.id === check.body.run_id && r.status !== 'running'), 'the check');
    expect(checked).toMatchObject({ kind: 'check', status: 'success', check: { errors: 0, readData: false, readDataSubset: '1/1' } });
    expect(checked.check.note).toMatch(/of pack data read and verified/);
    const prune = await daemon.api('/api/jobs/j/run?task=prune', { method: 'POST' });
    expect(prune.status).toBe(202);
    const pruned = await eventually(async () => (await runsOf('j')).find((r) => r.id === prune.body.run_id && r.status !== 'running'), 'the prune');
    expect(pruned).toMatchObject({ kind: 'prune', status: 'success', retention: { status: 'done', message: expect.stringMatching(/^deleted \d+ packs?, repacked \d+, freed .*; .* unused data left$/) } });
    expect((await daemon.api('/api/jobs/j/run?task=dance', { method: 'POST' })).status).toBe(400);
    const status = (await daemon.api('/api/status')).body.jobs[0];
    expect(status.tasks.map((t: { kind: string }) => t.kind)).toEqual(['backup', 'prune', 'check']);
    expect(status.tasks[1].nextRun).toBeTruthy();
    expect((await daemon.stop()).code).toBe(0);
  });

  async function readHistoryOrEmpty(job: string) {
    try {
      return await readHistory(job);
    } catch {
      return [];
    }
  }

  describe('refuses to start, exit 2, with a clear message', () => {
    async function refused(jobs: Record<string, unknown>, extraArgs: string[] = [], extraEnv: NodeJS.ProcessEnv = {}) {
      const cfg = await config(jobs);
      const r = await runKiwi(['daemon', '--config', cfg, '--listen', '127.0.0.1:0', ...extraArgs], { env: { ...env, ...extraEnv }, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      return r.stderr;
    }

    it('an invalid cron expression or time zone names the job and the key', async () => {
      expect(await refused({ nightly: { paths: ['/x'], schedule: '61 2 * * *' } })).toMatch(/jobs\.nightly\.schedule: invalid cron expression "61 2 \* \* \*".*minute/);
      expect(await refused({ nightly: { paths: ['/x'], schedule: '0 2 * *' } })).toMatch(/jobs\.nightly\.schedule: "0 2 \* \*" has 4 fields/);
      expect(await refused({ weekly: { paths: ['/x'], schedule: '0 2 * * 0', timezone: 'Europe/Atlantis' } })).toMatch(/jobs\.weekly\.timezone: unknown time zone "Europe\/Atlantis"/);
      expect(await refused({ w: { paths: ['/x'], schedule: '0 2 * * 0', check: { schedule: 'every day' } } })).toMatch(/jobs\.w\.check\.schedule: "every day" has 2 fields/);
    });

    it('no jobs', async () => {
      expect(await refused({})).toMatch(/no jobs to run: add "jobs" to the config/);
    });

    it('the listen port in use', async () => {
      const busy = await usedPort();
      try {
        const cfg = await config({ a: { paths: ['./src-a'], schedule: '0 2 * * *' } });
        const r = await runKiwi(['daemon', '--config', cfg, '--listen', `127.0.0.1:${busy.port}`], { env });
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${busy.port}: the address is already in use`);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      } finally {
        await busy.close();
      }
    });

    it('a plug-in that throws in onServerStart; kiwi plugins --check reports the same', async () => {
      const stderr = await refused({ a: { paths: ['./src-a'], schedule: '0 2 * * *' } }, [], { FAIL_SERVER_START: '1' });
      expect(stderr).toMatch(/a plug-in failed at start, so the daemon does not run: plug-in "probe" failed in onServerStart: cannot reach the license server/);
      const check = await runKiwi(['plugins', '--check'], { env: { ...env, FAIL_SERVER_START: '1' } });
      expect(check.code).toBe(2);
      expect(check.stderr).toMatch(/onServerStart failed: plug-in "probe" failed in onServerStart: cannot reach the license server/);
      const ok = await runKiwi(['plugins', '--check'], { env });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/onServerStart: ok \(probe\)/);
      expect((await readFile(record, 'utf8')).split('\n').filter((l) => l.startsWith('server-start'))).toHaveLength(3);
    });

    it('a data directory that is not writable', async () => {
      const cfg = await config({ a: { paths: [join(work, 'src-a')], schedule: '0 2 * * *' } });
      const locked = join(work, 'locked');
      await mkdir(locked, { mode: 0o755 });
      let r;
      if (isRoot) {
        // Root writes anywhere: run the daemon as nobody on a data directory owned by root.
        await chmod(work, 0o755);
        await chown(cfg, NOBODY.uid, NOBODY.gid);
        r = await runKiwi(['daemon', '--config', cfg, '--listen', '127.0.0.1:0'], { env: { KIWI_DATA_DIR: locked, KIWI_PASSWORD: 'pw' }, asUser: NOBODY });
      } else {
        await chmod(locked, 0o555);
        r = await runKiwi(['daemon', '--config', cfg, '--listen', '127.0.0.1:0'], { env: { KIWI_DATA_DIR: locked, KIWI_PASSWORD: 'pw' } });
      }
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`the data directory ${locked} is not writable (permission denied)`);
    });
  });
});
