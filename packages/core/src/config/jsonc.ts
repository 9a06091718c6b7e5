/**
 * A small JSON parser that also accepts `//` and `/* *\/` comments and trailing
 * commas (JSONC, as VS Code's settings files), reports syntax errors with line
 * and column, rejects duplicate keys, and records where each value starts so
 * schema errors can point at a line.
 */

export interface JsonPosition {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units. */
  column: number;
  offset: number;
}

export class JsonSyntaxError extends Error {
  readonly line: number;
  readonly column: number;
  readonly offset: number;
  constructor(message: string, pos: JsonPosition) {
    super(`${message} at line ${pos.line}, column ${pos.column}`);
    this.name = 'JsonSyntaxError';
    this.line = pos.line;
    this.column = pos.column;
    this.offset = pos.offset;
  }
}

export interface ParsedJson {
  value: unknown;
  /** Start of each value, keyed by its path (`plugins[0].options`, `''` for the root). */
  positions: Map<string, JsonPosition>;
}

export function parseJsonc(text: string): ParsedJson {
  const positions = new Map<string, JsonPosition>();
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;

  const lineStarts = [0];
  for (let k = 0; k < text.length; k++) if (text.charCodeAt(k) === 10) lineStarts.push(k + 1);
  const posAt = (offset: number): JsonPosition => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - lineStarts[lo]! + 1, offset };
  };
  const fail = (message: string, at = i): never => {
    throw new JsonSyntaxError(message, posAt(at));
  };
  const describe = (at: number): string => (at >= text.length ? 'end of input' : `${JSON.stringify(text[at])}`);

  const skip = (): void => {
    for (;;) {
      const c = text[i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else if (c === '/' && text[i + 1] === '/') {
        while (i < text.length && text[i] !== '\n') i++;
      } else if (c === '/' && text[i + 1] === '*') {
        const end = text.indexOf('*/', i + 2);
        if (end < 0) fail('unterminated /* comment');
        i = end + 2;
      } else return;
    }
  };

  const parseString = (): string => {
    const start = i;
    i++; // opening quote
    let out = '';
    let chunk = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string', start);
      const code = text.charCodeAt(i);
      if (code === 34) {
        out += text.slice(chunk, i);
        i++;
        return out;
      }
      if (code < 0x20) fail('control character in string (escape it)');
      if (code === 92) {
        out += text.slice(chunk, i);
        const e = text[i + 1];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const hex = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('invalid \\u escape');
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default:
            fail(`invalid escape \\${e ?? ''}`);
        }
        i += 2;
        chunk = i;
        continue;
      }
      i++;
    }
  };

  const parseNumber = (): number => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail(`unexpected ${describe(i)}`);
    i += m[0].length;
    return Number(m[0]);
  };

  const parseValue = (path: string, depth: number): unknown => {
    if (depth > 200) fail('nesting too deep');
    skip();
    positions.set(path, posAt(i));
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      skip();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skip();
        if (text[i] === '}') {
          i++; // trailing comma
          return obj;
        }
        if (text[i] !== '"') fail(`expected a double-quoted property name, found ${describe(i)}`);
        const keyAt = i;
        const key = parseString();
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate key "${key}"`, keyAt);
        skip();
        if (text[i] !== ':') fail(`expected ":" after "${key}", found ${describe(i)}`);
        i++;
        const childPath = path ? `${path}.${key}` : key;
        const v = parseValue(childPath, depth + 1);
        Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail(`expected "," or "}" after the value of "${key}", found ${describe(i)}`);
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      skip();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        skip();
        if (text[i] === ']') {
          i++;
          return arr;
        }
        arr.push(parseValue(`${path}[${arr.length}]`, depth + 1));
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail(`expected "," or "]" in array, found ${describe(i)}`);
      }
    }
    if (c === '"') return parseString();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return parseNumber();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return value;
      }
    }
    return fail(`unexpected ${describe(i)}`);
  };

  const value = parseValue('', 0);
  skip();
  if (i < text.length) fail(`unexpected ${describe(i)} after the end of the document`);
  return { value, positions };
}
