/**
 * @kiwi-backup/plugin-notify — ping a monitoring URL when a backup starts, succeeds or fails
 * (healthchecks.io-style: `<url>/start`, `<url>`, `<url>/fail`), with the run's stats as JSON.
 *
 * A ping never fails or delays a backup: the start ping is sent in the background, each ping has a
 * timeout and a few retries, and any error is logged as a warning. Ping URLs usually hold a secret
 * (the check's id), so only their origin is ever logged.
 */
import { definePlugin, type BackupInfo, type HookContext, type Logger, type PluginDefinition } from '@kiwi-backup/core';

/** The plug-in's options (`{ "name": "notify", "options": { … } }` in the config). */
export interface NotifyOptions {
  /** Base URL: start → `<url>/start`, success → `<url>`, failure → `<url>/fail` (healthchecks.io's scheme). */
  url?: string;
  /** Explicit URLs per event (override `url`); `false` turns that ping off. */
  start?: string | false;
  success?: string | false;
  failure?: string | false;
  /** `POST` (default: the run as a JSON body) or `GET`. */
  method?: 'POST' | 'GET';
  /** Extra request headers (e.g. an API key). Never logged. */
  headers?: Record<string, string>;
  /** Per attempt: ms or `"10s"`. Default 10 s. */
  timeout?: number | string;
  /** Attempts after the first, for network errors, 5xx and 429. Default 2. */
  retries?: number;
  /** Pause before the first retry (doubling after). Default 1 s. */
  retryDelay?: number | string;
  /** How a partial backup (some files unreadable) is reported. Default `"failure"`. */
  partial?: 'success' | 'failure';
  /** Ping for dry runs too. Default false. */
  dryRun?: boolean;
}

interface Settings {
  start: URL | undefined;
  success: URL | undefined;
  failure: URL | undefined;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  partial: 'success' | 'failure';
  dryRun: boolean;
}

