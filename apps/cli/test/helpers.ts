import { spawn } from 'node:child_process';
import { mkdtemp, rm, lstat, readdir, readFile, readlink, mkdir, writeFile, symlink, utimes, chmod } from 'node:fs/promises';
import { closeSync, existsSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { comparableMtime } from '@kiwi-backup/core/testing';

const here = dirname(fileURLToPath(import.meta.url));
export const KIWI_BIN = join(here, '..', 'dist', 'bin.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called with the child once spawned (to send signals). */
  onSpawn?: (child: import('node:child_process').ChildProcess) => void;
  timeoutMs?: number;
  /** Run as this user (uses setpriv; tests run as root in CI). */
  asUser?: { uid: number; gid: number };
}

/** Run the built `kiwi` CLI. */
export function runKiwi(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!existsSync(KIWI_BIN)) throw new Error(`${KIWI_BIN} is missing: run \`pnpm build\` first`);
  const env = { ...cleanEnv(), ...opts.env };
  const [cmd, argv] = opts.asUser
    ? ['setpriv', [`--reuid=${opts.asUser.uid}`, `--regid=${opts.asUser.gid}`, '--clear-groups', process.execPath, KIWI_BIN, ...args]]
    : [process.execPath, [KIWI_BIN, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv as string[], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    opts.onSpawn?.(child);
  });
}

/** A cache directory for the test process (tests that care set KIWI_CACHE_DIR themselves). */
const TEST_CACHE_DIR = join(tmpdir(), `kiwi-test-cache-${process.pid}`);

/** The environment without anything Kiwi reads, so the developer's own settings never leak into tests. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('KIWI_')) delete env[k];
  // Never the developer's own ~/.cache/kiwi.
  env.KIWI_CACHE_DIR = TEST_CACHE_DIR;
  return env;
}

export async function tempDir(prefix = 'kiwi-cli-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Parse `--json` output: every stdout line must be a JSON object with a message_type. */
export function jsonLines(stdout: string): Array<Record<string, unknown> & { message_type: string }> {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const v = JSON.parse(l) as Record<string, unknown> & { message_type: string };
      expect(typeof v.message_type).toBe('string');
      return v;
    });
}

/** Parse `kiwi snapshots --json`: one JSON array of snapshots (restic's shape: id, short_id, time, hostname, paths, tags, …). */
export function snapshotList(stdout: string): Array<Record<string, unknown> & { id: string; tags: string[]; paths: string[] }> {
  const value = JSON.parse(stdout) as unknown;
  expect(Array.isArray(value), `snapshots --json prints one array, got: ${stdout.slice(0, 200)}`).toBe(true);
  return value as Array<Record<string, unknown> & { id: string; tags: string[]; paths: string[] }>;
}

/** A deterministic pseudo-random buffer. */
export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A small tree with the interesting cases: nested dirs, empty file and dir, symlinks, modes, odd names. */
export async function makeSampleTree(root: string): Promise<void> {
  await mkdir(join(root, 'docs', 'deep', 'er'), { recursive: true });
  await mkdir(join(root, 'empty-dir'), { recursive: true });
  await writeFile(join(root, 'docs', 'a.txt'), 'hello kiwi\n');
  await writeFile(join(root, 'docs', 'deep', 'b.bin'), bytes(300_000, 1));
  await writeFile(join(root, 'docs', 'deep', 'er', 'big.bin'), bytes(3 * 1024 * 1024 + 17, 2));
  await writeFile(join(root, 'empty.txt'), '');
  await writeFile(join(root, 'script.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(root, 'script.sh'), 0o755);
  await writeFile(join(root, 'private.txt'), 'secret-ish');
  await chmod(join(root, 'private.txt'), 0o600);
  await symlink('docs/a.txt', join(root, 'link-to-a'));
  await symlink('/nonexistent/target', join(root, 'broken-link'));
  await writeFile(join(root, 'spaces and ünïcödé.txt'), 'names');
  await writeFile(Buffer.from([...Buffer.from(root + '/'), 0x6e, 0x6f, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]), 'non-utf8 name');
  await utimes(join(root, 'docs', 'a.txt'), new Date('2020-02-02T02:02:02.123Z'), new Date('2021-03-03T03:03:03.456Z'));
}

export interface EntryInfo {
  type: string;
  mode: number;
  /** Nanoseconds; truncated to whole µs only outside CI when the native-fs addon is missing (see `comparableMtime`). */
  mtimeNs: bigint;
  size: number;
  content?: string; // sha of bytes
  link?: string;
}

/** Everything a restore must reproduce, keyed by relative path (names as latin1 so raw bytes compare). */
export async function snapshotTree(root: string): Promise<Map<string, EntryInfo>> {
  const out = new Map<string, EntryInfo>();
  const { createHash } = await import('node:crypto');
  async function visit(dirBuf: Buffer, rel: string) {
    const names = (await readdir(dirBuf, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      const p = Buffer.concat([dirBuf, Buffer.from('/'), name]);
      const r = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1');
      const st = await lstat(p, { bigint: true });
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      const info: EntryInfo = { type, mode: Number(st.mode & 0o7777n), mtimeNs: comparableMtime(st.mtimeNs), size: type === 'file' ? Number(st.size) : 0 };
      if (type === 'file') info.content = createHash('sha256').update(await readFile(p)).digest('hex');
      if (type === 'symlink') {
        info.link = (await readlink(p, { encoding: 'buffer' })).toString('latin1');
        delete (info as Partial<EntryInfo>).mode; // symlink modes are not meaningful on Linux
      }
      out.set(r, info);
      if (type === 'dir') await visit(p, r);
    }
  }
  await visit(Buffer.from(root), '');
  return out;
}

/** Assert two trees are equal in contents, types, modes, mtimes (ns; symlinks too) and link targets. */
export async function expectSameTree(actualRoot: string, expectedRoot: string): Promise<void> {
  const actual = await snapshotTree(actualRoot);
  const expected = await snapshotTree(expectedRoot);
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [k, v] of expected) {
    expect(actual.get(k), k).toEqual(v);
  }
}

/** The part of the test TCP proxy `healAfter` uses (see `startTcpProxy` in @kiwi-backup/test-servers). */
export interface CuttingProxy {
  readonly cuts: number;
  setCutAfter(bytes: number | undefined): void;
}

/** Run `fn` while the proxy cuts connections; stop cutting once `cuts` connections were cut. */
export async function healAfter(proxy: CuttingProxy, cuts: number, fn: () => Promise<RunResult>): Promise<RunResult> {
  const healer = setInterval(() => {
    if (proxy.cuts >= cuts) proxy.setCutAfter(undefined);
  }, 5);
  try {
    return await fn();
  } finally {
    clearInterval(healer);
    proxy.setCutAfter(undefined);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Run kiwi with stdout into a file (binary-safe: `dump`); returns the exit code and stderr. */
export function kiwiToFile(args: string[], file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const fd = openSync(file, 'w');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KIWI_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', fd, 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      closeSync(fd);
      resolve({ code, stderr });
    });
  });
}
