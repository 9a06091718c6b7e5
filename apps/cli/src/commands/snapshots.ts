import type { Snapshot, SnapshotSummary } from '@kiwi-backup/core';
import { compareText, compareTimes, matchesSelection } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { formatBytes } from '../output.js';
import { localTime, selectArgs, selectionFromArgs } from '../select.js';

export default kiwiCommand({
  meta: { name: 'snapshots', description: 'List snapshots' },
  args: {
    ...selectArgs,
    'json-lines': { type: 'boolean', description: 'JSON lines (one "snapshot" line each, then a "summary" line) instead of one JSON array' },
  },
  async run({ args, session }) {
    const repo = await session.openRepository();
    const out = session.out;
    // `--json` is one array on stdout: a damaged snapshot's warning goes to stderr.
    if (out.json && !args['json-lines']) out.documentOnStdout();
    const sel = selectionFromArgs(args);
    const list = (await repo.listSnapshots({ onError: (file, err) => out.warn(`skipping damaged snapshot ${file}: ${err.message}`, { file }) }))
      .filter(({ snapshot }) => matchesSelection(snapshot, sel))
      .sort((a, b) => compareTimes(a.snapshot.time, b.snapshot.time) || compareText(a.id, b.id));
    if (args['json-lines']) {
      for (const { id, snapshot } of list) out.emit('snapshot', { id, short_id: id.slice(0, 8), ...snapshot });
      out.emit('summary', { snapshots: list.length });
      return;
    }
    if (out.json) {
      // One array, as restic's `snapshots --json`.
      out.emitDocument(list.map(({ id, snapshot }) => snapshotJson(id, snapshot)));
      return;
    }
    if (list.length === 0) {
      out.info('no snapshots');
      return;
    }
    out.print(`${'ID'.padEnd(10)}${'Time'.padEnd(21)}${'Host'.padEnd(16)}${'Size'.padEnd(11)}${'Tags'.padEnd(16)}Paths`);
    for (const { id, snapshot } of list) {
      const size = snapshot.summary ? formatBytes(snapshot.summary.totalBytes) : '';
      out.print(
        `${id.slice(0, 8).padEnd(10)}${localTime(snapshot.time).padEnd(21)}${snapshot.hostname.slice(0, 15).padEnd(16)}${size.padEnd(11)}${snapshot.tags.join(',').slice(0, 15).padEnd(16)}${snapshot.paths.join(' ')}${snapshot.partial ? '  (partial)' : ''}`,
      );
    }
    out.info(`${list.length} snapshot${list.length === 1 ? '' : 's'}`);
  },
});

/**
 * A snapshot as restic's `snapshots --json` prints it (same field names where they map), with
 * Kiwi's own fields after them (`partial`, `plugins`).
 */
export function snapshotJson(id: string, s: Snapshot): Record<string, unknown> {
  return {
    time: s.time,
    ...(s.parent !== undefined ? { parent: s.parent } : {}),
    tree: s.tree,
    paths: s.paths,
    hostname: s.hostname,
    username: s.username,
    ...(s.uid !== undefined ? { uid: s.uid } : {}),
    ...(s.gid !== undefined ? { gid: s.gid } : {}),
    ...(s.excludes?.length ? { excludes: s.excludes } : {}),
    tags: s.tags,
    ...(s.original !== undefined ? { original: s.original } : {}),
    program_version: s.programVersion,
    ...(s.summary ? { summary: summaryJson(s.summary) } : {}),
    id,
    short_id: id.slice(0, 8),
    ...(s.partial ? { partial: true } : {}),
    ...(s.plugins !== undefined ? { plugins: s.plugins } : {}),
  };
}

function summaryJson(m: SnapshotSummary): Record<string, unknown> {
  return {
    backup_start: m.startTime,
    backup_end: m.endTime,
    files_new: m.filesNew,
    files_changed: m.filesChanged,
    files_unmodified: m.filesUnmodified,
    dirs_new: m.dirsNew,
    dirs_changed: m.dirsChanged,
    dirs_unmodified: m.dirsUnmodified,
    data_blobs: m.blobsNew,
    data_added: m.dataAdded,
    data_added_packed: m.dataAddedPacked,
    total_files_processed: m.totalFiles,
    total_bytes_processed: m.totalBytes,
    bytes_read: m.bytesRead,
    errors: m.errors,
  };
}
