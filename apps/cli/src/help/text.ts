/**
 * `--help` text, rendered by Kiwi rather than citty's `showUsage`: citty prints through consola, which
 * pads every table row with trailing spaces to the longest line (so a narrow terminal wraps each row
 * into a blank line) and, in its "fancy" TTY mode, can decorate lines. Plain text, wrapped to the
 * terminal (at most 100 columns), no trailing spaces.
 */
import { optionLabel, usageLine, type CommandInfo } from './model.js';
import { ENVIRONMENT, SUMMARY, exitCodes } from './topics.js';

/** Width to wrap help at: the terminal's, within 60..100; 80 when not a terminal. */
export function helpWidth(stream: { isTTY?: boolean; columns?: number } = process.stdout): number {
  if (!stream.isTTY || !stream.columns) return 80;
  return Math.max(60, Math.min(100, stream.columns));
}

/** Words of `text` in lines of at most `width` characters (a longer word stands alone). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.length ? lines : [''];
}

/** Two columns: labels padded to a common width (capped), descriptions wrapped beside them. */
export function table(rows: ReadonlyArray<readonly [string, string]>, width: number, indent = 2): string[] {
  const labelWidth = Math.min(30, Math.max(0, ...rows.map(([l]) => l.length)));
  const descWidth = Math.max(20, width - indent - labelWidth - 2);
  const out: string[] = [];
  for (const [label, desc] of rows) {
    const wrapped = wrap(desc, descWidth);
    const pad = ' '.repeat(indent + labelWidth + 2);
    if (label.length > labelWidth) {
      out.push(`${' '.repeat(indent)}${label}`);
      for (const w of wrapped) out.push(`${pad}${w}`.trimEnd());
      continue;
    }
    out.push(`${' '.repeat(indent)}${label.padEnd(labelWidth)}  ${wrapped[0]}`.trimEnd());
    for (const w of wrapped.slice(1)) out.push(`${pad}${w}`.trimEnd());
  }
  return out;
}

export function renderTopHelp(commands: CommandInfo[], globals: CommandInfo['options'], version: string, width: number): string {
  const lines: string[] = [`kiwi ${version}: ${SUMMARY}`, '', 'Usage: kiwi <command> [options] [arguments]', '', 'Commands:'];
  lines.push(...table(commands.map((c) => [c.name, c.description]), width));
  lines.push('', 'Options every command takes:');
  lines.push(
    ...table(
      [
        ...globals.map((o) => [optionLabel(o), o.description] as const),
        ['-h, --help', 'Show help (also: kiwi help <command>)'],
        ['-V, --version', 'Print the version'],
      ],
      width,
    ),
  );
  lines.push('', 'Environment:');
  lines.push(...table(ENVIRONMENT.map(([n, d]) => [n, d]), width));
  lines.push('', 'Exit codes:');
  lines.push(...table(exitCodes().map(([c, d]) => [String(c), d]), width));
  lines.push('', 'Run `kiwi help <command>` for a command\'s arguments and options.');
  return `${lines.join('\n')}\n`;
}

export function renderCommandHelp(cmd: CommandInfo, width: number): string {
  const lines: string[] = [`Usage: ${usageLine(cmd)}`, '', ...wrap(cmd.description, width)];
  if (cmd.subcommands.length) {
    lines.push('', 'Commands:');
    lines.push(...table(cmd.subcommands.map((c) => [c.name.split(' ').pop()!, c.description]), width));
    lines.push('', `Run \`kiwi help ${cmd.name} <command>\` for a command's arguments and options.`);
    return `${lines.join('\n')}\n`;
  }
  if (cmd.positionals.length) {
    lines.push('', 'Arguments:');
    lines.push(...table(cmd.positionals.map((p) => [p.variadic ? `${p.name}…` : p.name, p.description]), width));
  }
  const own = cmd.options.filter((o) => !o.global);
  const globals = cmd.options.filter((o) => o.global);
  if (own.length) {
    lines.push('', 'Options:');
    lines.push(...table(own.map((o) => [optionLabel(o), o.description]), width));
  }
  if (globals.length) {
    lines.push('', 'Global options:');
    lines.push(...table(globals.map((o) => [optionLabel(o), o.description]), width));
  }
  if (cmd.examples.length) {
    lines.push('', 'Examples:');
    for (const e of cmd.examples) lines.push(`  ${e}`);
  }
  lines.push('', 'Environment variables and exit codes: `kiwi --help`.');
  return `${lines.join('\n')}\n`;
}
