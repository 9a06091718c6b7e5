import { diffSnapshots } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { ExitCode } from '../exit-codes.js';
import { chooseSnapshot, selectArgs } from '../select.js';

const SYMBOL: Record<string, string> = { added: '+', removed: '-', modified: 'M', type: 'T', metadata: 'U' };

export default kiwiCommand({
  meta: { name: 'diff', description: 'Show what changed between two snapshots' },
  args: {
    a: { type: 'positional', required: true, description: 'First snapshot (id prefix or "latest")' },
    b: { type: 'positional', required: true, description: 'Second snapshot (id prefix or "latest")' },
    ...selectArgs,
  },
  async run({ args, session }) {
    const repo = await session.openRepository();
    const a = await chooseSnapshot(repo, String(args.a), args, session.out);
    const b = await chooseSnapshot(repo, String(args.b), args, session.out);
    const counts: Record<string, number> = {};
    // A bad entry or an unreadable directory is reported once and the comparison goes on.
    let errors = 0;
    const onError = (e: { path: string; message: string }) => {
      errors++;
      session.out.error(`${e.path}: ${e.message}`, { path: e.path });
    };
    for await (const change of diffSnapshots(repo, a.snapshot, b.snapshot, { onError })) {
      counts[change.change] = (counts[change.change] ?? 0) + 1;
      session.out.emit('change', { path: change.path, modifier: change.change });
      session.out.print(`${SYMBOL[change.change] ?? '?'}    ${change.path}`);
      const wait = session.out.backpressure();
      if (wait) await wait;
    }
    session.out.emit('summary', { snapshot_a: a.id, snapshot_b: b.id, ...counts, ...(errors ? { errors } : {}) });
    session.out.info(
      `${a.id.slice(0, 8)} → ${b.id.slice(0, 8)}: ${counts.added ?? 0} added, ${counts.removed ?? 0} removed, ${(counts.modified ?? 0) + (counts.type ?? 0)} modified${counts.metadata ? `, ${counts.metadata} metadata only` : ''}${errors ? `, ${errors} entries could not be compared` : ''}`,
    );
    return errors ? ExitCode.Failure : ExitCode.Ok;
  },
});
