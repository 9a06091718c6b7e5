import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KIWI_BIN, sleep } from './helpers.js';

/** The environment without the developer's KIWI_* settings. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('KIWI_')) delete env[k];
  return env;
}

export interface DaemonProcess {
  child: ChildProcess;
  /** The API's base URL, e.g. `http://127.0.0.1:41234/` (from the daemon_started line). */
  url: string;
  token: string;
  stdout(): string;
  stderr(): string;
  /** The JSON lines printed so far. */
  lines(): Array<Record<string, unknown> & { message_type: string }>;
  /** Wait for a JSON line matching `pred` (polling the output). */
  waitForLine(pred: (l: Record<string, unknown> & { message_type: string }) => boolean, timeoutMs?: number): Promise<Record<string, unknown> & { message_type: string }>;
  /** GET/POST with the token. */
  api(path: string, init?: RequestInit & { token?: string | null }): Promise<{ status: number; body: any; text: string }>;
  /** Resolves with the exit code and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (to the process group) and wait. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Start `kiwi daemon --json --listen 127.0.0.1:0` in its own process group (as a service manager does),
 * and wait until it says it runs. Rejects with its output if it exits first.
 */
export async function startDaemon(args: string[], env: NodeJS.ProcessEnv, dataDir: string, timeoutMs = 60_000): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [KIWI_BIN, 'daemon', '--json', '--listen', '127.0.0.1:0', ...args], {
    env: { ...cleanEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.trim().startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown> & { message_type: string });
  const waitForLine: DaemonProcess['waitForLine'] = async (pred, ms = 60_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = lines().find(pred);
      if (hit) return hit;
      if (done) throw new Error(`the daemon exited before the expected line\nstdout:\n${out}\nstderr:\n${err}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for a line\nstdout:\n${out}\nstderr:\n${err}`);
      await sleep(25);
    }
  };
  const started = await waitForLine((l) => l.message_type === 'daemon_started', timeoutMs);
  const url = String(started.url);
  const tokenFile = join(dataDir, 'daemon.token');
  const token = existsSync(tokenFile) ? (await readFile(tokenFile, 'utf8')).trim() : '';
  const api: DaemonProcess['api'] = async (path, init = {}) => {
    const { token: t, ...rest } = init;
    const headers = new Headers(rest.headers);
    const useToken = t === undefined ? token : t;
    if (useToken !== null) headers.set('Authorization', `Bearer ${useToken}`);
    const res = await fetch(new URL(path, url), { ...rest, headers });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body, text };
  };
  return {
    child,
    url,
    token,
    stdout: () => out,
    stderr: () => err,
    lines,
    waitForLine,
    api,
    exited,
    async stop() {
      if (!done) {
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          // gone
        }
      }
      return exited;
    },
  };
}

/** Kill a daemon's whole process group for good (test clean-up). */
export function killDaemon(d: DaemonProcess | undefined): void {
  if (!d?.child.pid) return;
  try {
    process.kill(-d.child.pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Poll `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
