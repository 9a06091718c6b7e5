import { kiwiCommand } from '../command.js';
import { ExitCode } from '../exit-codes.js';

export default kiwiCommand({
  meta: { name: 'check', description: 'Verify the repository: structure, and with --read-data every blob' },
  interruptible: true,
  args: {
    'read-data': { type: 'boolean', description: 'Read, decrypt and verify every blob (slow: reads the whole repository)' },
  },
  async run({ args, session }) {
    const repo = await session.openRepository();
    const out = session.out;
    out.info(`checking ${session.printableRepo()}${args['read-data'] ? ' (reading all data)' : ''}`);
    const report = await repo.check({
      readData: Boolean(args['read-data']),
      onProgress: (p: { phase?: string; done?: number; total?: number }) => {
        out.progress(`${p.phase ?? ''} ${p.done ?? ''}${p.total ? `/${p.total}` : ''}`);
      },
    });
    out.clearProgress();
    for (const w of report.warnings) out.warn(`${w.file}: ${w.message}`, { file: w.file });
    for (const e of report.errors) out.error(`${e.file}: ${e.message}`, { file: e.file });
    out.emit('summary', { errors: report.errors.length, warnings: report.warnings.length, read_data: Boolean(args['read-data']) });
    if (report.errors.length) {
      out.info(`check found ${report.errors.length} error${report.errors.length === 1 ? '' : 's'}`);
      return ExitCode.Failure;
    }
    out.info('no errors were found');
    return ExitCode.Ok;
  },
});
