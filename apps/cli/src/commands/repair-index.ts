import { repairIndex } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { ExitCode } from '../exit-codes.js';

export default kiwiCommand({
  meta: { name: 'index', description: 'Rebuild the index from the packs (reads pack headers only): replaces damaged or missing index files' },
  interruptible: true,
  args: {
    ...retryLockArgs,
    'read-all-packs': { type: 'boolean', description: 'Read every pack header, not only of packs the index does not list correctly' },
    'dry-run': { type: 'boolean', alias: 'n', description: 'Say what would change; write nothing' },
  },
  async run({ args, session, signal }) {
    const repo = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    const out = session.out;
    const r = await repairIndex(repo, {
      readAllPacks: Boolean(args['read-all-packs']),
      dryRun: Boolean(args['dry-run']),
      onProgress: (p) => out.progress(`${p.phase} ${p.done}/${p.total}`),
    });
    out.clearProgress();
    for (const d of r.damagedIndexFiles) out.warn(`${d.file}: damaged (${d.message}); replaced`, { file: d.file });
    for (const p of r.droppedPacks) out.warn(`data/${p.slice(0, 2)}/${p}: listed by the index but missing; dropped from the index`, { file: `data/${p.slice(0, 2)}/${p}` });
    for (const u of r.keptFromIndex) out.warn(`${u.file}: its header cannot be read (${u.message}); kept the index's entries. Salvage it: kiwi repair packs ${u.file.split('/').pop()!.slice(0, 12)}`, { file: u.file });
    for (const u of r.unreadablePacks) out.error(`${u.file}: its header cannot be read and no index lists it usably (${u.message}); its blobs are lost`, { file: u.file });
    out.emit('summary', {
      dry_run: Boolean(args['dry-run']),
      rewritten: r.rewritten,
      packs: r.packs,
      blobs: r.blobs,
      headers_read: r.headersRead,
      index_files_read: r.indexFilesRead,
      damaged_index_files: r.damagedIndexFiles.length,
      dropped_packs: r.droppedPacks.length,
      added_packs: r.addedPacks.length,
      corrected_packs: r.correctedPacks.length,
      unreadable_packs: r.unreadablePacks.length,
      new_index_files: r.newIndexFiles,
      removed_index_files: r.removedIndexFiles,
    });
    const what = `${r.packs} packs, ${r.blobs} blobs; ${r.headersRead} pack headers read; ${r.addedPacks.length} packs added, ${r.droppedPacks.length} dropped, ${r.correctedPacks.length} corrected`;
    if (args['dry-run']) out.info(`dry run: the new index would list ${what}`);
    else if (r.rewritten) out.info(`index rebuilt: ${what}; wrote ${r.newIndexFiles.length} index files, removed ${r.removedIndexFiles.length}`);
    else out.info(`the index is complete (${r.packs} packs, ${r.blobs} blobs): nothing to repair`);
    if (r.droppedPacks.length || r.unreadablePacks.length) {
      out.info('snapshots that used the lost packs: run `kiwi repair snapshots`');
      // Repaired, but blobs are lost (each pack reported above); a dry run changed nothing.
      if (!args['dry-run'] && r.unreadablePacks.length > 0) return ExitCode.Partial;
    }
    return ExitCode.Ok;
  },
});
