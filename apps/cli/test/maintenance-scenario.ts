/**
 * The maintenance commands (forget, prune, check subsets, repair, key, unlock, stats, lock waits) on one repository URL: the
 * same scenario runs on s3: and sftp: repositories (remote-*-maintenance.test.ts).
 */
import { expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { Repository, openStorage, writeLockFile, type StorageAdapter } from '@kiwi-backup/core';
import { bytes, jsonLines, type RunResult } from './helpers.js';

export interface Scenario {
  /** Run kiwi on the repository (the URL and config are added by the caller). */
  kiwi(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<RunResult>;
  url: string;
  adapters: Record<string, StorageAdapter>;
  storageOptions: Record<string, Record<string, unknown>>;
  env: NodeJS.ProcessEnv;
  src: string;
  work: string;
}

export async function maintenanceScenario(s: Scenario): Promise<void> {
  const ok = (r: RunResult) => expect(r.code, r.stderr).toBe(0);
  ok(await s.kiwi(['init']));
  const ids: string[] = [];
  for (const [i, [time, tag]] of [['2024-05-01T10:00:00Z', 'keep'], ['2024-05-02T10:00:00Z', ''], ['2024-05-03T10:00:00Z', ''], ['2024-05-03T11:00:00Z', '']].entries()) {
    // One file changes with every backup, so that forgetting frees data for prune.
    await writeFile(join(s.src, 'gen.bin'), bytes(100_000, 1000 + i));
    const r = await s.kiwi(['backup', s.src, '--time', time!, ...(tag ? ['--tag', tag] : []), '--json']);
    ok(r);
    ids.push(String(jsonLines(r.stdout).find((l) => l.message_type === 'summary')!.snapshot_id));
  }
  const snapshotIds = async () => {
    const r = await s.kiwi(['snapshots', '--json-lines']);
    ok(r);
    return jsonLines(r.stdout)
      .filter((l) => l.message_type === 'snapshot')
      .map((l) => String(l.id))
      .sort();
  };

  // stats over the remote repository.
  const stats = await s.kiwi(['stats', '--mode', 'raw-data', '--json']);
  ok(stats);
  const sum = jsonLines(stats.stdout).find((l) => l.message_type === 'summary')!;
  expect(sum).toMatchObject({ snapshots: 4, missing_blobs: 0 });
  expect(Number(sum.dedup_ratio)).toBeGreaterThan(1.8); // four snapshots sharing most of their files

  // forget: dry run changes nothing; then the policy; then an id.
  const dry = await s.kiwi(['forget', '--keep-daily', '2', '--keep-tag', 'keep', '--dry-run', '--json']);
  ok(dry);
  expect(jsonLines(dry.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ would_remove: 1, removed_ids: [ids[2]] });
  expect(await snapshotIds()).toHaveLength(4);
  const real = await s.kiwi(['forget', '--keep-daily', '2', '--keep-tag', 'keep']);
  ok(real);
  expect(real.stdout).toContain('removed 1 snapshot');
  expect(await snapshotIds()).toEqual([ids[0], ids[1], ids[3]].sort());
  ok(await s.kiwi(['forget', ids[1]!.slice(0, 12)]));
  expect(await snapshotIds()).toEqual([ids[0], ids[3]].sort());

  // prune: a dry run changes nothing; the real one frees the forgotten generations (batch deletes on S3).
  const pruneDry = await s.kiwi(['prune', '--dry-run', '--json']);
  ok(pruneDry);
  const planned = jsonLines(pruneDry.stdout).find((l) => l.message_type === 'summary')!;
  expect(Number(planned.bytes_freed)).toBeGreaterThan(150_000);
  const pruned = await s.kiwi(['prune', '--max-unused', '0%', '--json']);
  ok(pruned);
  expect(jsonLines(pruned.stdout).find((l) => l.message_type === 'summary')).toMatchObject({ dry_run: false });
  ok(await s.kiwi(['check', '--read-data']));
  ok(await s.kiwi(['check', '--read-data-subset', '1/2']));
  const repairDry = await s.kiwi(['repair', 'index', '--dry-run']);
  ok(repairDry);
  expect(repairDry.stderr).toMatch(/the index is complete|dry run/);
  const target = join(s.work, `restored-${Math.random().toString(36).slice(2)}`);
  ok(await s.kiwi(['restore', ids[3]!.slice(0, 12), '--target', target]));
  expect(await readFile(join(target, s.src, 'gen.bin'))).toEqual(bytes(100_000, 1003));

  // Locks: a held exclusive lock makes forget wait and give up (11), a stale one is removed by unlock.
  const storage = await openStorage(s.url, { adapters: s.adapters, options: s.storageOptions, env: s.env });
  const repo = await Repository.open(storage, String(s.env.KIWI_PASSWORD), { logger: { info: () => {}, warn: () => {} } });
  try {
    const held = await repo.lock('exclusive');
    const blocked = await s.kiwi(['forget', '--keep-last', '1', '--retry-lock', '1s']);
    expect(blocked.code, blocked.stderr).toBe(11);
    expect(blocked.stderr).toContain(`an exclusive lock is held by pid ${process.pid}`);
    await held.release();
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    const stale = await writeLockFile(repo.lockContext(), { time: new Date().toISOString(), hostname: hostname(), pid: deadPid, username: 'u', exclusive: true });
    const unlock = await s.kiwi(['unlock']);
    ok(unlock);
    expect(unlock.stdout).toContain(`removed locks/${stale}: exclusive lock of pid ${deadPid}`);
    const names: string[] = [];
    for await (const f of storage.list('lock')) names.push(f.name);
    expect(names).toEqual([]);
  } finally {
    await repo.close();
    await storage.close();
  }

  // Keys: add one, remove the first with the new password; the old one no longer opens.
  const pw = join(s.work, `new-password-${Math.random().toString(36).slice(2)}`);
  await writeFile(pw, 'the new one\n');
  ok(await s.kiwi(['key', 'add', '--new-password-file', pw]));
  const keys = jsonLines((await s.kiwi(['key', 'list', '--json'])).stdout).filter((l) => l.message_type === 'key');
  expect(keys).toHaveLength(2);
  const old = keys.find((k) => k.current)!;
  ok(await s.kiwi(['key', 'remove', String(old.id).slice(0, 8)], { KIWI_PASSWORD: 'the new one' }));
  expect((await s.kiwi(['snapshots'])).code).toBe(12);
  const check = await s.kiwi(['check'], { KIWI_PASSWORD: 'the new one' });
  expect(check.code, check.stderr + check.stdout).toBe(0);
}
