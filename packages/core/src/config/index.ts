export * from './config.js';
export { parseJsonc, JsonSyntaxError, type JsonPosition, type ParsedJson } from './jsonc.js';
export { closestMatch, levenshtein, normalizeName } from './suggest.js';
export {
  validateJobs,
  isValidTimeZone,
  readDataSubsetProblem,
  JOB_NAME_RE,
  type JobConfig,
  type JobCheckConfig,
  type RetentionPolicyConfig,
} from './jobs.js';
