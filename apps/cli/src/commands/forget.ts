import {
  parseMaxUnused,
  prune,
  type MaxUnused,
  DEFAULT_GROUP_BY,
  POLICY_FLAGS,
  RETENTION_RULES,
  describeGroupKey,
  describePolicy,
  formatLocalTime,
  formatUtcOffset,
  isEmptyPolicy,
  isEmptySelection,
  parseGroupBy,
  parsePolicy,
  planRetention,
  removeSnapshotFiles,
  type GroupByField,
  type RetentionDecision,
  type RetentionPolicy,
  type RetentionPolicyInput,
  type Snapshot,
  type SnapshotGroupKey,
  type Repository,
} from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringArg, stringList } from '../args.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { reportPrune } from './prune.js';
import { keepHeapSmall } from '../small-heap.js';
import type { Output } from '../output.js';
import { chooseSnapshots, selectArgs, selectionFromArgs } from '../select.js';

type Item = { id: string; snapshot: Snapshot };

const countHelp = (what: string) => ({ type: 'string', description: `Keep the newest snapshot of each of the last n ${what} (-1 or unlimited: all)` }) as const;
const withinHelp = (what: string) =>
  ({ type: 'string', description: `Keep the newest snapshot of each ${what} within this duration of the newest snapshot (e.g. 1y2m3d4h)` }) as const;

