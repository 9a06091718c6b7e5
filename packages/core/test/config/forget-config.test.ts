import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, parsePolicy } from '../../src/index.js';

function configError(text: string, file = '/etc/kiwi/config.json'): ConfigError {
  try {
    parseConfig(text, file, '/home/u');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config: forget policy and passwordCommand', () => {
  it('accepts a policy and keeps it as written (kiwi forget parses it)', () => {
    const cfg = parseConfig(
      '{"forget": {"keepDaily": 7, "keepWeekly": "4", "keepMonthly": "unlimited", "keepYearly": -1, "keepWithin": "2d", "keepWithinDaily": "1m", "keepTag": ["keep", "a,b"], "groupBy": "host,tags"}, "passwordCommand": "pass show kiwi"}',
      '/etc/kiwi/config.json',
    );
    expect(cfg.forget).toMatchObject({ keepDaily: 7, keepMonthly: 'unlimited', groupBy: 'host,tags' });
    expect(cfg.passwordCommand).toBe('pass show kiwi');
    const { groupBy: _, ...rules } = cfg.forget!;
    expect(parsePolicy(rules)).toMatchObject({ keepDaily: 7, keepWeekly: 4, keepMonthly: -1, keepYearly: -1, keepTags: [['keep'], ['a', 'b']] });
    expect(parseConfig('{"forget": {"keepLast": 1, "groupBy": ["host", "paths"]}}', '/x.json').forget!.groupBy).toEqual(['host', 'paths']);
  });

  it('every bad rule is named with its key and line', () => {
    const err = configError('{\n"forget": {\n  "keepDaily": -3,\n  "keepWithin": "7w",\n  "keepWeekly": "x",\n  "keepTag": [1],\n  "groupBy": "host,time"\n}}');
    expect(err.issues.map((i) => [i.key, i.line])).toEqual([
      ['forget.keepDaily', 3],
      ['forget.keepWithin', 4],
      ['forget.keepWeekly', 5],
      ['forget.keepTag', 6],
      ['forget.groupBy', 7],
    ]);
    expect(err.message).toContain('forget.keepDaily -3: negative counts are not allowed (only -1, which means unlimited) (line 3)');
    expect(err.message).toContain('forget.keepWithin "7w": unknown unit "w"; for weeks write 49d');
    expect(err.message).toContain('forget.keepWeekly "x" is not a count');
    expect(err.message).toContain('forget.keepTag[0] must be a string');
    expect(err.message).toContain('forget.groupBy "host,time": unknown field "time"');
    expect(err.message).toContain('/etc/kiwi/config.json has 5 errors');
  });

  it('a misspelt rule gets a suggestion; wrong types are named', () => {
    expect(configError('{"forget":{"keepDayly":7}}').message).toContain('unknown key "forget.keepDayly" (did you mean "forget.keepDaily"?)');
    expect(configError('{"forget":{"keepWithin":7}}').message).toContain('forget.keepWithin must be a duration string such as "7d" or "1y6m", not number');
    expect(configError('{"forget":{"keepLast":true}}').message).toContain('forget.keepLast must be a count');
    expect(configError('{"forget":{"keepLast":1.5}}').message).toContain('forget.keepLast 1.5 is not a count');
    expect(configError('{"forget":"daily"}').message).toContain('forget must be an object, not a string');
    expect(configError('{"forget":{"groupBy":3}}').message).toContain('forget.groupBy must be a string such as "host,paths"');
  });

  it('passwordCommand: a non-empty string, not together with passwordFile', () => {
    expect(configError('{"passwordCommand":""}').message).toContain('passwordCommand must not be empty');
    expect(configError('{"passwordCommand":["pass"]}').message).toContain('passwordCommand must be a string, not an array');
    expect(configError('{"passwordCommand":"pass","passwordFile":"/p"}').message).toContain('give either passwordFile or passwordCommand, not both');
  });
});
