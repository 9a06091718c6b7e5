import { describe, expect, it } from 'vitest';
import {
  childLogger,
  createLogger,
  formatHuman,
  humanSink,
  isSensitiveKey,
  jsonSink,
  memorySink,
  parseLogLevel,
  redact,
  type Logger,
} from '../../src/index.js';

describe('logger', () => {
  it('filters by level, scopes children and shares the sink', () => {
    const mem = memorySink();
    const root = createLogger({ level: 'info', sink: mem.sink });
    root.debug('hidden');
    root.info('hello', { n: 1 });
    const child = root.child('backup').child('walker');
    child.warn('slow disk', { path: '/a b' });
    expect(mem.lines()).toEqual(['info: hello n=1', '[backup/walker] warn: slow disk path="/a b"']);
    expect(child.scope).toBe('backup/walker');
    root.setLevel('error');
    child.warn('dropped');
    expect(child.enabled('warn')).toBe(false);
    expect(mem.events).toHaveLength(2);
    expect(() => createLogger({ level: 'loud' as never })).toThrow(/unknown level "loud"/);
  });

  it('never prints values of sensitive keys, at any depth', () => {
    const mem = memorySink();
    const log = createLogger({ sink: mem.sink });
    log.info('connect', {
      password: 'hunter2',
      repo: { url: 's3:bucket', secretAccessKey: 'AKIA…', nested: { apiToken: 't0k' } },
      headers: [{ Authorization: 'Bearer x' }],
      keyFile: '/home/u/key',
      passwordFile: '/home/u/pw',
      empty: null,
    });
    const text = JSON.stringify(mem.events[0]);
    for (const s of ['hunter2', 'AKIA', 't0k', 'Bearer']) expect(text).not.toContain(s);
    expect(mem.events[0]!.data).toMatchObject({ password: '[redacted]', keyFile: '/home/u/key', empty: null, repo: { url: 's3:bucket' } });
    // A "…File" path is not itself secret, but its name says password: redact to be safe.
    expect(mem.events[0]!.data!.passwordFile).toBe('[redacted]');
  });

  it('redacts registered secrets from messages and data strings; errors are flattened', () => {
    const mem = memorySink();
    const log = createLogger({ sink: mem.sink, secrets: ['s3cr3t'] });
    log.child('x').addSecret('pa55');
    log.error('failed with s3cr3t and pa55', { err: new Error('bad pa55'), note: 'pa55!' });
    expect(mem.lines()).toEqual(['error: failed with [redacted] and [redacted] err={"name":"Error","message":"bad [redacted]"} note=[redacted]!']);
  });

  it('redact() replaces longer secrets first', () => {
    expect(redact('abc abcdef', ['abc', 'abcdef'])).toBe('[redacted] [redacted]');
    expect(redact('nothing', ['', 'zz'])).toBe('nothing');
  });

  it('isSensitiveKey', () => {
    for (const k of ['password', 'PASSWORD', 'db_password', 'secret', 'clientSecret', 'token', 'accessKey', 'key', 'apiKey', 'private_key', 'auth', 'Authorization', 'passphrase']) {
      expect(isSensitiveKey(k), k).toBe(true);
    }
    for (const k of ['path', 'keyId', 'keyFile', 'snapshot', 'name', 'monkeys']) expect(isSensitiveKey(k), k).toBe(false);
  });

  it('handles circular data and odd values without throwing', () => {
    const mem = memorySink();
    const a: Record<string, unknown> = { big: 10n, buf: Buffer.alloc(3), when: new Date(0), fn: () => 1 };
    a.self = a;
    createLogger({ sink: mem.sink }).info('odd', a);
    expect(mem.events[0]!.data).toEqual({ big: '10', buf: '<3 bytes>', when: '1970-01-01T00:00:00.000Z', fn: undefined, self: '[circular]' });
  });

  it('a throwing sink does not break the caller', () => {
    const log = createLogger({ sink: () => { throw new Error('EPIPE'); } });
    expect(() => log.error('x')).not.toThrow();
  });

  it('json sink writes {"message_type":"log"} lines', () => {
    const lines: string[] = [];
    const log = createLogger({ sink: jsonSink((l) => lines.push(l)), scope: 'cli' });
    log.warn('hi', { token: 'x', n: 2 });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    const msg = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(msg).toMatchObject({ message_type: 'log', level: 'warn', scope: 'cli', message: 'hi', data: { token: '[redacted]', n: 2 } });
    expect(typeof msg.time).toBe('string');
  });

  it('human sink writes one line per event, newlines flattened', () => {
    let out = '';
    createLogger({ sink: humanSink({ write: (s: string) => (out += s) }) }).info('a\nb');
    expect(out).toBe('info: a b\n');
    expect(formatHuman({ time: 0, level: 'info', scope: '', message: 'm', data: { s: '' } })).toBe('info: m s=""');
  });

  it('childLogger wraps loggers without child()', () => {
    const got: string[] = [];
    const plain: Logger = { debug: (m) => got.push(m), info: (m) => got.push(m), warn: (m) => got.push(m), error: (m) => got.push(m) };
    childLogger(plain, 'p').info('x');
    expect(got).toEqual(['[p] x']);
  });

  it('parseLogLevel', () => {
    expect(parseLogLevel(' WARNING ')).toBe('warn');
    expect(parseLogLevel('debug')).toBe('debug');
    expect(() => parseLogLevel('chatty')).toThrow(/unknown log level "chatty"/);
  });
});
