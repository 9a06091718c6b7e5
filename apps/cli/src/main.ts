import { defineCommand, runCommand, showUsage, type ArgsDef, type CommandDef } from 'citty';
import { ExitCode } from './exit-codes.js';
import { joinNegativeValues } from './args.js';
import { VERSION } from './version.js';

/** Subcommands are imported only when used, so `kiwi snapshots` never loads the S3 SDK. */
const subCommands = {
  init: () => import('./commands/init.js').then((m) => m.default),
  backup: () => import('./commands/backup.js').then((m) => m.default),
  snapshots: () => import('./commands/snapshots.js').then((m) => m.default),
  ls: () => import('./commands/ls.js').then((m) => m.default),
  restore: () => import('./commands/restore.js').then((m) => m.default),
  diff: () => import('./commands/diff.js').then((m) => m.default),
  dump: () => import('./commands/dump.js').then((m) => m.default),
  find: () => import('./commands/find.js').then((m) => m.default),
  tag: () => import('./commands/tag.js').then((m) => m.default),
  check: () => import('./commands/check.js').then((m) => m.default),
  plugins: () => import('./commands/plugins.js').then((m) => m.default),
  repair: () => import('./commands/repair.js').then((m) => m.default),
  prune: () => import('./commands/prune.js').then((m) => m.default),
  copy: () => import('./commands/copy.js').then((m) => m.default),
  forget: () => import('./commands/forget.js').then((m) => m.default),
  key: () => import('./commands/key.js').then((m) => m.default),
  unlock: () => import('./commands/unlock.js').then((m) => m.default),
  stats: () => import('./commands/stats.js').then((m) => m.default),
  daemon: () => import('./commands/daemon.js').then((m) => m.default),
} as const;

export const main = defineCommand({
  meta: {
    name: 'kiwi',
    version: VERSION,
    description: 'Deduplicated, compressed, encrypted backups with plug-in hooks',
  },
  subCommands,
});

/** Run the CLI with `argv` (without node and script). Sets `process.exitCode`. */
export async function run(argv: string[] = process.argv.slice(2)): Promise<void> {
  const first = argv[0];
  if (argv.length === 0 || first === '--help' || first === '-h' || first === 'help') {
    await showUsage(main as CommandDef);
    if (argv.length === 0) process.exitCode = ExitCode.Usage;
    return;
  }
  if (first === '--version' || first === '-V' || first === 'version') {
    process.stdout.write(`kiwi ${VERSION}\n`);
    return;
  }
  const loader = (subCommands as Record<string, (() => Promise<CommandDef>) | undefined>)[first!];
  if (!loader) {
    process.stderr.write(`kiwi: unknown command "${first}" (commands: ${Object.keys(subCommands).join(', ')})\n`);
    process.exitCode = ExitCode.Usage;
    return;
  }
  const sub = await loader();
  const rest = argv.slice(1);
  if (rest.includes('--help') || rest.includes('-h')) {
    await showUsage(sub, main as CommandDef);
    return;
  }
  try {
    const defs = typeof sub.args === 'object' && sub.args !== null ? (sub.args as ArgsDef) : {};
    await runCommand(sub, { rawArgs: joinNegativeValues(rest, defs) });
  } catch (err) {
    // citty's own errors: a missing required argument and the like.
    process.stderr.write(`kiwi ${first}: ${(err as Error).message}\n`);
    await showUsage(sub, main as CommandDef);
    process.exitCode = ExitCode.Usage;
  }
}
