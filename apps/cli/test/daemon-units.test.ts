/** The daemon's parts on their own: schedules (DST), the timers, the run queue, the history, the token, signals. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSchedule } from '../src/daemon/schedule.js';
import { RunQueue, Scheduler, type QueueItem } from '../src/daemon/scheduler.js';
import { HistoryStore, HISTORY_LIMIT, type RunRecord } from '../src/daemon/history.js';
import { loadOrCreateToken, tokenMatches } from '../src/daemon/token.js';
import { parseListen } from '../src/daemon/http.js';
import { GracefulStop, parseStopTimeout } from '../src/daemon/signals.js';
import { buildJobs, repositoryKey, type DaemonJob } from '../src/daemon/jobs.js';
import { Daemon } from '../src/daemon/daemon.js';
import { attachLog, EventBus } from '../src/daemon/events.js';
import { startApiServer } from '../src/daemon/http.js';
import { runCheckTask, type RunnerContext } from '../src/daemon/runner.js';
import type { RetentionEngine } from '../src/daemon/retention.js';
import { maskUrl } from '../src/format.js';
import type { Output } from '../src/output.js';
import type { Session } from '../src/session.js';
import type { PluginRuntime } from '@kiwi-backup/core';
import { removeDir, tempDir } from './helpers.js';

/** Every scheduled time in [from, to), by repeated next(). */
function times(expr: string, tz: string | undefined, from: string, to: string): Date[] {
  const s = parseSchedule(expr, tz);
  const out: Date[] = [];
  let t = new Date(from);
  for (;;) {
    const n = s.next(t);
    if (!n || n >= new Date(to)) return out;
    expect(n.getTime()).toBeGreaterThan(t.getTime());
    out.push(n);
    t = n;
  }
}
const local = (d: Date, tz: string) => d.toLocaleString('sv-SE', { timeZone: tz });

describe('schedules and DST', () => {
  it('a daily time inside the hour skipped in spring runs once that day, an hour later in wall time', () => {
    const runs = times('30 2 * * *', 'Europe/Berlin', '2025-03-28T00:00:00Z', '2025-04-01T00:00:00Z');
    expect(runs.map((d) => local(d, 'Europe/Berlin'))).toEqual(['2025-03-28 02:30:00', '2025-03-29 02:30:00', '2025-03-30 03:00:00', '2025-03-31 02:30:00']);
  });

  it('a daily time inside the hour repeated in autumn runs once that day', () => {
    for (const [tz, from, to, n] of [
      ['Europe/Berlin', '2025-10-24T00:00:00Z', '2025-10-29T00:00:00Z', 4], // 25th to 28th (the 24th's 01:30 is before `from`)
      ['America/New_York', '2025-10-31T00:00:00Z', '2025-11-05T00:00:00Z', 5], // Oct 31st to Nov 4th
    ] as const) {
      const runs = times('30 1 * * *', tz, from, to);
      const days = runs.map((d) => local(d, tz).slice(0, 10));
      expect(new Set(days).size, `${tz}: ${runs.map((d) => d.toISOString()).join(', ')}`).toBe(days.length);
      expect(days).toHaveLength(n);
    }
  });

  it('hourly across both changes: one run per real hour, none skipped, none doubled', () => {
    for (const [from, to, hours] of [
      // Strictly after `from`, before `to`: 23:00, 00:00, 01:00, 02:00, 03:00 UTC.
      ['2025-03-29T22:00:00Z', '2025-03-30T04:00:00Z', 5],
      ['2025-10-25T22:00:00Z', '2025-10-26T04:00:00Z', 5],
    ] as const) {
      const runs = times('0 * * * *', 'Europe/Berlin', from, to);
      expect(runs).toHaveLength(hours);
      for (let i = 1; i < runs.length; i++) expect(runs[i]!.getTime() - runs[i - 1]!.getTime()).toBe(3_600_000);
    }
  });

  it('6 fields have seconds; nicknames work; the machine\'s zone is the default', () => {
    expect(times('*/15 * * * * *', 'UTC', '2025-01-01T00:00:00Z', '2025-01-01T00:01:00Z').map((d) => d.getUTCSeconds())).toEqual([15, 30, 45]);
    expect(times('@daily', 'UTC', '2025-01-01T00:00:00Z', '2025-01-03T00:00:01Z')).toHaveLength(2);
    expect(parseSchedule('0 2 * * *').timezone).toBeUndefined();
  });

  it('invalid expressions and zones are refused with the reason', () => {
    expect(() => parseSchedule('0 0 2 * * * 2030')).toThrow(/has 7 fields/);
    expect(() => parseSchedule('0 25 * * *')).toThrow(/invalid cron expression "0 25 \* \* \*": .*hour/);
    expect(() => parseSchedule('0 2 * * *', 'Moon/Base')).toThrow(/invalid time zone "Moon\/Base"/);
  });
});

