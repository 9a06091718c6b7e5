import type { Logger } from '../plugins/types.js';

/** Log levels, least to most severe; `silent` drops everything. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogEventLevel = Exclude<LogLevel, 'silent'>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** One log record, as a sink receives it. `message` and `data` are already redacted. */
export interface LogEvent {
  /** Milliseconds since the epoch. */
  time: number;
  level: LogEventLevel;
  /** Scope path, e.g. `plugin:mysql` or `backup/walker`; empty for the root logger. */
  scope: string;
  message: string;
  data?: Record<string, unknown>;
}

/** Where log events go. A sink must not throw (errors thrown by a sink are swallowed). */
export type LogSink = (event: LogEvent) => void;

/** Kiwi's logger: the plug-in {@link Logger} plus scoping and secret registration. */
export interface KiwiLogger extends Logger {
  /** The scope of this logger (`''` for the root). */
  readonly scope: string;
  /** A logger writing to the same sink with `scope` appended (`parent/scope`). */
  child(scope: string): KiwiLogger;
  /** True if events at `level` are currently written. */
  enabled(level: LogEventLevel): boolean;
  /** Set the minimum level (shared by the whole logger tree). */
  setLevel(level: LogLevel): void;
  /** Register a secret (password, token): any occurrence in messages or data is replaced (whole tree). */
  addSecret(secret: string): void;
}

export interface CreateLoggerOptions {
  /** Minimum level written (default `info`). */
  level?: LogLevel;
  /** Where events go (default: {@link humanSink} on stderr). */
  sink?: LogSink;
  /** Scope of the root logger (default none). */
  scope?: string;
  /** Secret strings to redact from every message and data value. */
  secrets?: readonly string[];
}

/** The text that replaces a secret. */
export const REDACTED = '[redacted]';

/**
 * Replace every occurrence of each non-empty secret in `text` with `[redacted]`.
 * Longer secrets are replaced first, so a secret containing another is fully hidden.
 */
export function redact(text: string, secrets: Iterable<string>): string {
  const list = [...secrets].filter((s) => typeof s === 'string' && s.length > 0).sort((a, b) => b.length - a.length);
  let out = text;
  for (const s of list) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

/**
 * True for data keys whose values are never logged: names containing
 * password/passwd/passphrase/secret/token/credential/apikey/authorization/cookie,
 * a word `auth`/`pass`/`pwd`, or whose last word is `key`/`keys` (`key`,
 * `accessKey`, `private_key`; not `keyId` or `keyFile`).
 */
export function isSensitiveKey(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
  const last = words[words.length - 1];
  if (last === 'key' || last === 'keys') return true;
  if (words.some((w) => w === 'auth' || w === 'pass' || w === 'pwd')) return true;
  const n = words.join('');
  return /pass(word|wd|phrase)|secret|token|credential|apikey|authorization|cookie|privatekey/.test(n);
}

const MAX_DEPTH = 6;

/** Copy `data` for logging: sensitive keys become `[redacted]`, strings are scrubbed, errors flattened. */
export function sanitizeLogData(data: Record<string, unknown>, secrets: Iterable<string> = []): Record<string, unknown> {
  const seen = new WeakSet<object>();
  seen.add(data);
  return sanitizeObject(data, [...secrets], 0, seen);
}

function sanitizeObject(obj: Record<string, unknown>, secrets: string[], depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    out[k] = isSensitiveKey(k) && v !== undefined && v !== null ? REDACTED : sanitizeValue(v, secrets, depth + 1, seen);
  }
  return out;
}

function sanitizeValue(v: unknown, secrets: string[], depth: number, seen: WeakSet<object>): unknown {
  if (typeof v === 'string') return secrets.length ? redact(v, secrets) : v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'function' || typeof v === 'symbol') return undefined;
  if (v === null || typeof v !== 'object') return v;
  if (seen.has(v)) return '[circular]';
  if (depth > MAX_DEPTH) return '[…]';
  seen.add(v);
  try {
    if (v instanceof Error) {
      const e: Record<string, unknown> = { name: v.name, message: sanitizeValue(v.message, secrets, depth, seen) };
      const code = (v as { code?: unknown }).code;
      if (code !== undefined) e.code = code;
      return e;
    }
    if (v instanceof Date) return v.toISOString();
    if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
    if (Array.isArray(v)) return v.map((x) => sanitizeValue(x, secrets, depth + 1, seen));
    if (v instanceof Map) return sanitizeObject(Object.fromEntries(v), secrets, depth, seen);
    if (v instanceof Set) return [...v].map((x) => sanitizeValue(x, secrets, depth + 1, seen));
    return sanitizeObject(v as Record<string, unknown>, secrets, depth, seen);
  } finally {
    seen.delete(v);
  }
}

interface Shared {
  level: number;
  sink: LogSink;
  secrets: Set<string>;
}

/** Create a logger tree. Children share the level, sink and secrets of the root. */
export function createLogger(options: CreateLoggerOptions = {}): KiwiLogger {
  const level = options.level ?? 'info';
  if (!(level in RANK)) throw new TypeError(`createLogger: unknown level "${String(level)}" (use ${LOG_LEVELS.join(', ')})`);
  const shared: Shared = {
    level: RANK[level],
    sink: options.sink ?? humanSink(),
    secrets: new Set((options.secrets ?? []).filter((s) => s.length > 0)),
  };
  return makeLogger(shared, options.scope ?? '');
}

