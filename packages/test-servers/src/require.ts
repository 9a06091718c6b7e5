import { describe } from 'vitest';

/** True when running in CI (`CI=true`): a missing server then fails the run instead of skipping. */
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Thrown (under CI) when a test needs a server or binary that is not installed.
 */
export class MissingServerError extends Error {
  constructor(what: string, howToInstall: string) {
    super(`${what} is not available: ${howToInstall}`);
    this.name = 'MissingServerError';
  }
}

/**
 * Decide whether tests that need `what` can run. If `available` is false:
 * under CI=true it throws (the test file fails); otherwise it prints a loud
 * warning and returns false so the caller can skip.
 */
export function requireServer(what: string, available: boolean, howToInstall: string): boolean {
  if (available) return true;
  if (inCI) throw new MissingServerError(what, howToInstall);
  process.stderr.write(`\n!!! SKIPPING tests that need ${what}: not available. ${howToInstall}\n\n`);
  return false;
}

/**
 * `describe` that runs only when `available` (see {@link requireServer}): fails under CI when the server is missing.
 */
export function describeWithServer(what: string, available: boolean, howToInstall: string, fn: () => void): void {
  const ok = requireServer(what, available, howToInstall);
  (ok ? describe : describe.skip)(`[needs ${what}]`, fn);
}
