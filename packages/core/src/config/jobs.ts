import { parseReadDataSubset } from '../repository/check-data.js';
import { PolicyError } from '../retention/errors.js';
import { POLICY_INPUT_KEYS, parsePolicy, type RetentionPolicyInput } from '../retention/policy.js';
import { parseGroupBy } from '../retention/select.js';

/**
 * The config file's `jobs`: what `kiwi daemon` runs on a schedule. Validated with the rest of the
 * config (every issue names the job and the key); the daemon parses the cron expressions themselves.
 *
 * ```jsonc
 * "jobs": {
 *   "home": {
 *     "paths": ["/home"], "repository": "s3:my-bucket/kiwi", "schedule": "0 2 * * *",
 *     "timezone": "Europe/Paris", "tags": ["nightly"], "exclude": ["*.tmp"], "catchUp": true,
 *     "forget": { "keepDaily": 7, "keepWeekly": 4 },
 *     "prune": { "schedule": "0 3 * * 0" },
 *     "check": { "schedule": "0 4 * * *", "readDataSubset": "1/30" }
 *   }
 * }
 * ```
 */
export interface JobConfig {
  /** What to back up (absolute after loading). */
  paths: string[];
  /** The repository (default: the config's `repository`, else the default repository). */
  repository?: string;
  /** The repository's password file (default: as for every command). */
  passwordFile?: string;
  /** Cron expression: 5 fields (minute…), or 6 with seconds first. */
  schedule: string;
  /** IANA time zone of the schedule (default: the machine's). */
  timezone?: string;
  tags?: string[];
  exclude?: string[];
  excludeFile?: string[];
  oneFileSystem?: boolean;
  /** Host name recorded in the snapshots (default: this machine's). */
  host?: string;
  /** Run once at start when a scheduled run was missed while the daemon was down. */
  catchUp?: boolean;
  /** Retention policy applied after each backup of the job (`kiwi forget`'s rules). */
  forget?: RetentionPolicyConfig;
  /** Prune the repository on its own schedule. */
  prune?: { schedule: string };
  /** Check the repository on its own schedule. */
  check?: JobCheckConfig;
}

export interface JobCheckConfig {
  schedule: string;
  /** Also read and verify all data (`kiwi check --read-data`). */
  readData?: boolean;
  /** Read and verify a part of the data each time: `n/m`, `x%` or a size (`500M`). */
  readDataSubset?: string;
}

/** A retention policy as the config writes it (restic's rules; see `kiwi forget`). */
export interface RetentionPolicyConfig {
  /** Counts: a whole number, `-1` or `"unlimited"` for no limit. */
  keepLast?: number | string;
  keepHourly?: number | string;
  keepDaily?: number | string;
  keepWeekly?: number | string;
  keepMonthly?: number | string;
  keepYearly?: number | string;
  keepWithin?: string;
  keepWithinHourly?: string;
  keepWithinDaily?: string;
  keepWithinWeekly?: string;
  keepWithinMonthly?: string;
  keepWithinYearly?: string;
  /** Keep snapshots with all tags of one of these lists (`"a,b"`: both a and b). */
  keepTag?: string | string[];
  /** How snapshots are grouped before the rules apply (default `host,paths`). */
  groupBy?: string | string[];
}

const JOB_KEYS = [
  'paths', 'repository', 'passwordFile', 'schedule', 'timezone', 'tags', 'exclude', 'excludeFile',
  'oneFileSystem', 'host', 'catchUp', 'forget', 'prune', 'check',
] as const;
const FORGET_KEYS = [...POLICY_INPUT_KEYS, 'groupBy'];
const CHECK_KEYS = ['schedule', 'readData', 'readDataSubset'] as const;

/** A job name is also a file name and a URL segment. */
export const JOB_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CRON_NICKNAMES = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];

/** True when `tz` is a time zone this Node knows (IANA name). */
export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Why `subset` is not a valid `readDataSubset` (`n/m`, `x%`, a size), or undefined when it is (as `kiwi check --read-data-subset` reads it). */
export function readDataSubsetProblem(subset: string): string | undefined {
  try {
    parseReadDataSubset(subset);
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^--read-data-subset [^:]*: /, '');
  }
}

/** What {@link validateJobs} needs from the config validator (its helpers add issues with positions). */
export interface JobChecks {
  add(key: string, message: string): void;
  str(v: unknown, key: string): boolean;
  strArray(v: unknown, key: string): void;
  obj(v: unknown, key: string): v is Record<string, unknown>;
  checkKeys(obj: Record<string, unknown>, parent: string, allowed: readonly string[]): void;
  typeName(v: unknown): string;
}

function checkSchedule(c: JobChecks, v: unknown, key: string): void {
  if (!c.str(v, key)) return;
  const expr = (v as string).trim();
  if (expr.startsWith('@')) {
    if (!CRON_NICKNAMES.includes(expr.toLowerCase())) c.add(key, `${key}: unknown schedule "${expr}" (use a cron expression or one of ${CRON_NICKNAMES.join(', ')})`);
    return;
  }
  const fields = expr.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    c.add(key, `${key}: "${expr}" has ${fields} field${fields === 1 ? '' : 's'}; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`);
  }
}