const NAME = 'notify';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `https://hc-ping.com/…`: where a ping goes, without the secret part. */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}/…`;
}

/** What a ping tells: the backup and how it ended. */
export function pingBody(backup: BackupInfo, event: 'start' | 'success' | 'failure', startedAt: number): Record<string, unknown> {
  return {
    event,
    status: backup.status,
    backupId: backup.id,
    host: backup.host,
    repository: backup.repository,
    sources: backup.sources,
    tags: backup.tags,
    dryRun: backup.dryRun,
    ...(event !== 'start'
      ? {
          durationMs: Date.now() - startedAt,
          ...(backup.snapshotId ? { snapshotId: backup.snapshotId } : {}),
          ...(backup.error ? { error: backup.error.message } : {}),
          stats: { ...backup.stats },
        }
      : {}),
  };
}

/**
 * Send one ping, retrying network errors, 5xx and 429 with a growing pause. Resolves with whether it
 * got through; never rejects.
 */
export async function ping(url: URL, body: Record<string, unknown>, s: Omit<Settings, 'start' | 'success' | 'failure' | 'partial' | 'dryRun'>, log: Logger): Promise<boolean> {
  const where = describeUrl(url);
  let delay = s.retryDelayMs;
  for (let attempt = 0; attempt <= s.retries; attempt++) {
    if (attempt > 0) {
      await sleep(delay);
      delay *= 2;
    }
    let why: string;
    let retry = true;
    try {
      const res = await fetch(url, {
        method: s.method,
        headers: { 'User-Agent': 'kiwi-backup-notify', ...(s.method === 'POST' ? { 'Content-Type': 'application/json' } : {}), ...s.headers },
        ...(s.method === 'POST' ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(s.timeoutMs),
        redirect: 'follow',
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        log.debug(`pinged ${where} (${body.event}): ${res.status}`);
        return true;
      }
      why = `HTTP ${res.status}`;
      retry = res.status >= 500 || res.status === 429;
    } catch (err) {
      const e = err as Error & { cause?: unknown };
      const cause = e.cause as { code?: string; message?: string } | undefined;
      why = e.name === 'TimeoutError' ? `no answer within ${s.timeoutMs} ms` : (cause?.code ?? cause?.message ?? e.message).split(url.href).join(where);
    }
    if (!retry || attempt === s.retries) {
      log.warn(`could not ping ${where} (${body.event}): ${why}${attempt ? ` after ${attempt + 1} attempts` : ''}; the backup is not affected`);
      return false;
    }
    log.debug(`ping ${where} (${body.event}) failed: ${why}; retrying`);
  }
  return false;
}

interface Pending {
  started: number;
  start: Promise<boolean> | undefined;
}

export default definePlugin((options: Record<string, unknown>): PluginDefinition => {
  const settings = parseOptions(options);
  const runs = new WeakMap<object, Pending>();

  const send = (ctx: HookContext, event: 'start' | 'success' | 'failure', pending: Pending): Promise<boolean> => {
    const url = settings[event];
    if (!url) return Promise.resolve(true);
    return ping(url, pingBody(ctx.backup, event, pending.started), settings, ctx.log);
  };

  return {
    name: NAME,

    async onServerStart(ctx, next) {
      const where = [...new Set([settings.start, settings.success, settings.failure].filter((u): u is URL => u !== undefined).map(describeUrl))];
      ctx.log.info(`pings ${where.join(', ') || 'nothing (every ping is turned off)'} on ${['start', 'success', 'failure'].filter((e) => settings[e as 'start']).join(', ')}`);
      await next();
    },

    /** The start ping goes out in the background: a slow monitoring server never delays the backup. */
    async onBackupStart(ctx, next) {
      const pending: Pending = { started: Date.now(), start: undefined };
      runs.set(ctx.state, pending);
      if (!ctx.backup.dryRun || settings.dryRun) pending.start = send(ctx, 'start', pending);
      await next();
    },

    /** After every backup, also a failed or interrupted one: success or failure, after the start ping. */
    async onBackupStop(ctx, next) {
      try {
        const pending = runs.get(ctx.state) ?? { started: Date.now(), start: undefined };
        runs.delete(ctx.state);
        if (ctx.backup.dryRun && !settings.dryRun) {
          ctx.log.debug('dry run: no ping');
        } else {
          await pending.start;
          const status = ctx.backup.status;
          const ok = status === 'success' || (status === 'partial' && settings.partial === 'success');
          await send(ctx, ok ? 'success' : 'failure', pending);
        }
      } catch (err) {
        ctx.log.warn(`notify: ${(err as Error).message}; the backup is not affected`);
      }
      await next();
    },
  };
});

function parseOptions(o: Record<string, unknown>): Settings {
  const known = ['url', 'start', 'success', 'failure', 'method', 'headers', 'timeout', 'retries', 'retryDelay', 'partial', 'dryRun'];
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) throw new Error(`${NAME}: unknown option "${key}" (known: ${known.join(', ')})`);
  }
  const parseUrl = (value: unknown, key: string): URL => {
    if (typeof value !== 'string' || value.trim() === '') throw new Error(`${NAME}: option "${key}" must be an http(s) URL`);
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new Error(`${NAME}: option "${key}" is not a valid URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${NAME}: option "${key}" must be an http:// or https:// URL`);
    return url;
  };
  const base = o.url === undefined ? undefined : parseUrl(o.url, 'url');
  const derived = (suffix: string): URL | undefined => {
    if (!base) return undefined;
    const u = new URL(base.href);
    u.pathname = `${u.pathname.replace(/\/+$/, '')}${suffix}`;
    return u;
  };
  const event = (key: 'start' | 'success' | 'failure', suffix: string): URL | undefined => {
    const v = o[key];
    if (v === false) return undefined;
    if (v !== undefined) return parseUrl(v, key);
    return derived(suffix);
  };
  const settings: Settings = {
    start: event('start', '/start'),
    success: event('success', ''),
    failure: event('failure', '/fail'),
    method: 'POST',
    headers: {},
    timeoutMs: duration(o.timeout, 'timeout', 10_000),
    retries: 2,
    retryDelayMs: duration(o.retryDelay, 'retryDelay', 1_000),
    partial: 'failure',
    dryRun: false,
  };
  if (!base && o.start === undefined && o.success === undefined && o.failure === undefined) {
    throw new Error(`${NAME}: give "url" (healthchecks-style base URL), or "start", "success" and "failure" URLs`);
  }
  if (o.method !== undefined) {
    if (o.method !== 'POST' && o.method !== 'GET') throw new Error(`${NAME}: option "method" must be "POST" or "GET"`);
    settings.method = o.method;
  }
  if (o.headers !== undefined) {
    if (o.headers === null || typeof o.headers !== 'object' || Array.isArray(o.headers) || !Object.values(o.headers).every((v) => typeof v === 'string')) {
      throw new Error(`${NAME}: option "headers" must be an object of strings`);
    }
    settings.headers = { ...(o.headers as Record<string, string>) };
  }
  if (o.retries !== undefined) {
    if (typeof o.retries !== 'number' || !Number.isInteger(o.retries) || o.retries < 0 || o.retries > 10) throw new Error(`${NAME}: option "retries" must be a whole number from 0 to 10`);
    settings.retries = o.retries;
  }
  if (o.partial !== undefined) {
    if (o.partial !== 'success' && o.partial !== 'failure') throw new Error(`${NAME}: option "partial" must be "success" or "failure"`);
    settings.partial = o.partial;
  }
  if (o.dryRun !== undefined) {
    if (typeof o.dryRun !== 'boolean') throw new Error(`${NAME}: option "dryRun" must be true or false`);
    settings.dryRun = o.dryRun;
  }
  return settings;
}

function duration(value: unknown, key: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
  if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value);
    if (m && Number(m[1]) > 0) return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm'];
  }
  throw new Error(`${NAME}: option "${key}" must be a positive number of milliseconds or a duration like "10s"`);
}
