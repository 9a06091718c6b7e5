import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, readDataSubsetProblem } from '../../src/index.js';

function issues(jobs: unknown): string[] {
  try {
    parseConfig(JSON.stringify({ jobs }, null, 2), '/etc/kiwi/config.json', '/home/u');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues.map((i) => i.message);
  }
  return [];
}

const ok = { paths: ['/srv'], schedule: '0 2 * * *' };

describe('config jobs', () => {
  it('accepts a full job and resolves its paths against the config folder', () => {
    const cfg = parseConfig(
      JSON.stringify({
        jobs: {
          home: {
            paths: ['data', '~/docs'],
            repository: 'repo',
            passwordFile: 'pw',
            schedule: '*/10 * * * * *',
            timezone: 'Europe/Berlin',
            tags: ['nightly'],
            exclude: ['*.tmp'],
            excludeFile: ['ignore.txt'],
            oneFileSystem: true,
            host: 'srv1',
            catchUp: true,
            forget: { keepDaily: 7, keepWeekly: 4, keepLast: -1, keepWithin: '1y2m', keepTag: ['keep'], groupBy: 'host,paths' },
            prune: { schedule: '0 3 * * 0' },
            check: { schedule: '@daily', readDataSubset: '1/30' },
          },
          s3: { paths: ['/x'], repository: 's3:bucket/p', schedule: '0 2 * * *', forget: { keepMonthly: 'unlimited', keepTag: 'a,b', groupBy: ['host', 'tags'] } },
        },
      }),
      '/etc/kiwi/config.json',
      '/home/u',
    );
    expect(cfg.jobs!.home).toMatchObject({
      paths: ['/etc/kiwi/data', '/home/u/docs'],
      repository: '/etc/kiwi/repo',
      passwordFile: '/etc/kiwi/pw',
      excludeFile: ['/etc/kiwi/ignore.txt'],
    });
    expect(cfg.jobs!.s3!.repository).toBe('s3:bucket/p');
  });

  it('names the job and the key of every problem', () => {
    const msgs = issues({
      nightly: { paths: ['/srv'], schedule: '0 2 * *', timezone: 'Mars/Olympus', shedule: 'x' },
      'bad name': ok,
      empty: { schedule: 5 },
      weekly: { ...ok, prune: {}, check: { schedule: '0 4 * * *', readDataSubset: '3/2' }, catchUp: 'yes' },
      policy: { ...ok, forget: { keepDayly: 7 } },
      counts: { ...ok, forget: { keepDaily: 1.5, keepWithin: '7 days', groupBy: 'host,color' } },
    });
    const text = msgs.join('\n');
    expect(text).toContain('jobs.nightly.schedule: "0 2 * *" has 4 fields');
    expect(text).toContain('jobs.nightly.timezone: unknown time zone "Mars/Olympus"');
    expect(text).toContain('unknown key "jobs.nightly.shedule" (did you mean "jobs.nightly.schedule"?)');
    expect(text).toContain('jobs.bad name: the job name "bad name" must be');
    expect(text).toContain('jobs.empty.paths is missing');
    expect(text).toContain('jobs.empty.schedule must be a string, not a number');
    expect(text).toContain('jobs.weekly.prune.schedule is missing');
    expect(text).toContain('jobs.weekly.check.readDataSubset: "3/2" is not valid');
    expect(text).toContain('jobs.weekly.catchUp must be a boolean, not a string');
    expect(text).toContain('unknown key "jobs.policy.forget.keepDayly" (did you mean "jobs.policy.forget.keepDaily"?)');
    expect(text).toContain('jobs.policy.forget has no rule');
    // The policy's rules read as kiwi forget reads them (core's retention engine), named by the job's key.
    expect(text).toContain('jobs.counts.forget.keepDaily 1.5 is not a count');
    expect(text).toContain('jobs.counts.forget.keepWithin "7 days": no unit after 7');
    expect(text).toContain('jobs.counts.forget.groupBy "host,color": unknown field "color"');
  });

  it('the error message gives the file and line of a job problem', () => {
    try {
      parseConfig('{\n  "jobs": {\n    "a": { "paths": ["/x"],\n "schedule": "0 2 * * *", "timezone": "Nowhere/City" }\n  }\n}', '/etc/kiwi/config.json');
      throw new Error('expected an error');
    } catch (e) {
      expect((e as Error).message).toMatch(/^config file \/etc\/kiwi\/config\.json: jobs\.a\.timezone: unknown time zone "Nowhere\/City".*\(line 4\)$/);
    }
  });

  it('readDataSubset forms', () => {
    for (const good of ['1/30', '30/30', '5%', '0.5%', '500M', '2GiB', '1024']) expect(readDataSubsetProblem(good), good).toBeUndefined();
    for (const bad of ['0/3', '4/3', '0%', '101%', 'half', '1/0', '']) expect(readDataSubsetProblem(bad), bad).toBeDefined();
  });

  it('jobs must be an object of objects', () => {
    expect(issues([1])).toEqual(['jobs must be an object, not an array']);
    expect(issues({ a: 'daily' })).toEqual(['jobs.a must be an object, not a string']);
  });
});
