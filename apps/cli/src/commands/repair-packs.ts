import { repairPacks, resolvePackIds } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { ExitCode, UsageError } from '../exit-codes.js';

export default kiwiCommand({
  meta: { name: 'packs', description: 'Salvage damaged packs: store their intact blobs again, then remove the damaged packs' },
  interruptible: true,
  args: {
    ...retryLockArgs,
    ids: { type: 'positional', required: false, description: 'Pack ids or prefixes (as `kiwi check --read-data` names them)' },
  },
  async run({ args, session, signal }) {
    const refs = (args._ ?? []).map(String).filter(Boolean);
    if (refs.length === 0) throw new UsageError('name the packs to repair, e.g. `kiwi repair packs 1a2b3c4d` (`kiwi check --read-data` lists damaged packs)');
    const repo = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    const out = session.out;
    let ids: string[];
    try {
      ids = await resolvePackIds(repo, refs);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const r = await repairPacks(repo, ids, { onProgress: (p) => out.progress(`salvaging ${p.done}/${p.total}`) });
    out.clearProgress();
    let lost = 0;
    for (const p of r.packs) {
      const file = `data/${p.pack.slice(0, 2)}/${p.pack}`;
      if (p.headerProblem) out.warn(`${file}: ${p.headerProblem}; its blobs were taken from the index`, { file });
      for (const l of p.lost) out.error(`${file}: ${l.type} blob ${l.id} is lost: ${l.message}`, { file, blob: l.id });
      lost += p.lost.length;
      out.emit('pack', { file, salvaged: p.salvaged, lost: p.lost.length });
      out.info(`${file}: ${p.salvaged} blobs salvaged, ${p.lost.length} lost; the pack was removed`);
    }
    out.emit('summary', { packs: r.packs.length, lost_blobs: lost, new_index_files: r.newIndexFiles, removed_index_files: r.removedIndexFiles });
    if (lost > 0) {
      out.info('next: `kiwi backup` stores the lost data again while the sources still have it; then `kiwi repair snapshots` removes the lost files from older snapshots');
      return ExitCode.Partial; // repaired, but data is lost (each blob reported above)
    }
    return ExitCode.Ok;
  },
});
