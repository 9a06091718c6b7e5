import { parseMaxUnused, prune, type MaxUnused, type PruneResult } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { stringArg } from '../args.js';
import { UsageError } from '../exit-codes.js';
import { formatBytes, type Output } from '../output.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { keepHeapSmall } from '../small-heap.js';

export default kiwiCommand({
  meta: { name: 'prune', description: 'Remove data no snapshot uses: delete unused packs, repack mostly unused ones' },
  interruptible: true,
  args: {
    'max-unused': { type: 'string', description: 'Unused data to tolerate: a share of the used data (5%, the default), a size (500M) or "unlimited"' },
    'dry-run': { type: 'boolean', alias: 'n', description: 'Say what would be deleted and repacked, and how much it frees; change nothing' },
    ...retryLockArgs,
  },
  async run({ args, session, signal }) {
    let maxUnused: MaxUnused | undefined;
    const text = stringArg(args['max-unused']);
    if (text !== undefined) {
      try {
        maxUnused = parseMaxUnused(text);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    keepHeapSmall();
    const repo = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    const out = session.out;
    const dryRun = Boolean(args['dry-run']);
    let lastPhase = '';
    let lastStatus = 0;
    const r = await prune(repo, {
      ...(maxUnused ? { maxUnused } : {}),
      dryRun,
      onProgress: (p) => {
        out.progress(p.phase === 'trees' ? `reading trees: ${p.done}` : `${p.phase} ${p.done}/${p.total}`);
        // --json: a status line per phase change and at most one a second within a phase.
        const now = Date.now();
        if (p.phase !== lastPhase || now - lastStatus >= 1000) {
          lastPhase = p.phase;
          lastStatus = now;
          out.emit('status', { phase: p.phase, done: p.done, total: p.total });
        }
      },
    });
    out.clearProgress();
    reportPrune(out, r, dryRun);
  },
});

/** Print a prune's result (the prune command's, and forget --prune's). */
export function reportPrune(out: Output, r: PruneResult, dryRun: boolean, summaryType = 'summary'): void {
  out.emit(summaryType, {
    dry_run: dryRun,
    snapshots: r.snapshots,
    packs_total: r.packs.total,
    packs_deleted: r.packs.deleted,
    packs_repacked: r.packs.repacked,
    packs_kept: r.packs.kept,
    packs_created: r.packs.created,
    blobs_used: r.blobs.used,
    blobs_unused: r.blobs.unused,
    blobs_repacked: r.blobs.repacked,
    bytes_total: r.bytes.total,
    bytes_used: r.bytes.used,
    bytes_unused: r.bytes.unused,
    bytes_freed: r.bytes.freed,
    bytes_repacked: r.bytes.repacked,
    bytes_unused_after: r.bytes.unusedAfter,
    index_files_written: r.indexFiles.written,
    index_files_removed: r.indexFiles.removed,
    temporary_files_removed: r.temporaries?.files ?? 0,
  });
  const lines = [
    `snapshots:   ${r.snapshots}`,
    `used data:   ${formatBytes(r.bytes.used)} in ${r.blobs.used} blobs; unused: ${formatBytes(r.bytes.unused)} in ${r.blobs.unused} blobs and pack headers`,
    `${dryRun ? 'would delete' : 'deleted'}:   ${r.packs.deleted} packs`,
    `${dryRun ? 'would repack' : 'repacked'}:  ${r.packs.repacked} packs (${formatBytes(r.bytes.repacked)} of used data copied${dryRun ? '' : ` into ${r.packs.created} new packs`})`,
    `${dryRun ? 'would free' : 'freed'}:     ${formatBytes(r.bytes.freed)}; unused data left: ${formatBytes(r.bytes.unusedAfter)}`,
  ];
  if (r.temporaries && r.temporaries.files > 0) {
    lines.push(`removed:     ${r.temporaries.files} temporary file${r.temporaries.files === 1 ? '' : 's'} (${formatBytes(r.temporaries.bytes)}) left by interrupted writes`);
  }
  for (const l of lines) out.info(l);
  if (!dryRun && r.packs.deleted + r.packs.repacked === 0 && !r.temporaries?.files) out.info('nothing to prune');
}
