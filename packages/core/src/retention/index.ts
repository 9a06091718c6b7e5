export { PolicyError } from './errors.js';
export {
  UNLIMITED,
  MAX_RETENTION_NUMBER,
  parseRetentionDuration,
  parseRetentionCount,
  formatRetentionDuration,
  isZeroDuration,
  type RetentionDuration,
} from './duration.js';
export { bucketOf, isoWeek, subtractDuration, formatLocalTime, formatUtcOffset, type BucketKind } from './calendar.js';
export {
  RULES as RETENTION_RULES,
  POLICY_FLAGS,
  POLICY_INPUT_KEYS,
  parsePolicy,
  parseTagList,
  isEmptyPolicy,
  describePolicy,
  type RetentionPolicy,
  type RetentionPolicyInput,
  type RuleInfo as RetentionRuleInfo,
  type CountRuleKey,
  type WithinRuleKey,
} from './policy.js';
export {
  DEFAULT_GROUP_BY,
  parseGroupBy,
  filterSnapshots,
  groupSnapshots,
  hasAllTags,
  describeGroupKey,
  type GroupByField,
  type SnapshotGroupKey,
  type SnapshotGroup,
  type SnapshotItem,
  type SelectableSnapshot,
} from './select.js';
export {
  applyPolicy,
  planRetention,
  type RetentionItem,
  type KeepReason,
  type RetentionDecision,
  type PolicyResult,
  type ApplyPolicyOptions,
  type RetentionPlan,
  type RetentionPlanOptions,
} from './apply.js';
export { removeSnapshotFiles, type RemoveSnapshotsResult } from './remove.js';
