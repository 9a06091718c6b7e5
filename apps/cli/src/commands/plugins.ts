import { kiwiCommand } from '../command.js';

export default kiwiCommand({
  meta: { name: 'plugins', description: 'List loaded plug-ins, their hooks, and warnings' },
  args: {},
  async run({ session }) {
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
    out.emit('summary', { plugins: runtime.plugins.length, warnings: runtime.warnings.length });
  },
});
