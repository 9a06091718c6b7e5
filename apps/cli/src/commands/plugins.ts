import { kiwiCommand } from '../command.js';
import { CliError, ExitCode } from '../exit-codes.js';

export default kiwiCommand({
  meta: { name: 'plugins', description: 'List loaded plug-ins, their hooks, and warnings; --check runs their onServerStart' },
  args: {
    check: {
      type: 'boolean',
      description: 'Run the onServerStart hooks once, as `kiwi daemon` does at start, and report (exit 2 if one fails)',
    },
  },
  async run({ args, session }) {
    const runtime = await session.plugins();
    const out = session.out;
    out.info(`data directory: ${session.dataDir}`);
    for (const p of runtime.plugins) {
      out.emit('plugin', { name: p.name, source: p.source, path: p.path, hooks: p.hooks });
      out.print(`${p.name}  (${p.source}: ${p.path})`);
      out.print(`  hooks: ${p.hooks.length ? p.hooks.join(', ') : '(none)'}`);
    }
    if (runtime.plugins.length === 0) out.info(`no plug-ins (put them in ${session.dataDir}/plugins/<name>/ or list them in the config)`);
    for (const w of runtime.warnings) out.warn(w);
    let check: 'ok' | 'failed' | undefined;
    let failure: Error | undefined;
    if (args.check) {
      const withHook = runtime.plugins.filter((p) => p.hooks.includes('onServerStart')).map((p) => p.name);
      try {
        await runtime.serverStart();
        check = 'ok';
        out.print(`onServerStart: ok (${withHook.length ? withHook.join(', ') : 'no plug-in has this hook'})`);
      } catch (err) {
        check = 'failed';
        failure = err as Error;
      }
    }
    out.emit('summary', {
      plugins: runtime.plugins.length,
      warnings: runtime.warnings.length,
      ...(check ? { check, ...(failure ? { error: failure.message } : {}) } : {}),
    });
    // A plug-in that fails at start is a configuration problem: the daemon would refuse to start (exit 2).
    if (failure) throw new CliError(`onServerStart failed: ${failure.message}`, ExitCode.Usage, { cause: failure });
  },
});
