export {
  restoreSnapshot,
  RestoreFileError,
  RestoreTargetError,
  MAX_LISTED as RESTORE_MAX_LISTED,
  safeName,
  nsToUtimeSeconds,
  type RestoreOptions,
  type RestoreResult,
  type RestoreProgress,
} from './restore.js';
export { exactTimesAvailable, exactTimesUnavailableReason } from './times.js';
export { OVERWRITE_POLICIES, type OverwritePolicy } from './existing.js';
export type { UnmatchedPattern } from './select.js';
export { xattrsAvailable, xattrsUnavailableReason } from '../xattr/xattrs.js';
export { PathPatterns, PatternError, assertPattern, patternProblem } from '../walker/patterns.js';
