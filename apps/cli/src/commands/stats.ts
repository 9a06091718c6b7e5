import { snapshotStats, type StatsMode } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringArg } from '../args.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { chooseSnapshots, selectArgs } from '../select.js';
import { formatBytes } from '../output.js';

const MODES: readonly StatsMode[] = ['restore-size', 'raw-data'];

const ratio = (r: number | undefined) => (r === undefined ? null : Math.round(r * 1000) / 1000);

export default kiwiCommand({
  meta: { name: 'stats', description: 'Sizes of snapshots: restore size, or the stored data they use (dedup ratio, blobs, packs)' },
  interruptible: true,
  args: {
    snapshots: { type: 'positional', required: false, description: 'Snapshot ids (prefixes) or "latest" (default: every snapshot)' },
    mode: { type: 'string', description: 'restore-size (default): files and bytes a restore writes; raw-data: the unique blobs they use, stored size, dedup ratio' },
    ...selectArgs,
  },
  async run({ args, session, signal }) {
    const out = session.out;
    const mode = (stringArg(args.mode) ?? 'restore-size') as StatsMode;
    if (!MODES.includes(mode)) throw new UsageError(`--mode ${JSON.stringify(args.mode)}: use ${MODES.join(' or ')}`);
    const refs = (args._ ?? []).map(String);
    const repo = await session.openRepository();
    const indexRead = repo.loadIndex();
    indexRead.catch(() => undefined); // awaited below
    // Named snapshots (ids name theirs; --host/--tag/--path narrow `latest`), else every one matching the selection.
    const chosen = await chooseSnapshots(repo, refs, args, out);
    await indexRead;
    if (chosen.length === 0) {
      out.info('no snapshots match');
      out.emit('summary', { mode, snapshots: 0 });
      return;
    }
    const result = await snapshotStats(repo, chosen, {
      mode,
      signal,
      onProgress: (p: { treesDone: number; treesKnown: number }) => out.progress(`${p.treesDone}/${p.treesKnown} trees read`),
    });
    out.clearProgress();
    if (result.invalidEntries > 0) {
      out.warn(`${result.invalidEntries} tree entr${result.invalidEntries === 1 ? 'y' : 'ies'} could not be read (invalid) and ${result.invalidEntries === 1 ? 'is' : 'are'} left out of these numbers; \`kiwi check\` names them`, {
        invalid_entries: result.invalidEntries,
      });
    }
    const t = result.total;
    for (const s of result.snapshots) {
      out.emit('snapshot_stats', { id: s.id, short_id: s.id.slice(0, 8), files: s.size.files, dirs: s.size.dirs, others: s.size.others, size: s.size.bytes });
    }
    const raw = result.raw;
    out.emit('summary', {
      mode,
      snapshots: result.snapshots.length,
      total_file_count: t.files,
      total_dir_count: t.dirs,
      total_other_count: t.others,
      total_size: t.bytes,
      trees: result.trees,
      invalid_entries: result.invalidEntries,
      ...(raw
        ? {
            total_blob_count: raw.blobs,
            data_blob_count: raw.dataBlobs,
            tree_blob_count: raw.treeBlobs,
            total_uncompressed_size: raw.rawBytes,
            total_stored_size: raw.storedBytes,
            pack_count: raw.packs,
            missing_blobs: raw.missingBlobs,
            dedup_ratio: ratio(raw.dedupRatio),
            compression_ratio: ratio(raw.compressionRatio),
          }
        : {}),
    });
    if (!out.json && !out.quiet) {
      const rows: Array<[string, string]> = [['Snapshots', String(result.snapshots.length)]];
      if (result.snapshots.length > 1 && result.snapshots.length <= 50) {
        for (const s of result.snapshots) rows.push([`  ${s.id.slice(0, 8)}`, `${s.size.files} files, ${formatBytes(s.size.bytes)}`]);
      }
      rows.push(['Files', String(t.files)], ['Directories', String(t.dirs)], ['Other entries', String(t.others)], ['Restore size', `${formatBytes(t.bytes)} (${t.bytes} bytes)`]);
      if (raw) {
        rows.push(
          ['Unique blobs', `${raw.blobs} (${raw.dataBlobs} data, ${raw.treeBlobs} tree)`],
          ['Unique data', `${formatBytes(raw.rawBytes)} before compression`],
          ['Stored size', `${formatBytes(raw.storedBytes)} (${raw.storedBytes} bytes) in ${raw.packs} pack${raw.packs === 1 ? '' : 's'}`],
          ['Dedup ratio', raw.dedupRatio === undefined ? '-' : `${raw.dedupRatio.toFixed(2)}x (restore size / unique data)`],
          ['Compression', raw.compressionRatio === undefined ? '-' : `${raw.compressionRatio.toFixed(2)}x (unique data / stored size)`],
        );
      }
      out.print(`Stats (${mode}):`);
      for (const [k, v] of rows) out.print(`  ${`${k}:`.padEnd(16)}${v}`);
    }
    if (raw && raw.missingBlobs > 0) {
      throw new CliError(`${raw.missingBlobs} blob${raw.missingBlobs === 1 ? '' : 's'} these snapshots use ${raw.missingBlobs === 1 ? 'is' : 'are'} not in the index; run \`kiwi check\``, ExitCode.Failure);
    }
  },
});
