import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rejectionOf } from '../plugins/helpers.js';
import { ConfigError, loadConfig, MAX_CONFIG_BYTES, parseConfig, parseJsonc, JsonSyntaxError, SECRET_ENV_VARS, withoutSecrets } from '../../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiwi-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function configError(text: string, file = '/etc/kiwi/config.json'): ConfigError {
  try {
    parseConfig(text, file, '/home/u');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns an empty config when the default file does not exist', async () => {
    const r = await loadConfig(undefined, { dataDir: dir });
    expect(r).toEqual({ config: {}, path: join(dir, 'config.json'), exists: false });
  });

  it('reads <dataDir>/config.json and resolves paths against its folder', async () => {
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        repository: 'repo',
        passwordFile: '~/pw',
        plugins: ['./p/one.mjs', 'mysql', { package: '@acme/x', options: { a: 1 } }, { path: 'two' }],
        storage: { myscheme: './storage.mjs', other: 'kiwi-storage-other' },
        storageOptions: { s3: { region: 'eu' } },
        pluginOptions: { mysql: { db: 'app' } },
        backup: { paths: ['docs', '/abs'], exclude: ['*.tmp'], excludeFile: ['ignore.txt'], oneFileSystem: true, tags: ['t'] },
      }),
    );
    const r = await loadConfig(undefined, { dataDir: dir, home: '/home/u' });
    expect(r.exists).toBe(true);
    expect(r.config).toEqual({
      repository: join(dir, 'repo'),
      passwordFile: '/home/u/pw',
      plugins: [join(dir, 'p/one.mjs'), 'mysql', { package: '@acme/x', options: { a: 1 } }, { path: join(dir, 'two') }],
      storage: { myscheme: join(dir, 'storage.mjs'), other: 'kiwi-storage-other' },
      storageOptions: { s3: { region: 'eu' } },
      pluginOptions: { mysql: { db: 'app' } },
      backup: { paths: [join(dir, 'docs'), '/abs'], exclude: ['*.tmp'], excludeFile: [join(dir, 'ignore.txt')], oneFileSystem: true, tags: ['t'] },
    });
  });

  it('keeps repository URLs with a scheme as they are', () => {
    expect(parseConfig('{"repository":"s3:bucket/prefix"}', '/x/c.json').repository).toBe('s3:bucket/prefix');
    expect(parseConfig('{"repository":"sftp:u@h:/p"}', '/x/c.json').repository).toBe('sftp:u@h:/p');
  });

  it('an explicit --config file that does not exist is an error naming it', async () => {
    const file = join(dir, 'nope.json');
    await expect(loadConfig(file, { dataDir: dir })).rejects.toThrow(`config file ${file} does not exist`);
  });

  it('a directory in place of the file is an error', async () => {
    await mkdir(join(dir, 'config.json'));
    await expect(loadConfig(undefined, { dataDir: dir })).rejects.toBeInstanceOf(ConfigError);
  });

  it('accepts comments and trailing commas', async () => {
    const file = join(dir, 'kiwi.jsonc');
    await writeFile(file, '// my config\n{\n  /* repo */ "repository": "/r", // here\n  "backup": { "tags": ["a", "b",], },\n}\n');
    const r = await loadConfig(file, { dataDir: dir });
    expect(r.config).toEqual({ repository: '/r', backup: { tags: ['a', 'b'] } });
    expect(r.path).toBe(file);
  });

  it('broken JSON names the file, line and column', async () => {
    const file = join(dir, 'config.json');
    await writeFile(file, '{\n  "repository": "/r"\n  "plugins": []\n}\n');
    const err = await rejectionOf<ConfigError>(loadConfig(undefined, { dataDir: dir }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/line 3, column 3/);
    expect(err.issues[0]).toMatchObject({ line: 3, column: 3 });
  });

  it('a special file is refused before it is read (/dev/zero once filled the memory); a pipe is read, up to a limit', async () => {
    for (const special of ['/dev/zero', '/dev/null']) {
      const err = await rejectionOf<ConfigError>(loadConfig(special, { dataDir: dir }));
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe(`config file ${special} is not a regular file (a character device); give the path of a JSON file`);
    }
    if (process.platform === 'win32') return;
    // `--config <(generate-config)`: a pipe holding a config works …
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const writer = spawn('sh', ['-c', `printf '{"repository":"/r"}' > ${fifo}`]);
    const written = new Promise((r) => writer.once('close', r));
    expect((await loadConfig(fifo, { dataDir: dir })).config).toEqual({ repository: '/r' });
    await written;
    // … one that never ends is cut off at the limit.
    const endless = spawn('sh', ['-c', `exec cat /dev/zero > ${fifo}`]);
    const err = await rejectionOf<ConfigError>(loadConfig(fifo, { dataDir: dir }));
    endless.kill();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`config file ${fifo} is too large (more than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB)`);
  });

  it('a config file larger than the limit is refused', async () => {
    const file = join(dir, 'huge.json');
    await writeFile(file, `{"repository":"/r"}${' '.repeat(MAX_CONFIG_BYTES)}`);
    await expect(loadConfig(file, { dataDir: dir })).rejects.toThrow(`config file ${file} is too large (${MAX_CONFIG_BYTES + 19} bytes; at most 4 MiB)`);
  });

  it('a syntax error says where and what kind of token, never its text (a password file given as --config)', async () => {
    const file = join(dir, 'password');
    await writeFile(file, 'pw-secret-123\n');
    const err = await rejectionOf<ConfigError>(loadConfig(file, { dataDir: dir }));
    expect(err.message).toBe(`config file ${file} is not valid JSON: unexpected token: an unquoted word (strings need double quotes) at line 1, column 1`);
    const cases: Array<[string, string]> = [
      ['{"storageOptions": {"s3": {"secretAccessKey": AKIAsecret/xyz+abc}}}', 'unexpected token: an unquoted word (strings need double quotes) at line 1, column 47'],
      ['{"repository": "/r" "s3cr3t"}', 'expected ",", found a string at line 1, column 21'],
      ['{"repository": 12secret}', 'unexpected token: an unquoted word (strings need double quotes) at line 1, column 18'],
      ['{"repository": @secret}', 'unexpected token: an unexpected character at line 1, column 16'],
      ['{"a": 1}}', 'found "}" after the end of the document at line 1, column 9'],
      ['{"a" true}', 'expected ":" after the property name, found true at line 1, column 6'],
      ['{"a": 1e}', 'invalid number at line 1, column 7'],
      ['{\n  "repository": "/r",\n', 'expected a double-quoted property name, found end of input at line 3, column 1'],
    ];
    for (const [text, message] of cases) {
      const e = configError(text);
      expect(e.message, text).toBe(`config file /etc/kiwi/config.json is not valid JSON: ${message}`);
      expect(e.message).not.toMatch(/secret|s3cr3t/i);
    }
  });

  it('an unterminated document reports the end position', () => {
    const err = configError('{\n  "repository": "/r",\n');
    expect(err.message).toMatch(/end of input at line 3, column 1/);
  });
});

