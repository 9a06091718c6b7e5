/**
 * `@kiwi-backup/storage-testkit`: the conformance suite every Kiwi storage
 * adapter must pass, for vitest. Adapter authors call
 * {@link describeStorageConformance} in a test file; the checks are also
 * exported as plain async functions ({@link conformanceChecks}).
 */
export { describeStorageConformance, runConformanceCheck, type ConformanceSetup } from './describe.js';
export {
  conformanceChecks,
  conformanceCheck,
  defaultConformanceOptions,
  assertSameBytes,
  type ConformanceCheck,
  type ConformanceOptions,
  type RawWrite,
} from './checks.js';
export { deterministicBytes, sha256Hex } from './bytes.js';
export {
  createFaultyStorage,
  type FaultyStorage,
  type FaultPlan,
  type FaultStep,
  type FaultEntry,
  type FaultKind,
  type FaultCall,
  type FaultOperation,
} from './faulty.js';
