/** docs/cli.md, the CLI reference, generated from the command definitions. */
import { allCommands, optionLabel, usageLine, type CommandInfo, type OptionInfo } from './model.js';
import { ENVIRONMENT, SUMMARY, exitCodes } from './topics.js';

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
}

/** GitHub's anchor of a `## kiwi <name>` heading. */
function anchor(c: CommandInfo): string {
  return `kiwi-${c.name.replace(/ /g, '-')}`;
}

function optionTable(options: OptionInfo[]): string[] {
  return ['| option | meaning |', '| --- | --- |', ...options.map((o) => `| \`${optionLabel(o)}\` | ${cell(o.description)} |`)];
}

export function cliMarkdown(commands: CommandInfo[], globals: OptionInfo[]): string {
  const out: string[] = [
    '# Kiwi command-line reference',
    '',
    '<!-- Generated from the command definitions by `pnpm docs:cli` (scripts/docs-cli.mjs); do not edit by hand.',
    '     A test fails when this file is out of date. -->',
    '',
    `${SUMMARY}. \`kiwi help <command>\` prints the same text for one command; \`man kiwi-<command>\` too`,
    'where the package\'s man pages are installed.',
    '',
    '## Commands',
    '',
    '| command | what it does |',
    '| --- | --- |',
    ...commands.map((c) => `| [\`${c.name}\`](#${anchor(c)}) | ${cell(c.description)} |`),
    '',
    '## Options every command takes',
    '',
    ...optionTable(globals),
    '',
    '## Environment',
    '',
    '| variable | meaning |',
    '| --- | --- |',
    ...ENVIRONMENT.map(([n, d]) => `| ${n.split(', ').map((x) => `\`${x}\``).join(', ')} | ${cell(d)} |`),
    '',
    '## Exit codes',
    '',
    '| code | meaning |',
    '| --- | --- |',
    ...exitCodes().map(([c, d]) => `| ${c} | ${cell(d)} |`),
  ];
  for (const c of allCommands(commands)) {
    out.push('', `## kiwi ${c.name}`, '', `${c.description}.`, '', '```', usageLine(c), '```');
    if (c.subcommands.length) {
      out.push('', '| command | what it does |', '| --- | --- |');
      for (const s of c.subcommands) out.push(`| [\`${s.name}\`](#${anchor(s)}) | ${cell(s.description)} |`);
    }
    if (c.positionals.length) {
      out.push('', '| argument | meaning |', '| --- | --- |');
      for (const p of c.positionals) out.push(`| \`${p.variadic ? `${p.name}…` : p.name}\`${p.required ? '' : ' (optional)'} | ${cell(p.description)} |`);
    }
    const own = c.options.filter((o) => !o.global);
    if (own.length) out.push('', ...optionTable(own));
    if (c.options.some((o) => o.global)) out.push('', 'And the [options every command takes](#options-every-command-takes).');
    if (c.examples.length) out.push('', 'Examples:', '', '```sh', ...c.examples, '```');
  }
  return `${out.join('\n')}\n`;
}