describe('Scheduler', () => {
  afterEach(() => vi.useRealTimers());
  const job = (name: string, repo = '/r'): DaemonJob => ({ name, config: { paths: ['/x'], schedule: '* * * * * *' }, repository: repo, isDefaultRepo: false, repositoryKey: repositoryKey(repo), tasks: [] });

  it('fires each scheduled second once, in order, and stops', () => {
    vi.useFakeTimers({ now: new Date('2025-01-01T00:00:00.300Z') });
    const fired: string[] = [];
    const task = { kind: 'backup' as const, schedule: parseSchedule('* * * * * *', 'UTC') };
    const s = new Scheduler([{ job: job('a'), task }], (_t, at) => fired.push(at.toISOString()));
    s.start();
    expect(s.nextRun('a', 'backup')!.toISOString()).toBe('2025-01-01T00:00:01.000Z');
    vi.advanceTimersByTime(3_000);
    expect(fired).toEqual(['2025-01-01T00:00:01.000Z', '2025-01-01T00:00:02.000Z', '2025-01-01T00:00:03.000Z']);
    s.stop();
    vi.advanceTimersByTime(5_000);
    expect(fired).toHaveLength(3);
  });

  it('a timer that fires early waits out the rest; a time far away is not fired early (long waits are split)', () => {
    vi.useFakeTimers({ now: new Date('2025-01-01T00:00:00Z') });
    const fired: Date[] = [];
    const task = { kind: 'backup' as const, schedule: parseSchedule('0 0 1 1 *', 'UTC') }; // a year away: more than setTimeout's limit
    const s = new Scheduler([{ job: job('a'), task }], (_t, at) => fired.push(at));
    s.start();
    vi.advanceTimersByTime(2_147_483_647 + 10);
    expect(fired).toEqual([]);
    s.stop();
  });
});

describe('RunQueue', () => {
  const job = (name: string, repo: string): DaemonJob => ({ name, config: { paths: ['/x'], schedule: '* * * * *' }, repository: repo, isDefaultRepo: false, repositoryKey: repositoryKey(repo), tasks: [] });

  it('one run at a time per repository, in order; other repositories in parallel; a busy task is not added twice', async () => {
    const log: string[] = [];
    const gates = new Map<string, () => void>();
    const q = new RunQueue(async (item: QueueItem) => {
      log.push(`start ${item.runId}`);
      await new Promise<void>((r) => gates.set(item.runId, r));
      log.push(`end ${item.runId}`);
    });
    const a = job('a', '/repo/one');
    const b = job('b', 'local:/repo/one/'); // the same repository, spelt differently
    const c = job('c', '/repo/two');
    expect(q.add({ job: a, kind: 'backup', runId: 'a1' })).toBe('started');
    expect(q.add({ job: b, kind: 'backup', runId: 'b1' })).toBe('queued');
    expect(q.add({ job: c, kind: 'backup', runId: 'c1' })).toBe('started');
    expect(q.add({ job: a, kind: 'backup', runId: 'a2' })).toBe('busy');
    expect(q.add({ job: b, kind: 'backup', runId: 'b2' })).toBe('busy');
    expect(q.add({ job: a, kind: 'check', runId: 'a3' })).toBe('queued');
    expect(log).toEqual(['start a1', 'start c1']);
    gates.get('a1')!();
    await vi.waitFor(() => expect(log).toContain('start b1'));
    expect(log).toEqual(['start a1', 'start c1', 'end a1', 'start b1']);
    const dropped = q.close();
    expect(dropped.map((d) => d.runId)).toEqual(['a3']);
    expect(q.add({ job: c, kind: 'check', runId: 'c2' })).toBe('closed');
    gates.get('b1')!();
    gates.get('c1')!();
    await q.idle();
    expect(log.filter((l) => l.startsWith('start'))).toEqual(['start a1', 'start c1', 'start b1']);
  });
});

