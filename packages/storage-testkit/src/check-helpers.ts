/** The types and small assertion helpers the conformance checks share. */
import { AssertionError } from 'node:assert';
import type { FileInfo, FileType, Handle, Storage } from '@kiwi-backup/core';
import { sha256Hex } from './bytes.js';

/** Sizes the checks use; see {@link describeStorageConformance}. */
export interface ConformanceOptions {
  /** Size of the big file in the round-trip and atomic-save checks (default 20 MiB). */
  bigFileSize: number;
  /** Number of files in the listing/pagination check (default 1100: more than one S3 page). */
  manyFiles: number;
  /** How many saves the many-files check runs at once (default 16). */
  saveConcurrency: number;
  /**
   * The adapter refuses a whole load longer than its `maxLength` (default false: adapters may ignore
   * `LoadOptions.maxLength`, and the check then only asks that a load it does not refuse be whole).
   */
  honorsMaxLength: boolean;
}

export const defaultConformanceOptions: ConformanceOptions = {
  bigFileSize: 20 * 1024 * 1024,
  manyFiles: 1100,
  saveConcurrency: 16,
  honorsMaxLength: false,
};

/**
 * Writes `data` at `path` of the storage's backing store, past the adapter (see
 * {@link ConformanceSetup.writeRaw}): `path` is `/`-separated and relative to the repository,
 * in the layout of `handlePath` (`data/00/<name>`, `index/a b`).
 */
export type RawWrite = (path: string, data: Uint8Array) => Promise<void>;

/**
 * One conformance check. `run` gets a storage freshly opened on an empty
 * location and not yet `create()`d, and rejects (with an `AssertionError` or
 * the adapter's own error) when the adapter breaks the contract. `raw` is there
 * when the setup can write files past the adapter ({@link RawWrite}); checks
 * that need it pass without doing anything when it is not.
 */
export interface ConformanceCheck {
  readonly name: string;
  /** True if `run` closes the storage itself. */
  readonly closesStorage?: boolean;
  run(storage: Storage, options: ConformanceOptions, raw?: RawWrite): Promise<void>;
}

export function fail(message: string): never {
  throw new AssertionError({ message });
}

export function check(cond: unknown, message: string): asserts cond {
  if (!cond) fail(message);
}

/** Compare bytes; on a mismatch say where the first difference is. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (!(actual instanceof Uint8Array)) fail(`${what}: expected a Buffer/Uint8Array, got ${typeof actual}`);
  if (actual.byteLength !== expected.byteLength) {
    fail(`${what}: got ${actual.byteLength} bytes, expected ${expected.byteLength}`);
  }
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.equals(b)) return;
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  fail(`${what}: bytes differ first at offset ${i} (got ${a[i]}, expected ${b[i]})`);
}

export async function collect(storage: Storage, type: FileType): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  for await (const info of storage.list(type)) out.push(info);
  return out;
}

export function describeErr(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export async function expectNotFound(storage: Storage, what: string, fn: () => Promise<unknown>): Promise<void> {
  let result: unknown;
  try {
    result = await fn();
  } catch (err) {
    check(storage.isNotFound(err), `${what}: rejected, but isNotFound(err) is false for ${describeErr(err)}`);
    return;
  }
  fail(`${what}: expected a not-found rejection, but it resolved with ${describeValue(result)}`);
}

export async function expectReject(what: string, fn: () => Promise<unknown>): Promise<unknown> {
  let result: unknown;
  try {
    result = await fn();
  } catch (err) {
    return err;
  }
  return fail(`${what}: expected a rejection, but it resolved with ${describeValue(result)}`);
}

export function describeValue(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** A handle whose name is the SHA-256 of `data`, as Kiwi names its files. */
export function handleFor(type: FileType, data: Uint8Array): Handle {
  return { type, name: type === 'config' ? 'config' : sha256Hex(data) };
}

/** Run `fn` over `items` with at most `limit` running at once. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

export function assertListedOnce(listed: FileInfo[], expected: Map<string, number>, what: string): void {
  const seen = new Set<string>();
  for (const info of listed) {
    check(typeof info.name === 'string', `${what}: list yielded an entry without a name: ${describeValue(info)}`);
    check(!seen.has(info.name), `${what}: list yielded ${info.name} more than once`);
    seen.add(info.name);
    const size = expected.get(info.name);
    check(size !== undefined, `${what}: list yielded ${info.name}, which was never saved`);
    check(info.size === size, `${what}: list gave size ${info.size} for ${info.name}, expected ${size}`);
  }
  for (const name of expected.keys()) check(seen.has(name), `${what}: list did not yield ${name}`);
}
