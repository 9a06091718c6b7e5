/**
 * Man pages (roff, man(7) macros), one per command plus kiwi(1), generated from the command
 * definitions. Kiwi writes the few lines of roff itself rather than going through marked-man:
 * that converts Markdown, so it would need an intermediate Markdown rendering and the `marked`
 * parser for what is here a title, a few sections and an escaping rule.
 */
import { optionLabel, usageLine, type CommandInfo, type OptionInfo } from './model.js';
import { ENVIRONMENT, SUMMARY, exitCodes } from './topics.js';

/** Escape text for roff: backslashes, and a leading `.` or `'` that would read as a request. */
function esc(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    // groff reads its input as Latin-1: other characters by their Unicode name (\[u2192] for →).
    .replace(/[^\x00-\x7f]/gu, (ch) => `\\[u${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`)
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

function header(name: string, date: string, version: string): string[] {
  return [`.TH "${name.toUpperCase()}" "1" "${date}" "kiwi ${version}" "Kiwi Manual"`];
}

function optionItems(options: OptionInfo[]): string[] {
  return options.flatMap((o) => ['.TP', `.B ${esc(optionLabel(o))}`, esc(o.description)]);
}

/** The man page's name of a command: `kiwi-backup`, `kiwi-repair-index`. */
export function manName(cmd: CommandInfo): string {
  return `kiwi-${cmd.name.replace(/ /g, '-')}`;
}

export function manPage(cmd: CommandInfo, version: string, date: string): string {
  const own = cmd.options.filter((o) => !o.global);
  const globals = cmd.options.filter((o) => o.global);
  const lines = [
    ...header(manName(cmd), date, version),
    '.SH NAME',
    `${esc(manName(cmd))} \\- ${esc(cmd.description)}`,
    '.SH SYNOPSIS',
    `.B ${esc(usageLine(cmd).replace(/…/g, '...'))}`,
    '.SH DESCRIPTION',
    esc(cmd.description) + '.',
  ];
  if (cmd.subcommands.length) {
    lines.push('.SH COMMANDS');
    for (const c of cmd.subcommands) lines.push('.TP', `.BR ${esc(manName(c))} (1)`, esc(c.description));
  }
  if (cmd.positionals.length) {
    lines.push('.SH ARGUMENTS');
    for (const p of cmd.positionals) lines.push('.TP', `.I ${esc(p.variadic ? `${p.name}...` : p.name)}`, esc(p.description));
  }
  if (own.length) lines.push('.SH OPTIONS', ...optionItems(own));
  if (globals.length) lines.push('.SH GLOBAL OPTIONS', ...optionItems(globals));
  if (cmd.examples.length) {
    lines.push('.SH EXAMPLES');
    for (const e of cmd.examples) lines.push('.PP', '.nf', `    ${esc(e)}`, '.fi');
  }
  const parent = cmd.name.includes(' ') ? `kiwi-${cmd.name.split(' ').slice(0, -1).join('-')}` : 'kiwi';
  lines.push('.SH SEE ALSO', `.BR ${esc(parent)} (1)`);
  return `${lines.join('\n')}\n`;
}

export function mainManPage(commands: CommandInfo[], globals: OptionInfo[], version: string, date: string): string {
  const lines = [
    ...header('kiwi', date, version),
    '.SH NAME',
    `kiwi \\- ${esc(SUMMARY.toLowerCase())}`,
    '.SH SYNOPSIS',
    '.B kiwi',
    '.I command',
    '[\\fIoptions\\fR] [\\fIarguments\\fR]',
    '.SH COMMANDS',
  ];
  for (const c of commands) lines.push('.TP', `.BR ${esc(manName(c))} (1)`, esc(c.description));
  lines.push('.SH GLOBAL OPTIONS', ...optionItems(globals));
  lines.push('.SH ENVIRONMENT');
  for (const [n, d] of ENVIRONMENT) lines.push('.TP', `.B ${esc(n)}`, esc(d));
  lines.push('.SH EXIT STATUS');
  for (const [c, d] of exitCodes()) lines.push('.TP', `.B ${c}`, esc(d));
  lines.push('.SH SEE ALSO', commands.map((c) => `.BR ${esc(manName(c))} (1)`).join(',\n'));
  return `${lines.join('\n')}\n`;
}
