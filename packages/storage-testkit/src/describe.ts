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
  setup: Pick<ConformanceSetup, 'open' | 'cleanup'>,
  check: (typeof conformanceChecks)[number],
  options: ConformanceOptions = defaultConformanceOptions,
): Promise<void> {
  const storage = await setup.open();
  let passed = false;
  try {
    await check.run(storage, options);
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
