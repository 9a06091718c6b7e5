import { dirname, isAbsolute, resolve } from 'node:path';

/** Sections of a MySQL option file (`my.cnf`), each a map of option name (`_` written as `-`) to value. */
export type OptionFile = Record<string, Record<string, string>>;

/**
 * Parse a MySQL/MariaDB option file the way the clients do: `[section]` headers, `name=value` or a bare
 * `name`, comments starting with `#` or `;`, values in single or double quotes with backslash escapes,
 * and `!include <file>`. (`!includedir` is not followed.)
 */
export async function readOptionFile(path: string, read: (path: string) => Promise<string>, depth = 0): Promise<OptionFile> {
  if (depth > 10) throw new Error(`option file ${path}: !include nested too deeply`);
  let text: string;
  try {
    text = await read(path);
  } catch (err) {
    throw new Error(`cannot read MySQL option file ${path}: ${(err as Error).message}`);
  }
  const out: OptionFile = {};
  let section: Record<string, string> | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('!include ')) {
      const target = line.slice('!include '.length).trim();
      const included = await readOptionFile(isAbsolute(target) ? target : resolve(dirname(path), target), read, depth + 1);
      for (const [name, values] of Object.entries(included)) Object.assign((out[name] ??= {}), values);
      continue;
    }
    if (line.startsWith('!')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = out[header[1]!.trim().toLowerCase()] ??= {};
      continue;
    }
    if (!section) throw new Error(`option file ${path}, line ${i + 1}: an option before any [section]`);
    const eq = line.indexOf('=');
    const name = (eq === -1 ? line : line.slice(0, eq)).trim().toLowerCase().replace(/_/g, '-');
    section[name] = eq === -1 ? '' : parseValue(line.slice(eq + 1).trim());
  }
  return out;
}

function parseValue(raw: string): string {
  const quote = raw[0];
  if (quote === '"' || quote === "'") {
    let value = '';
    for (let i = 1; i < raw.length; i++) {
      const ch = raw[i]!;
      if (ch === quote) return value;
      if (ch === '\\' && i + 1 < raw.length) {
        const next = raw[++i]!;
        value += ({ n: '\n', t: '\t', r: '\r', b: '\b', s: ' ', '\\': '\\', '"': '"', "'": "'" } as Record<string, string>)[next] ?? `\\${next}`;
      } else {
        value += ch;
      }
    }
    return value; // unterminated quote: take the rest
  }
  // Unquoted: a `#` starts a comment; escapes still apply.
  const hash = raw.search(/\s#/);
  const text = (hash === -1 ? raw : raw.slice(0, hash)).trim();
  return text.replace(/\\([ntrbs\\])/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r', b: '\b', s: ' ', '\\': '\\' })[c] ?? c);
}

/** Quote a value for an option file we write (the dump tool's credentials). */
export function quoteOptionValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')}"`;
}
