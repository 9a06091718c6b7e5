/**
 * JSON with comments and trailing commas (JSONC, as VS Code's settings files), parsed with
 * Microsoft's `jsonc-parser` (the parser of VS Code itself). Kiwi adds what a config file needs on
 * top: syntax errors with line, column and the kind of token found (never its text: `--config` may name
 * a password file, a value may be a secret), duplicate keys refused, a nesting limit checked before
 * the (recursive) parser runs, objects built without prototype setters (`__proto__` is just a key),
 * and the position of every value so schema errors can point at a line.
 */
import type { Node as JsonNode, ParseError } from 'jsonc-parser';
import { jsoncParser } from '../lazy-modules.js';

// jsonc-parser's SyntaxKind values (declared as a const enum, which isolated modules cannot read).
const OPEN_BRACE = 1;
const CLOSE_BRACE = 2;
const OPEN_BRACKET = 3;
const CLOSE_BRACKET = 4;
const COMMA = 5;
const COLON = 6;
const NULL_KEYWORD = 7;
const TRUE_KEYWORD = 8;
const FALSE_KEYWORD = 9;
const STRING_LITERAL = 10;
const NUMERIC_LITERAL = 11;
const LINE_COMMENT = 12;
const BLOCK_COMMENT = 13;
const LINE_BREAK = 14;
const TRIVIA = 15;
const EOF = 17;

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

/** Deeper nesting is refused (a config needs a handful of levels; the parser recurses per level). */
const MAX_DEPTH = 200;

export function parseJsonc(text: string): ParsedJson {
  // A byte order mark is not part of the document; offsets below stay those of `text`.
  const start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const body = start ? text.slice(start) : text;

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
  /** `offset` is in `body`. */
  const fail = (message: string, offset: number): never => {
    throw new JsonSyntaxError(message, posAt(offset + start));
  };
  /**
   * What the parser found at `offset`: the kind of token, never its text. A config file's values may be
   * secrets (an unquoted secret key), and `--config` may name the wrong file (a password file): only
   * punctuation and the JSON keywords, which are what they are, are quoted.
   */
  const found = (offset: number): string => {
    if (offset >= body.length) return 'end of input';
    const scanner = jsoncParser().createScanner(body, false);
    scanner.setPosition(offset);
    return describeToken(scanner.scan(), body.charAt(offset));
  };

  checkDepth(body, fail);
  const errors: ParseError[] = [];
  const root = jsoncParser().parseTree(body, errors, { allowTrailingComma: true, disallowComments: false, allowEmptyContent: false });
  if (errors.length > 0) {
    const e = errors[0]!;
    fail(describeError(jsoncParser().printParseErrorCode(e.error), found(e.offset)), e.offset);
  }
  if (!root) return fail('expected a JSON value, found end of input', body.length);

  const positions = new Map<string, JsonPosition>();
  const toValue = (node: JsonNode, path: string): unknown => {
    positions.set(path, posAt(node.offset + start));
    switch (node.type) {
      case 'object': {
        const obj: Record<string, unknown> = {};
        for (const prop of node.children ?? []) {
          const [keyNode, valueNode] = prop.children ?? [];
          const key = String(keyNode?.value);
          if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate key ${JSON.stringify(key)}`, keyNode!.offset);
          const value = valueNode ? toValue(valueNode, path ? `${path}.${key}` : key) : undefined;
          // Not `obj[key] = value`: a "__proto__" key must stay a key, not replace the prototype.
          Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
        }
        return obj;
      }
      case 'array':
        return (node.children ?? []).map((child, i) => toValue(child, `${path}[${i}]`));
      default:
        return node.value;
    }
  };
  return { value: toValue(root, ''), positions };
}

/** Refuse nesting deeper than {@link MAX_DEPTH} before parsing (one token scan, no recursion). */
function checkDepth(text: string, fail: (message: string, offset: number) => never): void {
  const scanner = jsoncParser().createScanner(text, true);
  let depth = 0;
  for (let kind: number = scanner.scan(); kind !== EOF; kind = scanner.scan()) {
    if (kind === OPEN_BRACE || kind === OPEN_BRACKET) {
      if (++depth > MAX_DEPTH) fail('nesting too deep', scanner.getTokenOffset());
    } else if (kind === CLOSE_BRACE || kind === CLOSE_BRACKET) {
      depth = Math.max(0, depth - 1);
    }
  }
}

/** A token for an error message, by its kind: `"}"`, `true`, `a string`, `an unquoted word`… */
function describeToken(kind: number, first: string): string {
  switch (kind) {
    case OPEN_BRACE:
      return '"{"';
    case CLOSE_BRACE:
      return '"}"';
    case OPEN_BRACKET:
      return '"["';
    case CLOSE_BRACKET:
      return '"]"';
    case COMMA:
      return '","';
    case COLON:
      return '":"';
    case NULL_KEYWORD:
      return 'null';
    case TRUE_KEYWORD:
      return 'true';
    case FALSE_KEYWORD:
      return 'false';
    case STRING_LITERAL:
      return 'a string';
    case NUMERIC_LITERAL:
      return 'a number';
    case LINE_COMMENT:
    case BLOCK_COMMENT:
      return 'a comment';
    case LINE_BREAK:
    case TRIVIA:
      return 'white space';
    case EOF:
      return 'end of input';
    default:
      // Letters, digits, `_` and `$` start a word the parser does not know (a string without its quotes);
      // anything else is a character JSON has no use for.
      return /^[\p{L}\p{N}_$]$/u.test(first) ? 'an unquoted word (strings need double quotes)' : 'an unexpected character';
  }
}

/** A message per jsonc-parser error code (by name). */
function describeError(code: string, found: string): string {
  switch (code) {
    case 'InvalidSymbol':
      return `unexpected token: ${found}`;
    case 'InvalidNumberFormat':
    case 'UnexpectedEndOfNumber':
      return 'invalid number';
    case 'PropertyNameExpected':
      return `expected a double-quoted property name, found ${found}`;
    case 'ValueExpected':
      return `expected a value, found ${found}`;
    case 'ColonExpected':
      return `expected ":" after the property name, found ${found}`;
    case 'CommaExpected':
      return `expected ",", found ${found}`;
    case 'CloseBraceExpected':
      return `expected "," or "}", found ${found}`;
    case 'CloseBracketExpected':
      return `expected "," or "]", found ${found}`;
    case 'EndOfFileExpected':
      return `found ${found} after the end of the document`;
    case 'InvalidCommentToken':
      return 'invalid comment';
    case 'UnexpectedEndOfComment':
      return 'unterminated /* comment';
    case 'UnexpectedEndOfString':
      return 'unterminated string';
    case 'InvalidUnicode':
      return 'invalid \\u escape';
    case 'InvalidEscapeCharacter':
      return 'invalid escape in string';
    case 'InvalidCharacter':
      return 'control character in string (escape it)';
    default:
      return `unexpected token: ${found}`;
  }
}
