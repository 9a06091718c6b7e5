import { resolve } from 'node:path';
import { ConfigError, type ConfigIssue, type JobConfig, type KiwiConfig } from '@kiwi-backup/core';
import { parseSchedule, type Schedule } from './schedule.js';

/** What a job does on a schedule: a backup (then retention), a prune, a check. */
export type TaskKind = 'backup' | 'prune' | 'check';

/** One scheduled task of a job. */
export interface JobTask {
  kind: TaskKind;
  schedule: Schedule;
}

/** A job as the daemon runs it. */
export interface DaemonJob {
  name: string;
  config: JobConfig;
  /** The repository URL (the job's, else the config's, else the default repository). */
  repository: string;
  /** True when neither the job nor the config names a repository. */
  isDefaultRepo: boolean;
  /** Jobs with the same key run one after another. */
  repositoryKey: string;
  tasks: JobTask[];
}

/**
 * The config's jobs with their schedules parsed. The config loader already checked the shape; this adds
 * what needs the cron library: an invalid expression or time zone is a {@link ConfigError} naming the job
 * and the key, like every other config error. A job without `repository` uses `fallback`: the repository
 * every command uses (`--repo`, `KIWI_REPOSITORY`, the config's, else the default one).
 */
export function buildJobs(config: KiwiConfig, configPath: string | undefined, fallback: { url: string; isDefault: boolean }): DaemonJob[] {
  const issues: ConfigIssue[] = [];
  const jobs: DaemonJob[] = [];
  for (const [name, job] of Object.entries(config.jobs ?? {})) {
    const tasks: JobTask[] = [];
    const add = (kind: TaskKind, expr: string | undefined, key: string) => {
      if (expr === undefined) return;
      try {
        tasks.push({ kind, schedule: parseSchedule(expr, job.timezone) });
      } catch (err) {
        const message = (err as Error).message;
        const bad = /time zone/.test(message) ? `jobs.${name}.timezone` : key;
        issues.push({ key: bad, message: `${bad}: ${message}` });
      }
    };
    add('backup', job.schedule, `jobs.${name}.schedule`);
    add('prune', job.prune?.schedule, `jobs.${name}.prune.schedule`);
    add('check', job.check?.schedule, `jobs.${name}.check.schedule`);
    const repository = job.repository ?? fallback.url;
    jobs.push({ name, config: job, repository, isDefaultRepo: job.repository === undefined && fallback.isDefault, repositoryKey: repositoryKey(repository), tasks });
  }
  if (issues.length) {
    const unique = issues.filter((i, n) => issues.findIndex((j) => j.message === i.message) === n);
    const file = configPath ?? 'the config';
    const message =
      unique.length === 1
        ? `config file ${file}: ${unique[0]!.message}`
        : `config file ${file} has ${unique.length} errors:\n${unique.map((i) => `  - ${i.message}`).join('\n')}`;
    throw new ConfigError(message, configPath, unique);
  }
  return jobs;
}

/** Two spellings of one repository (a trailing slash, `local:`) are one queue. */
export function repositoryKey(url: string): string {
  const local = url.startsWith('local:') ? url.slice('local:'.length) : /^[a-z][a-z0-9+.-]+:/i.test(url) ? undefined : url;
  if (local !== undefined) return `local:${resolve(local)}`;
  return url.replace(/\/+$/, '');
}
