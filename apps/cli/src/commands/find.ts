import { SnapshotFinder } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { checkPatterns, stringArg, stringList } from '../args.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import { chooseSnapshots, localTime, selectArgs } from '../select.js';
import { longLine, nodeJson } from './ls.js';

/**
 * A time for --oldest/--newest: `2024-05-01`, `2024-05-01 13:45`, `2024-05-01 13:45:30` (local
 * time), or ISO 8601 with a zone (`2024-05-01T13:45:30Z`). Milliseconds since the epoch.
 */
export function parseTime(value: string, flag: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(value.trim());
  if (m) {
    const [, y, mo, d, h, mi, s] = m;
    const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0));
    if (date.getMonth() === Number(mo) - 1 && date.getDate() === Number(d)) return date.getTime();
  } else if (/^\d{4}-\d{2}-\d{2}T.+(Z|[+-]\d{2}:?\d{2})$/.test(value.trim())) {
    const t = Date.parse(value.trim());
    if (!Number.isNaN(t)) return t;
  }
  throw new UsageError(`${flag}: "${value}" is not a time (use 2024-05-01, "2024-05-01 13:45[:30]" in local time, or ISO 8601 with a zone)`);
}

export default kiwiCommand({
  meta: { name: 'find', description: 'Find files and directories by pattern in every snapshot' },
  interruptible: true,
  args: {
    pattern: { type: 'positional', required: true, description: 'Patterns as in --exclude: "notes.txt" or "*.jpg" match at any depth, "/home/*/notes.txt" from the root (several may be given)' },
    snapshot: { type: 'string', alias: 's', description: 'Search only this snapshot (id prefix or "latest"; repeatable)' },
    oldest: { type: 'string', alias: 'O', description: 'Only entries modified at or after this time (2024-05-01, "2024-05-01 13:45", ISO 8601)' },
    newest: { type: 'string', alias: 'N', description: 'Only entries modified at or before this time' },
    'ignore-case': { type: 'boolean', alias: 'i', description: 'Match patterns case-insensitively' },
    ...selectArgs,
  },
  async run({ args, session, signal }) {
    const out = session.out;
    const patterns = (args._ ?? []).map(String).filter((p) => p.trim() !== '');
    if (patterns.length === 0) throw new UsageError('name a pattern, e.g. `kiwi find notes.txt` or `kiwi find "*.jpg"`');
    checkPatterns(patterns, 'pattern');
    const oldestArg = stringArg(args.oldest);
    const newestArg = stringArg(args.newest);
    const oldest = oldestArg !== undefined ? parseTime(oldestArg, '--oldest') : undefined;
    const newest = newestArg !== undefined ? parseTime(newestArg, '--newest') : undefined;
    const repo = await session.openRepository();
    const snapshots = await chooseSnapshots(repo, stringList(args.snapshot), args, out);
    let errors = 0;
    const finder = new SnapshotFinder(repo, {
      patterns,
      ignoreCase: Boolean(args['ignore-case']),
      ...(oldest !== undefined ? { oldest } : {}),
      ...(newest !== undefined ? { newest } : {}),
      onError: (path, err) => {
        errors++;
        out.error(`${path}: ${err.message}`, { item: path });
      },
    });
    let matches = 0;
    let withMatches = 0;
    for (const { id, snapshot } of snapshots) {
      signal.throwIfAborted();
      const found = await finder.find(snapshot);
      if (found.length === 0) continue;
      withMatches++;
      matches += found.length;
      if (!out.json) out.print(`Found matching entries in snapshot ${id.slice(0, 8)} from ${localTime(snapshot.time)}`);
      for (const { path, node } of found) {
        if (out.json) {
          out.emit('match', { snapshot_id: id, ...nodeJson(path, node) });
        } else {
          out.print(longLine(path, node, false));
        }
        const wait = out.backpressure();
        if (wait) await wait;
      }
      if (!out.json) out.print('');
    }
    out.emit('summary', {
      patterns,
      snapshots: snapshots.length,
      snapshots_with_matches: withMatches,
      matches,
      trees_read: finder.stats.treesRead,
      trees_reused: finder.stats.treesReused,
      errors,
    });
    out.info(
      matches === 0
        ? `no matches in ${snapshots.length} snapshot${snapshots.length === 1 ? '' : 's'}`
        : `${matches} match${matches === 1 ? '' : 'es'} in ${withMatches} of ${snapshots.length} snapshot${snapshots.length === 1 ? '' : 's'}`,
    );
    return errors > 0 ? ExitCode.Failure : ExitCode.Ok;
  },
});