/** Validate `jobs` (issues go through `c.add`). */
export function validateJobs(value: unknown, c: JobChecks): void {
  if (!c.obj(value, 'jobs')) return;
  for (const [name, job] of Object.entries(value)) {
    const key = `jobs.${name}`;
    if (!JOB_NAME_RE.test(name)) {
      c.add(key, `${key}: the job name "${name}" must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
    }
    if (!c.obj(job, key)) continue;
    c.checkKeys(job, key, JOB_KEYS);
    if (job.paths === undefined) c.add(`${key}.paths`, `${key}.paths is missing: name the files and folders the job backs up`);
    else {
      c.strArray(job.paths, `${key}.paths`);
      if (Array.isArray(job.paths) && job.paths.length === 0) c.add(`${key}.paths`, `${key}.paths is empty: name the files and folders the job backs up`);
    }
    if (job.schedule === undefined) c.add(`${key}.schedule`, `${key}.schedule is missing (a cron expression such as "0 2 * * *")`);
    else checkSchedule(c, job.schedule, `${key}.schedule`);
    for (const k of ['repository', 'passwordFile', 'host'] as const) if (job[k] !== undefined) c.str(job[k], `${key}.${k}`);
    for (const k of ['tags', 'exclude', 'excludeFile'] as const) if (job[k] !== undefined) c.strArray(job[k], `${key}.${k}`);
    for (const k of ['oneFileSystem', 'catchUp'] as const) {
      if (job[k] !== undefined && typeof job[k] !== 'boolean') c.add(`${key}.${k}`, `${key}.${k} must be a boolean, not ${c.typeName(job[k])}`);
    }
    if (job.timezone !== undefined && c.str(job.timezone, `${key}.timezone`) && !isValidTimeZone(job.timezone as string)) {
      c.add(`${key}.timezone`, `${key}.timezone: unknown time zone "${job.timezone as string}" (use an IANA name such as "Europe/Berlin" or "UTC")`);
    }
    if (job.forget !== undefined) validateForget(c, job.forget, `${key}.forget`);
    if (job.prune !== undefined && c.obj(job.prune, `${key}.prune`)) {
      c.checkKeys(job.prune, `${key}.prune`, ['schedule']);
      if (job.prune.schedule === undefined) c.add(`${key}.prune.schedule`, `${key}.prune.schedule is missing (a cron expression such as "0 3 * * 0")`);
      else checkSchedule(c, job.prune.schedule, `${key}.prune.schedule`);
    }
    if (job.check !== undefined && c.obj(job.check, `${key}.check`)) {
      const ck = job.check;
      c.checkKeys(ck, `${key}.check`, CHECK_KEYS);
      if (ck.schedule === undefined) c.add(`${key}.check.schedule`, `${key}.check.schedule is missing (a cron expression such as "0 4 * * *")`);
      else checkSchedule(c, ck.schedule, `${key}.check.schedule`);
      if (ck.readData !== undefined && typeof ck.readData !== 'boolean') c.add(`${key}.check.readData`, `${key}.check.readData must be a boolean, not ${c.typeName(ck.readData)}`);
      if (ck.readDataSubset !== undefined && c.str(ck.readDataSubset, `${key}.check.readDataSubset`)) {
        const problem = readDataSubsetProblem((ck.readDataSubset as string).trim());
        if (problem) c.add(`${key}.check.readDataSubset`, `${key}.check.readDataSubset: "${ck.readDataSubset as string}" is not valid: ${problem}`);
      }
      if (ck.readData === true && ck.readDataSubset !== undefined) c.add(`${key}.check`, `${key}.check: give "readData" or "readDataSubset", not both`);
    }
  }
}

function validateForget(c: JobChecks, v: unknown, key: string): void {
  if (!c.obj(v, key)) return;
  c.checkKeys(v, key, FORGET_KEYS);
  // The same rules and messages as the config's own "forget" (kiwi forget), one rule at a time.
  let rules = 0;
  for (const k of POLICY_INPUT_KEYS) {
    if (v[k] === undefined) continue;
    rules++;
    try {
      parsePolicy({ [k]: v[k] } as RetentionPolicyInput, (r) => `${key}.${r.key}`);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      c.add(`${key}.${k}`, err.message);
    }
  }
  if (v.groupBy !== undefined) {
    const g = v.groupBy;
    if (typeof g !== 'string' && !(Array.isArray(g) && g.every((x) => typeof x === 'string'))) {
      c.add(`${key}.groupBy`, `${key}.groupBy must be a string such as "host,paths" or an array of host, paths, tags; not ${c.typeName(g)}`);
    } else {
      try {
        parseGroupBy(Array.isArray(g) ? g.join(',') : g, `${key}.groupBy`);
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        c.add(`${key}.groupBy`, err.message);
      }
    }
  }
  if (rules === 0) c.add(key, `${key} has no rule, so it would remove every snapshot: give at least one of ${POLICY_INPUT_KEYS.join(', ')}`);
}