describe('config validation', () => {
  it('an unknown top-level key names the key, the file and the closest valid key', () => {
    const err = configError('{\n  "pluigns": []\n}', '/etc/kiwi/config.json');
    expect(err.message).toBe('config file /etc/kiwi/config.json: unknown key "pluigns" (did you mean "plugins"?) (line 2)');
    expect(err.issues).toEqual([{ key: 'pluigns', message: 'unknown key "pluigns" (did you mean "plugins"?)', line: 2, column: 14 }]);
    expect(err.file).toBe('/etc/kiwi/config.json');
  });

  it('suggests nested keys with their path', () => {
    expect(configError('{"backup":{"excludes":["x"]}}').message).toContain('unknown key "backup.excludes" (did you mean "backup.exclude"?)');
    expect(configError('{"backup":{"one_file_system":true}}').message).toContain('did you mean "backup.oneFileSystem"?');
    expect(configError('{"plugins":[{"name":"x","option":{}}]}').message).toContain('unknown key "plugins[0].option" (did you mean "plugins[0].options"?)');
  });

  it('lists valid keys when nothing is close', () => {
    expect(configError('{"zzzzzzzz":1}').message).toContain('valid keys: $schema, repository, passwordFile, plugins, pluginOptions, storage, storageOptions, backup');
  });

  it('wrong types name the key path', () => {
    expect(configError('{"backup":{"exclude":["a","b",3]}}').message).toContain('backup.exclude[2] must be a string, not a number');
    expect(configError('{"repository":42}').message).toContain('repository must be a string, not a number');
    expect(configError('{"plugins":{}}').message).toContain('plugins must be an array, not an object');
    expect(configError('{"plugins":[1]}').message).toContain('plugins[0] must be a string or an object, not a number');
    expect(configError('{"plugins":[{"name":"x","enabled":"no"}]}').message).toContain('plugins[0].enabled must be a boolean, not a string');
    expect(configError('{"plugins":[{"path":"a","package":"b"}]}').message).toContain('either "path" or "package"');
    expect(configError('{"plugins":[{"options":{}}]}').message).toContain('plugins[0] needs "name"');
    expect(configError('{"plugins":[{"name":".."}]}').message).toContain('plugins[0].name must be a name, not ".."');
    expect(configError('{"plugins":[{"name":"."}]}').message).toContain('plugins[0].name must be a name, not "."');
    expect(configError('{"backup":{"oneFileSystem":"yes"}}').message).toContain('backup.oneFileSystem must be a boolean');
    // A size the backup itself would refuse (past 2^53 bytes) is the config's error, naming its key.
    expect(configError('{"backup":{"excludeLargerThan":"99999999999999999999P"}}').message).toContain('backup.excludeLargerThan must be a number of bytes or a size like "500M"');
    expect(configError('{"storage":{"S3!":"x"}}').message).toContain('not a valid URL scheme');
    expect(configError('{"storageOptions":{"x":[]}}').message).toContain('storageOptions.x must be an object, not an array');
    expect(configError('{"storage":{"x":{"module":"m"}}}').message).toContain('storage.x must be a module name or path (a string), not an object; put adapter options under "storageOptions"');
    expect(configError('{"pluginOptions":{"p":1}}').message).toContain('pluginOptions.p must be an object, not a number');
    expect(configError('{"storageOption":{}}').message).toContain('did you mean "storageOptions"?');
    expect(configError('[]').message).toContain('must be a JSON object');
    expect(configError('{"repository":""}').message).toContain('repository must not be empty');
  });

  it('reports every issue at once', () => {
    const err = configError('{\n"pluigns":[],\n"backup":{"tags":[1]}\n}');
    expect(err.issues.map((i) => i.key)).toEqual(['pluigns', 'backup.tags[0]']);
    expect(err.message).toMatch(/has 2 errors:\n {2}- unknown key "pluigns".*\(line 2\)\n {2}- backup.tags\[0\] must be a string.*\(line 3\)/);
  });

  it('rejects duplicate keys', () => {
    expect(configError('{"repository":"a",\n"repository":"b"}').message).toMatch(/duplicate key "repository" at line 2, column 1/);
  });

  it('does not let __proto__ in the file change prototypes', () => {
    const err = configError('{"__proto__": {"polluted": true}}');
    expect(err.message).toContain('unknown key "__proto__"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parseJsonc', () => {
  it('parses standard JSON exactly like JSON.parse', () => {
    const text = '{"a":[1,-2.5e3,true,false,null,"x\\n\\u00e9\\"y"],"b":{"c":{}},"d":[]}';
    expect(parseJsonc(text).value).toEqual(JSON.parse(text));
  });
  it('rejects what JSON rejects (outside comments and trailing commas)', () => {
    for (const bad of ["{'a':1}", '{a:1}', '[1 2]', '01', '"\t"', 'tru', '{"a":1}}', '/* open']) {
      expect(() => parseJsonc(bad), bad).toThrow(JsonSyntaxError);
    }
  });
  it('skips a BOM', () => {
    expect(parseJsonc('\ufeff{"a":1}').value).toEqual({ a: 1 });
  });
});

describe('secret environment variables', () => {
  it('lists every variable that holds a secret; withoutSecrets leaves them out of a copy', () => {
    expect([...SECRET_ENV_VARS].sort()).toEqual(
      ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'KIWI_FROM_PASSWORD', 'KIWI_PASSWORD', 'KIWI_PASSWORD_COMMAND', 'KIWI_SFTP_KEY_PASSPHRASE', 'KIWI_SFTP_PASSWORD'],
    );
    const env = Object.fromEntries([...SECRET_ENV_VARS.map((n) => [n, 'secret']), ['PATH', '/bin'], ['KIWI_PASSWORD_FILE', '/etc/kiwi/pw']]);
    expect(withoutSecrets(env)).toEqual({ PATH: '/bin', KIWI_PASSWORD_FILE: '/etc/kiwi/pw' });
    expect(withoutSecrets(env, ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'])).toEqual({
      PATH: '/bin', KIWI_PASSWORD_FILE: '/etc/kiwi/pw', AWS_ACCESS_KEY_ID: 'secret', AWS_SECRET_ACCESS_KEY: 'secret',
    });
    expect(env.KIWI_PASSWORD).toBe('secret');
  });
});