describe('HistoryStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('kiwi-history-');
  });
  afterEach(async () => removeDir(dir));

  const rec = (i: number, status: RunRecord['status'] = 'success'): RunRecord => ({
    id: i.toString(16).padStart(16, '0'),
    job: 'nightly',
    kind: 'backup',
    trigger: 'schedule',
    startedAt: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
    status,
  });

  it('keeps the last 100 runs per job, newest first; the file is compacted', async () => {
    const h = new HistoryStore(dir);
    for (let i = 0; i < 350; i++) {
      await h.save(rec(i, 'running'));
      if (i % 2 === 0) await h.save({ ...rec(i), finishedAt: new Date().toISOString() });
    }
    const runs = await h.runs('nightly');
    expect(runs).toHaveLength(HISTORY_LIMIT);
    expect(runs[0]!.id).toBe(rec(349).id);
    expect(runs.at(-1)!.id).toBe(rec(250).id);
    const lines = (await readFile(join(dir, 'daemon', 'history', 'nightly.jsonl'), 'utf8')).split('\n').filter(Boolean);
    expect(lines.length).toBeLessThanOrEqual(300);
    // A fresh store (the next start) reads the same.
    const again = await new HistoryStore(dir).runs('nightly');
    expect(again.map((r) => [r.id, r.status])).toEqual(runs.map((r) => [r.id, r.status]));
    expect(((await stat(join(dir, 'daemon', 'history', 'nightly.jsonl'))).mode & 0o777)).toBe(0o600);
  });

  it('skips torn and foreign lines; closes runs a dead daemon left open as interrupted', async () => {
    await mkdir(join(dir, 'daemon', 'history'), { recursive: true });
    const file = join(dir, 'daemon', 'history', 'nightly.jsonl');
    await writeFile(
      file,
      [JSON.stringify(rec(1)), '{"id": "torn', JSON.stringify({ ...rec(2), job: 'other' }), JSON.stringify({ ...rec(3), status: 'exploded' }), '[]', JSON.stringify(rec(4, 'running'))].join('\n') + '\n',
    );
    const h = new HistoryStore(dir);
    expect((await h.runs('nightly')).map((r) => r.id)).toEqual([rec(4).id, rec(1).id]);
    const closed = await h.closeAbandoned(['nightly']);
    expect(closed.map((r) => r.id)).toEqual([rec(4).id]);
    const reread = await new HistoryStore(dir).runs('nightly');
    expect(reread[0]).toMatchObject({ id: rec(4).id, status: 'interrupted', error: expect.stringMatching(/daemon stopped during this run/) });
  });
});

