/**
 * Choosing snapshots (`--host`, `--tag`, `--path`) and grouping them (`--group-by`), with
 * restic's meaning: a policy applies to each group on its own.
 */
import { PolicyError } from './errors.js';
import type { Snapshot } from '../repository/types.js';
import { matchesSelection, type SnapshotSelection } from '../snapshot-ops/select.js';

/** The snapshot fields selection and grouping look at. */
export interface SelectableSnapshot {
  hostname: string;
  paths: readonly string[];
  tags?: readonly string[];
}

/** An item of a snapshot list (`Repository.listSnapshots` returns these). */
export interface SnapshotItem<S extends SelectableSnapshot = SelectableSnapshot> {
  id: string;
  snapshot: S;
}

export type GroupByField = 'host' | 'paths' | 'tags';

/** The default grouping of `kiwi forget`: by host and by the set of paths. */
export const DEFAULT_GROUP_BY: readonly GroupByField[] = ['host', 'paths'];

/** The key of a group: only the fields grouped by are present. */
export interface SnapshotGroupKey {
  hostname?: string;
  paths?: string[];
  tags?: string[];
}

export interface SnapshotGroup<T> {
  key: SnapshotGroupKey;
  items: T[];
}

/**
 * Parse `--group-by`: a comma-separated list of `host`, `paths`, `tags` (also `hosts`,
 * `path`, `tag`); an empty text means one group of everything.
 * @throws PolicyError
 */
export function parseGroupBy(text: string, option = '--group-by'): GroupByField[] {
  const out: GroupByField[] = [];
  for (const raw of text.split(',')) {
    const p = raw.trim();
    if (p === '') continue;
    const field = p === 'host' || p === 'hosts' ? 'host' : p === 'paths' || p === 'path' ? 'paths' : p === 'tags' || p === 'tag' ? 'tags' : undefined;
    if (!field) throw new PolicyError(`${option} ${JSON.stringify(text)}: unknown field "${p}" (use host, paths and/or tags, comma-separated; "" for no grouping)`, option);
    if (!out.includes(field)) out.push(field);
  }
  return out;
}

/** True when `tags` holds every tag of `list`. */
export function hasAllTags(tags: readonly string[] | undefined, list: readonly string[]): boolean {
  return list.every((t) => tags?.includes(t) ?? false);
}

/** The items that pass `filter` (`--host`, `--tag`, `--path`, as every command selects snapshots), in their order. */
export function filterSnapshots<T extends SnapshotItem>(items: readonly T[], filter: SnapshotSelection): T[] {
  return items.filter(({ snapshot }) => matchesSelection(snapshot as Snapshot, filter));
}

/** A stable text form of a group key (`host laptop, paths /a /b, tags x`), for messages. */
export function describeGroupKey(key: SnapshotGroupKey): string {
  const parts: string[] = [];
  if (key.hostname !== undefined) parts.push(`host ${key.hostname || '(empty)'}`);
  if (key.paths !== undefined) parts.push(`paths ${key.paths.length ? key.paths.join(' ') : '(none)'}`);
  if (key.tags !== undefined) parts.push(`tags ${key.tags.length ? key.tags.join(',') : '(none)'}`);
  return parts.length ? parts.join(', ') : 'all snapshots';
}

/**
 * Group items by the given fields (paths and tags compared as sorted sets). Groups come
 * sorted by key; items keep their order within a group.
 */
export function groupSnapshots<T extends SnapshotItem>(items: readonly T[], by: readonly GroupByField[]): Array<SnapshotGroup<T>> {
  const groups = new Map<string, SnapshotGroup<T>>();
  for (const item of items) {
    const s = item.snapshot;
    const key: SnapshotGroupKey = {};
    if (by.includes('host')) key.hostname = s.hostname;
    if (by.includes('paths')) key.paths = [...s.paths].sort();
    if (by.includes('tags')) key.tags = [...new Set(s.tags ?? [])].sort();
    const k = JSON.stringify([key.hostname ?? null, key.paths ?? null, key.tags ?? null]);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { key, items: [] }));
    g.items.push(item);
  }
  return [...groups.values()].sort((a, b) => compareKeys(a.key, b.key));
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function compareLists(a: readonly string[] | undefined, b: readonly string[] | undefined): number {
  if (!a || !b) return a ? 1 : b ? -1 : 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = cmp(a[i]!, b[i]!);
    if (c) return c;
  }
  return a.length - b.length;
}

/** Host, then paths, then tags; a list that is a prefix of another comes first. */
function compareKeys(a: SnapshotGroupKey, b: SnapshotGroupKey): number {
  return cmp(a.hostname ?? '', b.hostname ?? '') || compareLists(a.paths, b.paths) || compareLists(a.tags, b.tags);
}
