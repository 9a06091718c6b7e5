/**
 * Choosing snapshots: by id prefix or `latest`, narrowed by host, tags and paths (restic's
 * `--host`/`--tag`/`--path`). `latest` without a host filter prefers this host's snapshots, so a
 * repository shared by several machines never hands out another machine's data by accident.
 */
import type { Snapshot } from '../repository/types.js';
import { SnapshotNotFoundError } from '../repository/errors.js';
import { compareText, compareTimes } from '../time-order.js';

/** What `--host`, `--tag` and `--path` select. Every given criterion must hold. */
export interface SnapshotSelection {
  /** The snapshot's host is one of these. */
  hosts?: readonly string[];
  /**
   * Tag groups (restic's `--tag a,b --tag c`): the snapshot has every tag of at least one group.
   * An empty group matches snapshots without tags.
   */
  tags?: ReadonlyArray<readonly string[]>;
  /** The snapshot's source paths include every one of these (absolute paths). */
  paths?: readonly string[];
}

/** A snapshot with its id. */
export interface SnapshotRef {
  id: string;
  snapshot: Snapshot;
}

/** How a snapshot was chosen (for the one line that says which snapshot a command uses). */
export interface SelectedSnapshot extends SnapshotRef {
  /** True when the reference was `latest`. */
  latest: boolean;
  /**
   * For `latest` without a host filter: `this-host` when this host's snapshots were preferred,
   * `all-hosts` when this host has none (the newest of any host was taken).
   */
  hostDefault?: 'this-host' | 'all-hosts';
  /**
   * For `latest` without a path filter: the other path sets among the candidates (newest first),
   * when the candidates back up different paths (then the choice was by time alone).
   */
  otherPaths: string[][];
  /** For `latest` with `hostDefault` `this-host`: snapshots of other hosts newer than the one chosen. */
  newerOnOtherHosts: number;
}

/** What selection needs from a repository (`Repository` has both). */
export interface SnapshotLister {
  listSnapshots(opts?: { onError?: (file: string, err: Error) => void }): Promise<SnapshotRef[]>;
  findSnapshot(ref: string): Promise<SnapshotRef>;
}

export interface SelectOptions {
  /** This machine's host name: `latest` without `hosts` prefers its snapshots. Omit to never prefer a host. */
  thisHost?: string;
  /** A damaged snapshot file is skipped and reported here (default: it fails the selection). */
  onDamaged?: (file: string, err: Error) => void;
}

/** True when the selection has no criterion. */
export function isEmptySelection(sel: SnapshotSelection): boolean {
  return !sel.hosts?.length && !sel.tags?.length && !sel.paths?.length;
}

/** Does `snapshot` satisfy every criterion of `sel`? */
export function matchesSelection(snapshot: Snapshot, sel: SnapshotSelection): boolean {
  if (sel.hosts?.length && !sel.hosts.includes(snapshot.hostname)) return false;
  if (sel.tags?.length) {
    const tags = Array.isArray(snapshot.tags) ? snapshot.tags : [];
    const ok = sel.tags.some((group) => (group.length === 0 ? tags.length === 0 : group.every((t) => tags.includes(t))));
    if (!ok) return false;
  }
  if (sel.paths?.length && !sel.paths.every((p) => snapshot.paths.includes(p))) return false;
  return true;
}

/** The selection in words, for messages: `host a, tags x,y, path /p`. */
export function describeSelection(sel: SnapshotSelection): string {
  const parts: string[] = [];
  if (sel.hosts?.length) parts.push(`host ${sel.hosts.join(' or ')}`);
  if (sel.tags?.length) parts.push(`tags ${sel.tags.map((g) => (g.length ? g.join(',') : '(none)')).join(' or ')}`);
  if (sel.paths?.length) parts.push(`path${sel.paths.length > 1 ? 's' : ''} ${sel.paths.join(', ')}`);
  return parts.join(', ');
}

function newestFirst(a: SnapshotRef, b: SnapshotRef): number {
  return compareTimes(b.snapshot.time, a.snapshot.time) || compareText(b.id, a.id);
}

function pathsKey(paths: readonly string[]): string {
  return [...paths].sort().join('\0');
}

/**
 * Resolve one snapshot reference: an id prefix (`sel` does not apply: the id names it), or `latest`
 * (the newest snapshot matching `sel`; without a host criterion, the newest of `thisHost` when it
 * has any, else of any host). Fails with {@link SnapshotNotFoundError} for an unknown or
 * ambiguous reference, or when nothing matches.
 */
export async function selectSnapshot(
  repo: SnapshotLister,
  ref: string,
  sel: SnapshotSelection = {},
  opts: SelectOptions = {},
): Promise<SelectedSnapshot> {
  if (ref !== 'latest') {
    // An id names the snapshot exactly: the filters choose among snapshots for `latest` only (as restic's).
    const found = await repo.findSnapshot(ref);
    return { ...found, latest: false, otherPaths: [], newerOnOtherHosts: 0 };
  }
  const all = await repo.listSnapshots(opts.onDamaged ? { onError: opts.onDamaged } : {});
  let candidates = all.filter((s) => matchesSelection(s.snapshot, sel)).sort(newestFirst);
  let hostDefault: SelectedSnapshot['hostDefault'];
  let newerOnOtherHosts = 0;
  if (!sel.hosts?.length && opts.thisHost !== undefined && candidates.length > 0) {
    const mine = candidates.filter((s) => s.snapshot.hostname === opts.thisHost);
    if (mine.length > 0) {
      hostDefault = 'this-host';
      const chosenTime = mine[0]!.snapshot.time;
      newerOnOtherHosts = candidates.filter((s) => s.snapshot.hostname !== opts.thisHost && s.snapshot.time > chosenTime).length;
      candidates = mine;
    } else {
      hostDefault = 'all-hosts';
    }
  }
  const chosen = candidates[0];
  if (!chosen) {
    const what = isEmptySelection(sel) ? '(the repository has no snapshots)' : `with ${describeSelection(sel)}`;
    throw new SnapshotNotFoundError(ref, [], what);
  }
  const otherPaths: string[][] = [];
  if (!sel.paths?.length) {
    const seen = new Set([pathsKey(chosen.snapshot.paths)]);
    for (const c of candidates) {
      const key = pathsKey(c.snapshot.paths);
      if (seen.has(key)) continue;
      seen.add(key);
      otherPaths.push([...c.snapshot.paths]);
    }
  }
  return { ...chosen, latest: true, ...(hostDefault ? { hostDefault } : {}), otherPaths, newerOnOtherHosts };
}

/**
 * The snapshots matching `sel`, oldest first; with `refs`, those (each resolved as by
 * {@link selectSnapshot}: `sel` applies to `latest` only; a snapshot named twice is listed once).
 */
export async function selectSnapshots(
  repo: SnapshotLister,
  refs: readonly string[],
  sel: SnapshotSelection = {},
  opts: SelectOptions = {},
): Promise<SnapshotRef[]> {
  if (refs.length === 0) {
    const all = await repo.listSnapshots(opts.onDamaged ? { onError: opts.onDamaged } : {});
    return all.filter((s) => matchesSelection(s.snapshot, sel));
  }
  const out = new Map<string, SnapshotRef>();
  for (const ref of refs) {
    const s = await selectSnapshot(repo, ref, sel, opts);
    out.set(s.id, { id: s.id, snapshot: s.snapshot });
  }
  return [...out.values()].sort((a, b) => -newestFirst(a, b));
}
