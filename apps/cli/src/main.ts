import { defineCommand, runCommand, type ArgsDef, type CommandDef } from 'citty';
import { closestName, globalArgs, joinNegativeValues } from './args.js';
import { ExitCode } from './exit-codes.js';
import { VERSION } from './version.js';
import { describeAll, describeCommand, usageLine, type CommandInfo, type CommandLoaders } from './help/model.js';
import { helpWidth, renderCommandHelp, renderTopHelp } from './help/text.js';
import { SUMMARY } from './help/topics.js';

/**
 * Subcommands are imported only when used, so `kiwi snapshots` never loads the S3 SDK.
 * `--help`, shell completion, the man pages and docs/cli.md are all generated from this table.
 */
export const subCommands = {
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
  completion: () => import('./commands/completion.js').then((m) => m.default),
} as const;

export const main = defineCommand({
  meta: {
    name: 'kiwi',
    version: VERSION,
    description: SUMMARY,
  },
  subCommands,
});

const loaders = subCommands as unknown as CommandLoaders;

/** The top-level help (global options, environment variables, exit codes). */
export async function topHelp(width = helpWidth()): Promise<string> {
  const commands = await describeAll(loaders);
  const globals = (await describeCommand('kiwi', defineCommand({ meta: { name: 'kiwi' }, args: globalArgs }))).options;
  return renderTopHelp(commands, globals, VERSION, width);
}

function unknownCommand(word: string): void {
  if (word.startsWith('-')) {
    process.stderr.write(`kiwi: ${word} goes after the command (kiwi <command> ${word} …); run \`kiwi help\` for the list of commands\n`);
    process.exitCode = ExitCode.Usage;
    return;
  }
  const guess = closestName(word, Object.keys(subCommands));
  process.stderr.write(
    `kiwi: unknown command "${word}"${guess ? ` (did you mean "${guess}"?)` : ''}; run \`kiwi help\` for the list of commands\n`,
  );
  process.exitCode = ExitCode.Usage;
}

/** The command (or subcommand) named by the leading words of `words`, and how many words it took. */
async function findCommand(words: readonly string[]): Promise<{ info: CommandInfo; used: number } | undefined> {
  const loader = loaders[words[0]!];
  if (!loader) return undefined;
  let info = await describeCommand(words[0]!, await loader());
  let used = 1;
  for (const w of words.slice(1)) {
    if (w.startsWith('-') || !info.subcommands.length) break;
    const sub = info.subcommands.find((c) => c.name === `${info.name} ${w}`);
    if (!sub) break;
    info = sub;
    used++;
  }
  return { info, used };
}

async function commandHelp(words: readonly string[]): Promise<void> {
  const found = await findCommand(words);
  if (!found) return unknownCommand(words[0]!);
  const extra = words[found.used];
  if (extra !== undefined && !extra.startsWith('-') && found.info.subcommands.length) {
    return unknownSubcommand(found.info, extra);
  }
  process.stdout.write(renderCommandHelp(found.info, helpWidth()));
}

function unknownSubcommand(group: CommandInfo, word: string): void {
  const names = group.subcommands.map((c) => c.name.split(' ').pop()!);
  const guess = closestName(word, names);
  process.stderr.write(
    `kiwi ${group.name}: unknown command "${word}"${guess ? ` (did you mean "${guess}"?)` : ''}; choose ${names.join(', ')} (see \`kiwi help ${group.name}\`)\n`,
  );
  process.exitCode = ExitCode.Usage;
}

/** Run the CLI with `argv` (without node and script). Sets `process.exitCode`. */
export async function run(argv: string[] = process.argv.slice(2)): Promise<void> {
  const first = argv[0];
  if (argv.length === 0) {
    // A usage error: the help goes to stderr, so a script's stdout stays empty.
    process.stderr.write(await topHelp(helpWidth(process.stderr)));
    process.exitCode = ExitCode.Usage;
    return;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    if (first === 'help' && argv[1] !== undefined && !argv[1].startsWith('-')) return commandHelp(argv.slice(1));
    process.stdout.write(await topHelp());
    return;
  }
  if (first === '--version' || first === '-V' || first === 'version') {
    process.stdout.write(`kiwi ${VERSION}\n`);
    return;
  }
  const loader = loaders[first!];
  if (!loader) return unknownCommand(first!);
  const sub = await loader();
  const rest = argv.slice(1);
  const dashdash = rest.indexOf('--');
  const flags = dashdash < 0 ? rest : rest.slice(0, dashdash);
  if (flags.includes('--help') || flags.includes('-h')) return commandHelp(argv.filter((a) => a !== '--help' && a !== '-h'));
  try {
    const defs = typeof sub.args === 'object' && sub.args !== null ? (sub.args as ArgsDef) : {};
    await runCommand(sub, { rawArgs: joinNegativeValues(rest, defs) });
  } catch (err) {
    // citty's own errors, before the command runs: a missing required argument and the like.
    // One line and a hint, not the whole help.
    const { info } = (await findCommand(argv))!;
    const message = (err as Error).message ?? String(err);
    if (info.subcommands.length) {
      const unknown = /^Unknown command `(.*)`/.exec(message);
      if (unknown) return unknownSubcommand(info, unknown[1]!);
      const names = info.subcommands.map((c) => c.name.split(' ').pop()!);
      process.stderr.write(`kiwi ${info.name}: name a command: ${names.join(', ')} (see \`kiwi help ${info.name}\`)\n`);
      process.exitCode = ExitCode.Usage;
      return;
    }
    const missing = /^Missing required positional argument: (\S+)/.exec(message);
    let line = message;
    if (missing) {
      const p = info.positionals.find((x) => x.name.toUpperCase() === missing[1]);
      line = `missing <${p?.name ?? missing[1]!.toLowerCase()}>${p?.description ? ` (${p.description})` : ''}`;
    }
    process.stderr.write(`kiwi ${info.name}: ${line}\nUsage: ${usageLine(info)}  (see \`kiwi help ${info.name}\`)\n`);
    process.exitCode = ExitCode.Usage;
  }
}