describe('token, listen address, stop timeout', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('kiwi-token-');
  });
  afterEach(async () => removeDir(dir));

  it('the token is created once (0600), read back, and compared exactly', async () => {
    const first = await loadOrCreateToken(dir);
    expect(first.created).toBe(true);
    expect((await stat(first.path)).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateToken(dir);
    expect(second).toEqual({ created: false, token: first.token, path: first.path });
    expect(tokenMatches(`Bearer ${first.token}`, first.token)).toBe(true);
    expect(tokenMatches(`bearer ${first.token}`, first.token)).toBe(true);
    for (const bad of [undefined, '', first.token, `Bearer ${first.token}x`, `Bearer ${first.token.slice(1)}`, `Basic ${first.token}`]) expect(tokenMatches(bad, first.token)).toBe(false);
    await writeFile(first.path, 'short\n');
    await expect(loadOrCreateToken(dir)).rejects.toThrow(/does not hold a usable token/);
  });

  it.runIf(process.platform !== 'win32')('a token file others could read or write is replaced by a new token, with a warning, not kept', async () => {
    // It was once made private again and kept, though anyone might have read it (or put a token of theirs in it).
    for (const mode of [0o644, 0o640, 0o606, 0o620]) {
      const old = await loadOrCreateToken(dir);
      await chmod(old.path, mode);
      const next = await loadOrCreateToken(dir);
      expect(next.token).not.toBe(old.token);
      expect(next.created).toBe(false);
      expect(next.replaced).toBe(
        `the API token file ${old.path} could be read or changed by other users (mode 0${mode.toString(8)}), so its token may be known: it was replaced by a new one (mode 0600); give the new token to the API's clients`,
      );
      expect((await stat(old.path)).mode & 0o777).toBe(0o600);
      expect((await readFile(old.path, 'utf8')).trim()).toBe(next.token);
      expect(await loadOrCreateToken(dir)).toEqual({ created: false, token: next.token, path: old.path });
    }
  });

  it('--listen forms', () => {
    expect(parseListen(undefined)).toEqual({ host: '127.0.0.1', port: 8484 });
    expect(parseListen('0.0.0.0:9000')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(parseListen(':9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseListen('9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseListen('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    for (const bad of ['localhost', '1.2.3.4:99999', 'x:y']) expect(() => parseListen(bad)).toThrow(/--listen must be host:port/);
  });

  it('--stop-timeout forms', () => {
    expect(parseStopTimeout(undefined)).toBe(60_000);
    expect(parseStopTimeout('90')).toBe(90_000);
    expect(parseStopTimeout('2m')).toBe(120_000);
    expect(parseStopTimeout('1500ms')).toBe(1500);
    for (const bad of ['0', '-1', 'soon', '99999h']) expect(() => parseStopTimeout(bad)).toThrow(/--stop-timeout/);
  });

  it('GracefulStop: the first signal aborts, later ones only log, the deadline exits', () => {
    vi.useFakeTimers();
    try {
      const lines: string[] = [];
      const exits: number[] = [];
      const stop = new GracefulStop({ stopTimeoutMs: 5_000, log: (l) => lines.push(l), exit: (c) => void exits.push(c) });
      stop.receive('SIGTERM');
      expect(stop.signal.aborted).toBe(true);
      vi.advanceTimersByTime(1000);
      stop.receive('SIGTERM');
      stop.receive('SIGINT');
      expect(exits).toEqual([]);
      expect(lines[1]).toMatch(/SIGTERM again: already stopping; waiting for the onBackupStop hooks \(4 s left/);
      vi.advanceTimersByTime(4_001);
      expect(exits).toEqual([130]);
      expect(lines.at(-1)).toMatch(/--stop-timeout of 5 s reached/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('GracefulStop without hooks (restore, prune…): no message speaks of onBackupStop hooks', () => {
    vi.useFakeTimers();
    try {
      const lines: string[] = [];
      const stop = new GracefulStop({ stopTimeoutMs: 5_000, hooks: false, log: (l) => lines.push(l), exit: () => undefined });
      stop.receive('SIGINT');
      stop.receive('SIGINT');
      vi.advanceTimersByTime(5_001);
      expect(lines).toEqual([
        'SIGINT received: stopping cleanly (at most 5 s, --stop-timeout)',
        'SIGINT again: already stopping; waiting for the clean stop (5 s left before --stop-timeout)',
        '--stop-timeout of 5 s reached: exiting now',
      ]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('jobs from the config', () => {
  it('cron errors name the job and the key; the default repository is used when none is named', () => {
    const fallback = { url: '/data/repository', isDefault: true };
    expect(() => buildJobs({ jobs: { n: { paths: ['/x'], schedule: '0 2 * * *', check: { schedule: '0 99 * * *' } } } }, '/etc/kiwi.json', fallback)).toThrow(
      /^config file \/etc\/kiwi\.json: jobs\.n\.check\.schedule: invalid cron expression "0 99 \* \* \*"/,
    );
    const [j, k] = buildJobs({ jobs: { n: { paths: ['/x'], schedule: '0 2 * * *', prune: { schedule: '0 3 * * 0' } }, m: { paths: ['/y'], schedule: '@daily', repository: 's3:b/p' } } }, undefined, fallback);
    expect(k).toMatchObject({ repository: 's3:b/p', isDefaultRepo: false, repositoryKey: 's3:b/p' });
    expect(j).toMatchObject({ name: 'n', repository: '/data/repository', isDefaultRepo: true, repositoryKey: 'local:/data/repository' });
    expect(j!.tasks.map((t) => t.kind)).toEqual(['backup', 'prune']);
  });

  it('a schedule that matches no date (30 February, 31 April) is refused, naming the job and the key, not left to never run', () => {
    const fallback = { url: '/data/repository', isDefault: true };
    expect(() => parseSchedule('0 0 30 2 *', 'UTC')).toThrow(/"0 0 30 2 \*" matches no date/);
    expect(() => buildJobs({ jobs: { n: { paths: ['/x'], schedule: '0 3 31 4 *' } } }, '/etc/kiwi.json', fallback)).toThrow(
      /^config file \/etc\/kiwi\.json: jobs\.n\.schedule: "0 3 31 4 \*" matches no date/,
    );
    expect(() => buildJobs({ jobs: { n: { paths: ['/x'], schedule: '0 2 * * *', timezone: 'Europe/Paris', check: { schedule: '0 0 0 31W 2 *' } } } }, '/etc/kiwi.json', fallback)).toThrow(
      /^config file \/etc\/kiwi\.json: jobs\.n\.check\.schedule: "0 0 0 31W 2 \*" matches no date/,
    );
    // Rare is not never: 29 February, the fifth Friday.
    expect(parseSchedule('0 0 29 2 *', 'UTC').next(new Date('2025-01-01T00:00:00Z'))!.toISOString()).toBe('2028-02-29T00:00:00.000Z');
    expect(parseSchedule('0 0 * * 5#5', 'UTC').next(new Date('2025-02-01T00:00:00Z'))!.toISOString()).toBe('2025-05-30T00:00:00.000Z');
  });
});

describe('secrets in what a run and the API report', () => {
  // A custom adapter that quotes its URL in its errors, password and all (the password holds "/", "@", a space).
  const repository = 'echo://backup:Tr0ub dor/x@nas.example/srv/kiwi';
  const job: DaemonJob = { name: 'leaky', config: { paths: ['/x'], schedule: '0 0 1 1 *', repository }, repository, isDefaultRepo: false, repositoryKey: repositoryKey(repository), tasks: [] };
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const fakeSession = (dataDir: string, openRepository: () => Promise<unknown>): Session =>
    ({
      dataDir,
      log: quiet,
      forRepository: (repo: string) => ({ repoUrl: repo, printableRepo: () => maskUrl(repo), close: async () => undefined, openRepository }),
    }) as unknown as Session;
  const noRetention: RetentionEngine = { unavailable: () => undefined, forget: async () => ({ kept: [], removed: [] }), prune: async () => ({ message: '' }) };
  let dir: string;
  beforeEach(async () => (dir = await tempDir('kiwi-daemon-secrets-')));
  afterEach(async () => removeDir(dir));

  it('a check whose storage errors quote the repository URL keeps its password out of the run record', async () => {
    const report = {
      errors: [{ file: 'data/ab/ab12', message: `cannot be read: GET ${repository}/data/ab/ab12 failed (503)` }],
      warnings: [{ file: 'data/cd/cd34', message: `unlisted pack at ${repository}/data/cd/cd34` }],
      counts: { errors: 1, warnings: 1 },
      affected: [],
      stats: { keys: 1, snapshots: 1, indexFiles: 1, packs: 2, blobs: 2, trees: 1, bytesVerified: 0 },
    };
    const session = fakeSession(dir, async () => ({ check: async () => report }));
    const ctx: RunnerContext = { session, plugins: {} as PluginRuntime, retention: noRetention, log: quiet };
    const rec = { id: '0123456789abcdef', job: 'leaky', kind: 'check' as const, trigger: 'manual' as const, startedAt: new Date().toISOString(), status: 'running' as const } as RunRecord;
    await runCheckTask(ctx, job, 'pw', rec, new AbortController().signal, () => undefined);
    expect(rec.status).toBe('failure');
    expect(rec.error).toContain('echo://backup:***@nas.example/srv/kiwi/data/ab/ab12');
    expect(rec.check!.problems).toHaveLength(2);
    expect(JSON.stringify(rec)).not.toMatch(/Tr0ub|dor\/x/);
  });

  it('GET /api/jobs/<name>/snapshots masks the password of an error that quotes the repository URL', async () => {
    const session = fakeSession(dir, async () => {
      throw new Error(`cannot reach ${repository} right now`);
    });
    const daemon = new Daemon({ session, plugins: {} as PluginRuntime, jobs: [job], passwords: new Map(), retention: noRetention, bus: new EventBus(), version: 'test', recovered: [] });
    const http = await startApiServer(daemon, 'a-token-of-the-right-length', { host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(new URL('/api/jobs/leaky/snapshots', http.url), { headers: { Authorization: 'Bearer a-token-of-the-right-length' } });
      const text = await res.text();
      expect(res.status).toBe(502);
      expect(text).toContain('cannot reach echo://backup:***@nas.example/srv/kiwi right now');
      expect(text).not.toMatch(/Tr0ub|dor\/x/);
    } finally {
      await http.close();
    }
  });
});

describe('the human log', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a crafted file name in a run error can neither fake a log line nor send terminal escapes', () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const out = { json: false, clearProgress() {}, progress() {}, emit() {} } as unknown as Output;
    const bus = new EventBus();
    const detach = attachLog(bus, out, { verbose: false });
    const name = '/home/eve/x\n2026-12-06 02:03:12 database: backup success in 3m12s\x1b[2J\u202e';
    bus.publish({
      type: 'finished',
      time: new Date().toISOString(),
      run: { id: '0123456789abcdef', job: 'database', kind: 'backup', trigger: 'schedule', startedAt: new Date().toISOString(), status: 'partial', error: `1 entry could not be read, e.g. ${name}: permission denied` },
    });
    bus.publish({ type: 'log', time: new Date().toISOString(), level: 'warn', message: `cannot read ${name}`, job: 'database' });
    detach();
    expect(written).toHaveLength(2);
    for (const line of written) {
      expect(line.endsWith('\n')).toBe(true);
      expect(line.slice(0, -1)).not.toMatch(/[\n\r\x1b\u202e]/);
    }
    expect(written[0]).toContain('e.g. /home/eve/x\\n2026-12-06 02:03:12 database: backup success in 3m12s\\x1b[2J\\u202e: permission denied');
  });
});