function makeLogger(shared: Shared, scope: string): KiwiLogger {
  const emit = (lvl: LogEventLevel, message: string, data?: Record<string, unknown>): void => {
    if (RANK[lvl] < shared.level) return;
    const secrets = shared.secrets;
    const event: LogEvent = {
      time: Date.now(),
      level: lvl,
      scope,
      message: secrets.size ? redact(String(message), secrets) : String(message),
    };
    if (data !== undefined && data !== null && typeof data === 'object') event.data = sanitizeLogData(data, secrets);
    try {
      shared.sink(event);
    } catch {
      // A broken sink must not break a backup.
    }
  };
  return {
    scope,
    debug: (m, d) => emit('debug', m, d),
    info: (m, d) => emit('info', m, d),
    warn: (m, d) => emit('warn', m, d),
    error: (m, d) => emit('error', m, d),
    child: (sub) => makeLogger(shared, scope ? `${scope}/${sub}` : sub),
    enabled: (lvl) => RANK[lvl] >= shared.level,
    setLevel: (lvl) => {
      if (!(lvl in RANK)) throw new TypeError(`setLevel: unknown level "${String(lvl)}"`);
      shared.level = RANK[lvl];
    },
    addSecret: (s) => {
      if (typeof s === 'string' && s.length > 0) shared.secrets.add(s);
    },
  };
}

/**
 * Return `logger.child(scope)` when the logger supports scoping, else a wrapper
 * that prefixes messages with `[scope]`. Lets APIs accept any {@link Logger}.
 */
export function childLogger(logger: Logger, scope: string): Logger {
  const withChild = logger as Partial<KiwiLogger>;
  if (typeof withChild.child === 'function') return withChild.child(scope);
  const p = `[${scope}] `;
  return {
    debug: (m, d) => logger.debug(p + m, d),
    info: (m, d) => logger.info(p + m, d),
    warn: (m, d) => logger.warn(p + m, d),
    error: (m, d) => logger.error(p + m, d),
  };
}

/** A logger that drops everything. */
export function nullLogger(): KiwiLogger {
  return createLogger({ level: 'silent', sink: () => {} });
}

/** Format an event as one human line: `[scope] level: message key=value …` (no trailing newline). */
export function formatHuman(event: LogEvent): string {
  let line = event.scope ? `[${event.scope}] ${event.level}: ${event.message}` : `${event.level}: ${event.message}`;
  if (event.data) {
    for (const [k, v] of Object.entries(event.data)) {
      if (v === undefined) continue;
      line += ` ${k}=${typeof v === 'string' && !/[\s"=]/.test(v) && v !== '' ? v : JSON.stringify(v)}`;
    }
  }
  return line.replace(/[\r\n]+/g, ' ');
}

/** A sink writing human lines (see {@link formatHuman}) to a stream, stderr by default. */
export function humanSink(stream: { write(chunk: string): unknown } = process.stderr): LogSink {
  return (event) => {
    stream.write(formatHuman(event) + '\n');
  };
}

/** The JSON object a {@link jsonSink} writes for an event. */
export interface JsonLogMessage {
  message_type: 'log';
  time: string;
  level: LogEventLevel;
  scope: string;
  message: string;
  data?: Record<string, unknown>;
}

/** Convert an event to the `{"message_type":"log",…}` JSON-lines shape. */
export function toJsonLogMessage(event: LogEvent): JsonLogMessage {
  const out: JsonLogMessage = {
    message_type: 'log',
    time: new Date(event.time).toISOString(),
    level: event.level,
    scope: event.scope,
    message: event.message,
  };
  if (event.data) out.data = event.data;
  return out;
}

/**
 * A sink writing one JSON object per line (`{"message_type":"log",…}`), for `--json` mode.
 * `write` receives a complete line including `\n` (default: stdout).
 */
export function jsonSink(write: (line: string) => void = (line) => void process.stdout.write(line)): LogSink {
  return (event) => write(JSON.stringify(toJsonLogMessage(event)) + '\n');
}

/** A sink that keeps events in memory (tests, `kiwi plugins` reports). */
export interface MemorySink {
  readonly sink: LogSink;
  readonly events: LogEvent[];
  /** The events as human lines. */
  lines(): string[];
  clear(): void;
}

export function memorySink(): MemorySink {
  const events: LogEvent[] = [];
  return {
    sink: (e) => void events.push(e),
    events,
    lines: () => events.map(formatHuman),
    clear: () => void events.splice(0),
  };
}

/** Send each event to several sinks. */
export function teeSink(...sinks: LogSink[]): LogSink {
  return (event) => {
    for (const s of sinks) {
      try {
        s(event);
      } catch {
        // keep going
      }
    }
  };
}

/** Parse a level name (e.g. from `KIWI_LOG_LEVEL`); throws a TypeError naming the valid ones. */
export function parseLogLevel(value: string): LogLevel {
  const v = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  if (v === 'warning') return 'warn';
  throw new TypeError(`unknown log level "${value}" (use ${LOG_LEVELS.join(', ')})`);
}
