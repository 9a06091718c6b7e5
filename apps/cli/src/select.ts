/**
 * Snapshot selection for the commands that read a snapshot (`restore`, `ls`, `diff`, `dump`,
 * `find`, `tag`): the `--host`, `--tag` and `--path` options, and the one line that says which
 * snapshot `latest` picked (stderr, and a `snapshot_selected` JSON line with `--json`).
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { ArgsDef } from 'citty';
import {
  selectSnapshot,
  selectSnapshots,
  type Repository,
  type SelectedSnapshot,
  type SnapshotRef,
  type SnapshotSelection,
} from '@kiwi-backup/core';
import { stringList } from './args.js';
import type { Output } from './output.js';
import { UsageError } from './exit-codes.js';

/** `--host`, `--tag`, `--path`: add to a command's args. */
export const selectArgs = {
  host: { type: 'string', description: 'Only snapshots of this host (repeatable: any of them). "latest" prefers this host\'s snapshots by default' },
  tag: { type: 'string', description: 'Only snapshots with these tags: "a,b" needs both; repeated --tag: any of the groups (repeatable)' },
  path: { type: 'string', description: 'Only snapshots whose source paths include this path (repeatable: all of them)' },
} as const satisfies ArgsDef;

/** The selection given by `--host`, `--tag` and `--path`. */
export function selectionFromArgs(args: Record<string, unknown>): SnapshotSelection {
  const hosts = stringList(args.host).flatMap((h) => h.split(',')).map((h) => h.trim()).filter(Boolean);
  const tags = stringList(args.tag).map((g) => g.split(',').map((t) => t.trim()).filter(Boolean));
  const paths = stringList(args.path).map((p) => {
    if (p.trim() === '') throw new UsageError('--path needs a path');
    return resolve(p);
  });
  return {
    ...(hosts.length ? { hosts } : {}),
    ...(tags.length ? { tags } : {}),
    ...(paths.length ? { paths } : {}),
  };
}

/** This machine's host name, as backups record it by default. */
export function thisHost(): string {
  return hostname();
}

/**
 * Resolve a snapshot reference with the command's selection options. For `latest`, says which
 * snapshot it is: a `snapshot_selected` line with `--json`; otherwise one stderr line (not with
 * `--quiet`) when stderr is a terminal, with `--verbose`, or whenever the choice deserves a note
 * (this host has no snapshots, other hosts have newer ones, or other path sets exist). A script
 * piping a plain `kiwi ls latest` gets a clean stderr.
 */
export async function chooseSnapshot(
  repo: Repository,
  ref: string,
  args: Record<string, unknown>,
  out: Output,
): Promise<SelectedSnapshot> {
  if (!ref) throw new UsageError('name a snapshot: an id prefix or "latest"');
  const sel = selectionFromArgs(args);
  const chosen = await selectSnapshot(repo, ref, sel, {
    thisHost: thisHost(),
    onDamaged: (file, err) => out.warn(`skipping damaged snapshot ${file}: ${err.message}`, { file }),
  });
  if (chosen.latest) announce(chosen, out, thisHost());
  return chosen;
}

/** Several snapshots (`find --snapshot`, `tag`): the named ones, or every one matching the selection. */
export async function chooseSnapshots(
  repo: Repository,
  refs: readonly string[],
  args: Record<string, unknown>,
  out: Output,
): Promise<SnapshotRef[]> {
  const sel = selectionFromArgs(args);
  return selectSnapshots(repo, refs, sel, {
    thisHost: thisHost(),
    onDamaged: (file, err) => out.warn(`skipping damaged snapshot ${file}: ${err.message}`, { file }),
  });
}

/** Local time, `2024-05-01 13:45:00`. */
export function localTime(iso: string | Date): string {
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function announce(s: SelectedSnapshot, out: Output, host: string): void {
  const snap = s.snapshot;
  const notes: string[] = [];
  if (s.hostDefault === 'all-hosts') notes.push(`this host (${host}) has no snapshots; took the newest of any host`);
  if (s.newerOnOtherHosts > 0) {
    notes.push(`${s.newerOnOtherHosts} newer snapshot${s.newerOnOtherHosts === 1 ? '' : 's'} of other hosts left out (choose with --host)`);
  }
  if (s.otherPaths.length > 0) {
    const shown = s.otherPaths.slice(0, 3).map((p) => p.join(' ')).join('; ');
    notes.push(`there are also snapshots of other paths: ${shown}${s.otherPaths.length > 3 ? '; …' : ''} (choose with --path)`);
  }
  out.emit('snapshot_selected', {
    ref: 'latest',
    id: s.id,
    short_id: s.id.slice(0, 8),
    time: snap.time,
    hostname: snap.hostname,
    paths: snap.paths,
    tags: snap.tags,
    ...(s.hostDefault ? { host_default: s.hostDefault } : {}),
    ...(s.otherPaths.length ? { other_paths: s.otherPaths } : {}),
    ...(s.newerOnOtherHosts ? { newer_on_other_hosts: s.newerOnOtherHosts } : {}),
  });
  if (notes.length === 0 && !out.verbose && !process.stderr.isTTY) return;
  out.info(
    `using snapshot ${s.id.slice(0, 8)} of ${snap.hostname} from ${localTime(snap.time)} (${snap.paths.join(' ')})${notes.length ? `: ${notes.join('; ')}` : ''}`,
  );
}