export default kiwiCommand({
  meta: { name: 'forget', description: 'Remove snapshots by a retention policy, or by id (the data goes with a later prune)' },
  interruptible: true,
  args: {
    snapshots: { type: 'positional', required: false, description: 'Snapshot ids (prefixes) or "latest" to forget, instead of a policy' },
    'keep-last': { type: 'string', alias: 'l', description: 'Keep the n newest snapshots (-1 or unlimited: all)' },
    'keep-hourly': { ...countHelp('hours'), alias: 'H' },
    'keep-daily': { ...countHelp('days'), alias: 'd' },
    'keep-weekly': { ...countHelp('weeks (ISO, from Monday)'), alias: 'w' },
    'keep-monthly': { ...countHelp('months'), alias: 'm' },
    'keep-yearly': { ...countHelp('years'), alias: 'y' },
    'keep-within': { type: 'string', description: 'Keep every snapshot within this duration of the newest snapshot (e.g. 1y2m3d4h)' },
    'keep-within-hourly': withinHelp('hour'),
    'keep-within-daily': withinHelp('day'),
    'keep-within-weekly': withinHelp('week'),
    'keep-within-monthly': withinHelp('month'),
    'keep-within-yearly': withinHelp('year'),
    'keep-tag': { type: 'string', description: 'Keep snapshots with this tag, or all tags of a list a,b (repeatable)' },
    ...selectArgs,
    'group-by': { type: 'string', alias: 'g', description: 'Apply the policy per group of host, paths and/or tags (default host,paths; "" for one group)' },
    'dry-run': { type: 'boolean', alias: 'n', description: 'Show what would be kept and removed, and why; change nothing' },
    prune: { type: 'boolean', description: 'Prune afterwards, under the same lock: remove the data only the forgotten snapshots used' },
    'max-unused': { type: 'string', description: 'With --prune: unused data to tolerate (as kiwi prune --max-unused; default 5%)' },
    ...retryLockArgs,
  },
  async run({ args, session, signal }) {
    const out = session.out;
    let maxUnused: MaxUnused | undefined;
    const maxUnusedText = stringArg(args['max-unused']);
    if (maxUnusedText !== undefined) {
      if (!args.prune) throw new UsageError('--max-unused goes with --prune');
      try {
        maxUnused = parseMaxUnused(maxUnusedText);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    const refs = (args._ ?? []).map(String);
    const dryRun = Boolean(args['dry-run']);
    const selection = selectionFromArgs(args);

    // The policy: from the flags, else (no ids either) from the config file.
    const input: Record<string, string | string[]> = {};
    for (const rule of RETENTION_RULES) {
      const name = rule.flag.slice(2);
      const raw = (args as Record<string, unknown>)[name];
      if (raw === undefined || raw === false) continue;
      if (rule.key === 'keepTag') input.keepTag = stringList(raw);
      else {
        const v = stringArg(raw);
        // `--keep-daily` without a value (or an empty one) is an error, not "off".
        input[rule.key] = v ?? '';
      }
    }
    const groupByArg = args['group-by'] === undefined ? undefined : (stringArg(args['group-by']) ?? '');
    const hasFlags = Object.keys(input).length > 0;
    if (refs.length > 0 && (hasFlags || groupByArg !== undefined)) {
      throw new UsageError(`give either snapshot ids or a policy (${hasFlags ? Object.keys(input).map(flagOf).join(', ') : '--group-by'}), not both`);
    }

    let policy: RetentionPolicy | undefined;
    let groupBy: GroupByField[] = [...DEFAULT_GROUP_BY];
    let policySource = 'the command line';
    if (refs.length === 0) {
      const cfg = session.config.forget;
      if (hasFlags) {
        policy = parsePolicy(input as RetentionPolicyInput);
      } else if (cfg) {
        const { groupBy: cfgGroupBy, ...rules } = cfg;
        policy = parsePolicy(rules, (r) => `forget.${r.key}`);
        policySource = `"forget" in ${session.configPath ?? 'the config'}`;
        if (cfgGroupBy !== undefined) groupBy = parseGroupBy(Array.isArray(cfgGroupBy) ? cfgGroupBy.join(',') : cfgGroupBy, 'forget.groupBy');
      } else {
        throw new UsageError(
          `no retention policy: give at least one of ${POLICY_FLAGS.join(', ')}; or snapshot ids to forget; or a "forget" policy in the config file (${session.configPath ?? 'config.json in the data directory'})`,
        );
      }
      if (isEmptyPolicy(policy)) {
        throw new UsageError(`the policy from ${policySource} keeps nothing (every rule is 0): give a count above 0, -1, a duration or a tag; ${POLICY_FLAGS.join(', ')}`);
      }
      if (groupByArg !== undefined) groupBy = parseGroupBy(groupByArg);
    }

    const repo = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    // A dry run changes nothing: a shared lock lets it run next to backups.
    await repo.lock(dryRun ? 'shared' : 'exclusive');

    let toRemove: Item[];
    if (!policy) {
      toRemove = await resolveRefs(repo, refs, args, out);
      printIdList(out, toRemove, dryRun);
    } else {
      const all = await repo.listSnapshots({ onError: (file, err) => out.warn(`skipping damaged snapshot ${file}: ${err.message}`, { file }) });
      const plan = planRetention(all, { policy, groupBy, filter: selection });
      for (const l of plan.unmatchedTagLists) {
        out.warn(`--keep-tag ${l.join(',')}: no ${isEmptySelection(selection) ? '' : 'selected '}snapshot has ${l.length > 1 ? 'all of these tags' : 'this tag'}, so it keeps nothing`, {
          keep_tag: l,
        });
      }
      out.info(`Applying policy: ${describePolicy(policy)}${policySource === 'the command line' ? '' : ` (from ${policySource})`}`);
      out.info(`Grouped by ${groupBy.length ? groupBy.join(', ') : 'nothing (one group)'}; times are local (${formatUtcOffset(Date.now())})`);
      for (const g of plan.groups) printGroup(out, g.key, g.result.decisions, dryRun);
      if (plan.groups.length === 0) out.info('no snapshots match');
      if (plan.emptiedGroups.length > 0) {
        throw new CliError(
          `refusing to forget every snapshot of ${plan.emptiedGroups.map((k) => `group ${describeGroupKey(k)}`).join('; ')}: no rule of the policy (${describePolicy(policy)}) keeps any of them; nothing was removed`,
          ExitCode.Failure,
        );
      }
      toRemove = plan.remove;
    }

    const ids = toRemove.map((i) => i.id);
    if (dryRun) {
      out.emit('summary', { dry_run: true, policy: policy ? describePolicy(policy) : null, would_remove: ids.length, removed_ids: ids });
      out.print(`dry run: would remove ${ids.length} snapshot${ids.length === 1 ? '' : 's'}, nothing changed`);
      if (args.prune) out.info('(--prune: a prune would follow; `kiwi prune --dry-run` after the forget shows what it frees)');
      return ExitCode.Ok;
    }
    signal.throwIfAborted();
    const result = await removeSnapshotFiles(repo.storage, ids, {
      onFailed: (id, err) => out.error(`could not remove snapshots/${id}: ${err.message}`, { file: `snapshots/${id}` }),
    });
    out.emit('summary', {
      dry_run: false,
      policy: policy ? describePolicy(policy) : null,
      removed: result.removed.length + result.missing.length,
      removed_ids: [...result.removed, ...result.missing],
      failed_ids: result.failed.map((f) => f.id),
    });
    const n = result.removed.length + result.missing.length;
    out.print(`removed ${n} snapshot${n === 1 ? '' : 's'}${n ? '; `kiwi prune` frees the data only they used' : ''}`);
    if (result.failed.length) {
      throw new CliError(`${result.failed.length} snapshot file${result.failed.length === 1 ? '' : 's'} could not be removed (listed above)`, ExitCode.Failure);
    }
    if (args.prune) {
      signal.throwIfAborted();
      keepHeapSmall();
      // Under the exclusive lock forget holds: no backup can start between the two.
      const r = await prune(repo, {
        ...(maxUnused ? { maxUnused } : {}),
        noLock: true,
        onProgress: (p) => out.progress(p.phase === 'trees' ? `prune: reading trees: ${p.done}` : `prune: ${p.phase} ${p.done}/${p.total}`),
      });
      out.clearProgress();
      reportPrune(out, r, false, 'prune_summary');
    }
    return ExitCode.Ok;
  },
});

function flagOf(key: string): string {
  return RETENTION_RULES.find((r) => r.key === key)?.flag ?? key;
}

/**
 * Resolve every id (prefix, or `latest` narrowed by --host/--tag/--path) before removing anything:
 * one unknown or ambiguous id stops the command (exit 13, the candidates named).
 */
async function resolveRefs(repo: Repository, refs: string[], args: Record<string, unknown>, out: Output): Promise<Item[]> {
  // A snapshot file named by its id that cannot be read (damaged) is removed all the same: that is
  // the repair `kiwi check` names for it, and nothing else can remove it.
  const damaged: Item[] = [];
  const readable: string[] = [];
  for (const ref of refs) {
    if (ref === 'latest' || !/^[0-9a-f]+$/i.test(ref)) {
      readable.push(ref);
      continue;
    }
    try {
      await repo.findSnapshot(ref);
      readable.push(ref);
    } catch (err) {
      if ((err as Error).name !== 'IntegrityError') {
        readable.push(ref); // not found, ambiguous…: reported below, as for any ref
        continue;
      }
      const file = (err as { file?: string }).file ?? '';
      const id = file.startsWith('snapshots/') ? file.slice('snapshots/'.length) : '';
      if (!id.startsWith(ref.toLowerCase())) throw err;
      out.warn(`snapshot ${id.slice(0, 8)} cannot be read (${(err as Error).message}); its file is removed as asked`, { file, id });
      damaged.push({ id, snapshot: { time: '(damaged)', hostname: '', username: '', paths: ['(its file is damaged)'], tree: '' } as unknown as Snapshot });
    }
  }
  try {
    return [...(readable.length > 0 ? await chooseSnapshots(repo, readable, args, out) : []), ...damaged];
  } catch (err) {
    if (err instanceof Error && err.name === 'SnapshotNotFoundError') {
      const candidates = (err as Error & { candidates?: string[] }).candidates ?? [];
      throw new CliError(`${err.message}${candidates.length > 1 ? ' (give more characters of the id)' : ''}; nothing was removed`, ExitCode.SnapshotNotFound);
    }
    throw err;
  }
}

function snapshotJson(item: Item) {
  const s = item.snapshot;
  return { id: item.id, short_id: item.id.slice(0, 8), time: s.time, hostname: s.hostname, paths: s.paths, tags: s.tags };
}

function printIdList(out: Output, items: Item[], dryRun: boolean): void {
  for (const item of items) {
    out.emit('forget_snapshot', { ...snapshotJson(item), action: 'remove', reasons: [], named: true });
  }
  if (out.json || out.quiet) return;
  out.print(`${dryRun ? 'would remove' : 'removing'} ${items.length} snapshot${items.length === 1 ? '' : 's'} named on the command line:`);
  out.print(`  ${'ID'.padEnd(10)}${'Time (local)'.padEnd(21)}${'Host'.padEnd(16)}Paths`);
  for (const { id, snapshot: s } of items) {
    const t = Date.parse(s.time);
    out.print(`  ${id.slice(0, 8).padEnd(10)}${(Number.isFinite(t) ? formatLocalTime(t) : s.time).padEnd(21)}${s.hostname.slice(0, 15).padEnd(16)}${s.paths.join(' ')}`);
  }
}

function printGroup(out: Output, key: SnapshotGroupKey, decisions: Array<RetentionDecision<Item>>, dryRun: boolean): void {
  const kept = decisions.filter((d) => d.action === 'keep').length;
  const removed = decisions.length - kept;
  out.emit('forget_group', {
    group: {
      ...(key.hostname !== undefined ? { host: key.hostname } : {}),
      ...(key.paths !== undefined ? { paths: key.paths } : {}),
      ...(key.tags !== undefined ? { tags: key.tags } : {}),
    },
    dry_run: dryRun,
    keep: kept,
    remove: removed,
    snapshots: decisions.map((d) => ({
      ...snapshotJson(d.item),
      action: d.action,
      reasons: d.reasons,
      ...(d.action === 'remove' ? { not_kept: d.notKept } : {}),
      counters: d.counters,
    })),
  });
  if (out.json || out.quiet) return;
  const withTags = key.tags === undefined && decisions.some((d) => d.item.snapshot.tags.length > 0);
  const tagWidth = withTags ? Math.min(20, Math.max(6, ...decisions.map((d) => d.item.snapshot.tags.join(',').length + 2))) : 0;
  out.print('');
  out.print(`${describeGroupKey(key)}: keep ${kept}, ${dryRun ? 'would remove' : 'remove'} ${removed} of ${decisions.length} snapshot${decisions.length === 1 ? '' : 's'}`);
  out.print(`  ${'ID'.padEnd(10)}${'Time'.padEnd(21)}${withTags ? 'Tags'.padEnd(tagWidth) : ''}${'Action'.padEnd(8)}Why`);
  for (const d of decisions) {
    const s = d.item.snapshot;
    const why = d.action === 'keep' ? d.reasons.map((r) => r.text).join(', ') : d.notKept.join('; ');
    const tags = withTags ? s.tags.join(',').slice(0, tagWidth - 2).padEnd(tagWidth) : '';
    out.print(`  ${d.item.id.slice(0, 8).padEnd(10)}${formatLocalTime(d.time).padEnd(21)}${tags}${d.action.padEnd(8)}${why}`);
  }
}
