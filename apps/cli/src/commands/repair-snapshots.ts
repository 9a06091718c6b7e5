import { repairSnapshots } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { ExitCode } from '../exit-codes.js';

export default kiwiCommand({
  meta: { name: 'snapshots', description: 'Write new snapshots without the files whose data is lost (the originals are kept unless --forget)' },
  interruptible: true,
  args: {
    ...retryLockArgs,
    ids: { type: 'positional', required: false, description: 'Snapshot ids or prefixes (default: every snapshot)' },
    forget: { type: 'boolean', description: 'Remove each original snapshot once its repaired copy is saved' },
    'dry-run': { type: 'boolean', alias: 'n', description: 'Say what would be removed; write nothing' },
  },
  async run({ args, session, signal }) {
    const repo = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    const out = session.out;
    const refs = (args._ ?? []).map(String).filter(Boolean);
    const snapshotIds = refs.length ? await Promise.all(refs.map(async (r) => (await repo.findSnapshot(r)).id)) : undefined;
    const dryRun = Boolean(args['dry-run']);
    const r = await repairSnapshots(repo, {
      ...(snapshotIds ? { snapshotIds } : {}),
      forget: Boolean(args.forget),
      dryRun,
      onRemoved: (id, path, reason) => out.warn(`snapshot ${id.slice(0, 8)}: ${path}: ${reason}${dryRun ? '; would be left out' : '; left out'}`, { snapshot: id, path }),
    });
    let repaired = 0;
    let unrepairable = 0;
    for (const s of r.snapshots) {
      if (s.unrepairable) {
        unrepairable++;
        out.error(`snapshot ${s.id.slice(0, 8)}: ${s.unrepairable}`, { snapshot: s.id });
      }
      if (s.newId) {
        repaired++;
        out.info(`snapshot ${s.id.slice(0, 8)}: ${s.removedCount} entr${s.removedCount === 1 ? 'y' : 'ies'} left out; repaired copy ${s.newId.slice(0, 8)}${s.forgotten ? ', original removed' : ''}`);
      } else if (dryRun && s.removedCount > 0) {
        out.info(`snapshot ${s.id.slice(0, 8)}: ${s.removedCount} entr${s.removedCount === 1 ? 'y' : 'ies'} would be left out`);
      }
      out.emit('snapshot', { id: s.id, new_id: s.newId, removed: s.removed, removed_count: s.removedCount, forgotten: Boolean(s.forgotten), ...(s.unrepairable ? { unrepairable: s.unrepairable } : {}) });
    }
    out.emit('summary', { snapshots: r.snapshots.length, repaired, unrepairable, dry_run: dryRun });
    out.info(repaired || dryRun ? `${repaired} snapshot${repaired === 1 ? '' : 's'} repaired` : 'no snapshot references lost data');
    return unrepairable > 0 ? ExitCode.Failure : ExitCode.Ok;
  },
});
