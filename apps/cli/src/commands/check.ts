import { parseReadDataSubset, type ReadDataSubset } from '@kiwi-backup/core';
import { kiwiCommand } from '../command.js';
import { lockOptionsFor, retryLockArgs } from '../lock-wait.js';
import { stringArg } from '../args.js';
import { ExitCode, UsageError } from '../exit-codes.js';

export default kiwiCommand({
  meta: { name: 'check', description: 'Verify the repository: structure, and with --read-data every blob' },
  interruptible: true,
  args: {
    ...retryLockArgs,
    'read-data': { type: 'boolean', description: 'Read, decrypt and verify every blob (slow: reads the whole repository)' },
    'read-data-subset': {
      type: 'string',
      description: 'Read and verify some packs only: n/m (the n-th of m groups, e.g. 1/30 nightly for a month), x% (random), or a size (2G, random)',
    },
  },
  async run({ args, session, signal }) {
    let subset: ReadDataSubset | undefined;
    const subsetText = stringArg(args['read-data-subset']);
    if (subsetText !== undefined) {
      if (args['read-data']) throw new UsageError('--read-data and --read-data-subset cannot be used together');
      try {
        subset = parseReadDataSubset(subsetText);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    const repo = await session.openRepository({ lockOptions: lockOptionsFor(args, session, signal) });
    const out = session.out;
    out.info(`checking ${session.printableRepo()}${args['read-data'] ? ' (reading all data)' : subset ? ` (reading the packs of subset ${subsetText})` : ''}`);
    const report = await repo.check({
      readData: Boolean(args['read-data']),
      ...(subset ? { readDataSubset: subset } : {}),
      onProgress: (p: { phase?: string; done?: number; total?: number }) => {
        out.progress(`${p.phase ?? ''} ${p.done ?? ''}${p.total ? `/${p.total}` : ''}`);
      },
    });
    out.clearProgress();
    for (const w of report.warnings) out.warn(`${w.file}: ${w.message}`, { file: w.file, ...(w.hint ? { hint: w.hint } : {}) });
    for (const e of report.errors) out.error(`${e.file}: ${e.message}${e.hint ? `\n  to repair: ${e.hint}` : ''}`, { file: e.file, ...(e.hint ? { hint: e.hint } : {}) });
    for (const a of report.affected) {
      const where = a.file === 'index' ? 'blobs no index lists' : a.file;
      if (out.json) {
        out.emit('affected', { file: a.file, snapshots: a.snapshots.map((s) => ({ id: s.id, paths: s.paths, more: s.more })) });
        continue;
      }
      const lines = a.snapshots.map((s) => `  snapshot ${s.id.slice(0, 8)}: ${s.paths.join(', ')}${s.more ? ` and ${s.more} more` : ''}`);
      out.error(`data lost with ${where}, in ${a.snapshots.length} snapshot${a.snapshots.length === 1 ? '' : 's'}:\n${lines.join('\n')}`);
    }
    const omitted = report.counts.errors - report.errors.length;
    if (omitted > 0) out.error(`and ${omitted} more errors (not listed)`);
    out.emit('summary', {
      errors: report.counts.errors,
      warnings: report.counts.warnings,
      read_data: Boolean(args['read-data']),
      ...(subset ? { read_data_subset: subsetText, packs_read: report.stats.packsRead } : {}),
      affected_snapshots: new Set(report.affected.flatMap((a) => a.snapshots.map((s) => s.id))).size,
    });
    if (report.counts.errors) {
      const hints = [...new Set(report.errors.map((e) => e.hint).filter((h): h is string => Boolean(h)))];
      out.info(`check found ${report.counts.errors} error${report.counts.errors === 1 ? '' : 's'}`);
      if (hints.length) out.info(`to repair, run:\n${hints.map((h) => `  ${h}`).join('\n')}`);
      return ExitCode.Failure;
    }
    out.info(report.counts.warnings ? `no errors were found (${report.counts.warnings} warning${report.counts.warnings === 1 ? '' : 's'})` : 'no errors were found');
    return ExitCode.Ok;
  },
});
