import type { ArgDef, CommandDef } from 'citty';
import { globalArgs } from '../args.js';

/**
 * The command definitions in one plain shape, for everything generated from them: `--help` text,
 * shell completion, man pages and docs/cli.md. Read from main.ts's subcommand table (its lazy
 * loaders), so a command added there shows up everywhere without further edits.
 */
export interface OptionInfo {
  name: string;
  aliases: string[];
  type: 'string' | 'boolean';
  description: string;
  /** One of the options every command takes (`--repo`, `--json`, ...). */
  global: boolean;
  /** A value placeholder for string options (`<dir>`), from the description's leading words or the name. */
  valueName: string;
}

export interface PositionalInfo {
  name: string;
  required: boolean;
  description: string;
  /** Takes any number of values (`[paths…]`). */
  variadic: boolean;
}

export interface CommandInfo {
  /** The words after `kiwi`: `backup`, or `repair index` for a subcommand. */
  name: string;
  description: string;
  positionals: PositionalInfo[];
  options: OptionInfo[];
  examples: string[];
  /** A command group (`kiwi repair index|packs|snapshots`): its subcommands, in their table's order. */
  subcommands: CommandInfo[];
}

export type CommandLoaders = Record<string, () => Promise<CommandDef<any>>>;

/** Extra documentation a command may carry (kept off citty's own `meta`). */
export interface CommandDocs {
  examples?: string[];
}

/** Attach examples to a command definition (read by `--help`, man pages and docs/cli.md). */
export function withDocs<T extends object>(def: T, docs: CommandDocs): T {
  Object.defineProperty(def, 'kiwiDocs', { value: docs, enumerable: false });
  return def;
}

const GLOBAL_NAMES = new Set(Object.keys(globalArgs));

/** Value placeholders by option name, where the name alone says too little. */
const VALUE_NAMES: Record<string, string> = {
  repo: 'url',
  'password-file': 'file',
  config: 'file',
  target: 'dir',
  'exclude-file': 'file',
  exclude: 'pattern',
  include: 'pattern',
  iinclude: 'pattern',
  iexclude: 'pattern',
  parent: 'snapshot',
  snapshot: 'snapshot',
  host: 'host',
  tag: 'tag',
  path: 'path',
};

export async function describeCommand(name: string, def: CommandDef<any>): Promise<CommandInfo> {
  const meta = (typeof def.meta === 'function' ? await def.meta() : await def.meta) ?? {};
  const args = ((typeof def.args === 'function' ? await def.args() : await def.args) ?? {}) as Record<string, ArgDef>;
  const positionals: PositionalInfo[] = [];
  const options: OptionInfo[] = [];
  for (const [argName, a] of Object.entries(args)) {
    const description = (a as { description?: string }).description ?? '';
    if (a.type === 'positional') {
      positionals.push({
        name: argName,
        required: (a as { required?: boolean }).required !== false && (a as { default?: unknown }).default === undefined,
        description,
        // A plural name takes any number of values (`paths`, `snapshots`): citty passes the rest in `_`.
        variadic: argName.length > 2 && argName.endsWith('s'),
      });
      continue;
    }
    const alias = (a as { alias?: string | string[] }).alias;
    options.push({
      name: argName,
      aliases: Array.isArray(alias) ? alias : alias ? [alias] : [],
      type: a.type === 'boolean' ? 'boolean' : 'string',
      description,
      global: GLOBAL_NAMES.has(argName),
      valueName: VALUE_NAMES[argName] ?? 'value',
    });
  }
  const docs = (def as { kiwiDocs?: CommandDocs }).kiwiDocs;
  const subs = (typeof def.subCommands === 'function' ? await def.subCommands() : await def.subCommands) ?? {};
  const subcommands: CommandInfo[] = [];
  for (const [subName, sub] of Object.entries(subs)) {
    const subDef = (await (typeof sub === 'function' ? (sub as () => Promise<CommandDef<any>>)() : sub)) as CommandDef<any>;
    subcommands.push(await describeCommand(`${name} ${subName}`, subDef));
  }
  return {
    // The table's name (`repair index`), not the definition's own (`index`).
    name,
    description: meta.description ?? '',
    positionals,
    options,
    examples: docs?.examples ?? [],
    subcommands,
  };
}

/** Every command that runs (a group's subcommands instead of the group), depth first. */
export function leafCommands(commands: readonly CommandInfo[]): CommandInfo[] {
  return commands.flatMap((c) => (c.subcommands.length ? leafCommands(c.subcommands) : [c]));
}

/** Every command and group, depth first (a group before its subcommands). */
export function allCommands(commands: readonly CommandInfo[]): CommandInfo[] {
  return commands.flatMap((c) => [c, ...allCommands(c.subcommands)]);
}

/** Every command of the table, in the table's order. */
export async function describeAll(loaders: CommandLoaders): Promise<CommandInfo[]> {
  const out: CommandInfo[] = [];
  for (const [name, load] of Object.entries(loaders)) out.push(await describeCommand(name, await load()));
  return out;
}

/** `kiwi ls [options] <snapshot> [path]` */
export function usageLine(cmd: CommandInfo): string {
  if (cmd.subcommands.length) return `kiwi ${cmd.name} <${cmd.subcommands.map((c) => c.name.split(' ').pop()).join('|')}>`;
  const parts = [`kiwi ${cmd.name}`];
  if (cmd.options.length) parts.push('[options]');
  for (const p of cmd.positionals) {
    const n = p.variadic ? `${p.name}…` : p.name;
    parts.push(p.required ? `<${n}>` : `[${n}]`);
  }
  return parts.join(' ');
}

/** `-r, --repo <url>` */
export function optionLabel(o: OptionInfo): string {
  const short = o.aliases.filter((a) => a.length === 1).map((a) => `-${a}`);
  const long = [`--${o.name}`, ...o.aliases.filter((a) => a.length > 1).map((a) => `--${a}`)];
  return `${[...short, ...long].join(', ')}${o.type === 'string' ? ` <${o.valueName}>` : ''}`;
}
