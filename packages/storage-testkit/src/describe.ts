import { describe, it } from 'vitest';
import type { Storage } from '@kiwi-backup/core';
import { conformanceChecks, defaultConformanceOptions, type ConformanceOptions } from './checks.js';

/** How the conformance suite gets storages to test. */
export interface ConformanceSetup {
  /**
   * Open a storage on a fresh, empty location (a new temp dir, bucket prefix,
   * remote directory...). Called once per check; the check calls `create()`.
   */
  open(): Promise<Storage>;
  /** Remove what `open` made. Called after each check, once the storage is closed. */
  cleanup?(storage: Storage): Promise<void>;
  /**
   * Optional: write `data` at `path` straight into the storage's backing store (the directory,
   * bucket prefix, remote directory…), past the adapter's own checks — as a user or another tool
   * could. `path` is relative to the repository, `/`-separated, in the layout of `handlePath`
   * (`data/00/<name>`, `index/a b`); create missing directories. The checks of what `list` must
   * skip (a pack outside its `data/xx` directory, a name that is not valid for its type) use it;
   * without it they pass without checking. Adapters with a layout of their own may leave it out.
   */
  writeRaw?(storage: Storage, path: string, data: Uint8Array): Promise<void>;
  options?: Partial<ConformanceOptions> & {
    /** Per-check timeout in ms (default 120 000). */
    timeoutMs?: number;
  };
}

/**
 * Register the storage conformance suite as a vitest `describe` block named
 * after `name`, with one test per check in {@link conformanceChecks}. Call it at
 * the top level of a test file:
 *
 * ```ts
 * import { describeStorageConformance } from '@kiwi-backup/storage-testkit';
 * describeStorageConformance('my adapter', { open: async () => createMyStorage(freshLocation()) });
 * ```
 */
export function describeStorageConformance(name: string, setup: ConformanceSetup): void {
  const { timeoutMs = 120_000, ...sizes } = setup.options ?? {};
  const options: ConformanceOptions = { ...defaultConformanceOptions, ...sizes };
  describe(`storage conformance: ${name}`, () => {
    for (const check of conformanceChecks) {
      it(
        check.name,
        async () => {
          await runConformanceCheck(setup, check, options);
        },
        timeoutMs,
      );
    }
  });
}

/** Open a storage with `setup`, run one check on it, then close and clean up. */
export async function runConformanceCheck(
  setup: Pick<ConformanceSetup, 'open' | 'cleanup' | 'writeRaw'>,
  check: (typeof conformanceChecks)[number],
  options: ConformanceOptions = defaultConformanceOptions,
): Promise<void> {
  const storage = await setup.open();
  const writeRaw = setup.writeRaw?.bind(setup);
  let passed = false;
  try {
    await check.run(storage, options, writeRaw && ((path, data) => writeRaw(storage, path, data)));
    passed = true;
  } finally {
    try {
      if (!check.closesStorage) await storage.close();
      await setup.cleanup?.(storage);
    } catch (err) {
      // A failed check's own error matters more than a failed cleanup.
      if (passed) throw err;
    }
  }
}
