import { kiwiCommand } from '../command.js';
import { stringArg, stringList } from '../args.js';
import { formatBytes } from '../output.js';

export default kiwiCommand({
  meta: { name: 'snapshots', description: 'List snapshots' },
  args: {
    host: { type: 'string', description: 'Only snapshots of this host' },
    tag: { type: 'string', description: 'Only snapshots with this tag (repeatable)' },
  },
  async run({ args, session }) {
    const repo = await session.openRepository();
    const host = stringArg(args.host);
    const tags = stringList(args.tag);
    const list = (await repo.listSnapshots())
      .filter(({ snapshot }) => !host || snapshot.hostname === host)
      .filter(({ snapshot }) => tags.every((t) => snapshot.tags.includes(t)))
      .sort((a, b) => a.snapshot.time.localeCompare(b.snapshot.time));
    const out = session.out;
    if (out.json) {
      for (const { id, snapshot } of list) out.emit('snapshot', { id, short_id: id.slice(0, 8), ...snapshot });
      out.emit('summary', { snapshots: list.length });
      return;
    }
    if (list.length === 0) {
      out.info('no snapshots');
      return;
    }
    out.print(`${'ID'.padEnd(10)}${'Time'.padEnd(21)}${'Host'.padEnd(16)}${'Size'.padEnd(11)}${'Tags'.padEnd(16)}Paths`);
    for (const { id, snapshot } of list) {
      const time = new Date(snapshot.time).toISOString().replace('T', ' ').slice(0, 19);
      const size = snapshot.summary ? formatBytes(snapshot.summary.totalBytes) : '';
      out.print(
        `${id.slice(0, 8).padEnd(10)}${time.padEnd(21)}${snapshot.hostname.slice(0, 15).padEnd(16)}${size.padEnd(11)}${snapshot.tags.join(',').slice(0, 15).padEnd(16)}${snapshot.paths.join(' ')}${snapshot.partial ? '  (partial)' : ''}`,
      );
    }
    out.info(`${list.length} snapshot${list.length === 1 ? '' : 's'}`);
  },
});
