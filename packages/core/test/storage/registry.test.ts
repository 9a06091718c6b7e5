import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  StorageError,
  defineStorageAdapter,
  loadStorageAdapter,
  openStorage,
  parseRepositoryUrl,
  redactUrl,
  unwrapRetry,
  type Storage,
} from '../../src/index.js';
import { fakeStorage, transient } from './fake-storage.js';

describe('parseRepositoryUrl', () => {
  const o = { cwd: '/base/dir', home: '/home/kiwi' };
  it.each([
    ['/srv/backup', 'local', '/srv/backup'],
    ['relative/repo', 'local', '/base/dir/relative/repo'],
    ['./repo', 'local', '/base/dir/repo'],
    ['../up', 'local', '/base/up'],
    ['~/backups/repo', 'local', '/home/kiwi/backups/repo'],
    ['~', 'local', '/home/kiwi'],
    ['local:/srv/x', 'local', '/srv/x'],
    ['local:~/x', 'local', '/home/kiwi/x'],
    ['local:rel', 'local', '/base/dir/rel'],
    ['./name:with-colon', 'local', '/base/dir/name:with-colon'],
    ['s3:bucket/prefix', 's3', 'bucket/prefix'],
    ['s3:https://host:9000/bucket/prefix', 's3', 'https://host:9000/bucket/prefix'],
    ['sftp:user@host:/path/repo', 'sftp', 'user@host:/path/repo'],
    ['myscheme:anything here', 'myscheme', 'anything here'],
    ['my-store+v2.x:abc', 'my-store+v2.x', 'abc'],
    ['dirstore:/tmp/x', 'dirstore', '/tmp/x'],
  ])('%s → %s %s', (url, scheme, rest) => {
    expect(parseRepositoryUrl(url, o)).toEqual({ scheme, rest });
  });

  it('keeps a Windows drive path and one-letter prefixes as local paths', () => {
    expect(parseRepositoryUrl('C:\\Backups\\repo', o).scheme).toBe('local');
    expect(parseRepositoryUrl('c:/x', o).scheme).toBe('local');
  });

  it('defaults to the process cwd and home', () => {
    expect(parseRepositoryUrl('repo')).toEqual({ scheme: 'local', rest: resolve('repo') });
    expect(parseRepositoryUrl('~/r')).toEqual({ scheme: 'local', rest: join(homedir(), 'r') });
  });

  it('rejects an empty location', () => {
    expect(() => parseRepositoryUrl('')).toThrow(/empty/);
    expect(() => parseRepositoryUrl('local:')).toThrow(/no path/);
  });
});

describe('redactUrl', () => {
  it.each([
    ['s3:https://AKIAEXAMPLE:wJalrXUtnFEMI@minio.local:9000/bucket/p', 's3:https://AKIAEXAMPLE@minio.local:9000/bucket/p'],
    ['sftp:backup:hunter2@host:/srv/repo', 'sftp:backup@host:/srv/repo'],
    ['sftp:backup:p@ss:w0rd@host:/srv', 'sftp:backup@host:/srv'],
    ['sftp:u:pw@host:/srv/@home', 'sftp:u@host:/srv/@home'],
    ['https://u:p@h/x', 'https://u@h/x'],
    ['sftp:backup@host:/srv/repo', 'sftp:backup@host:/srv/repo'],
    ['/plain/path@2024', '/plain/path@2024'],
    ['local:/a/b:c@d', 'local:/a/b:c@d'],
    ['s3:bucket/prefix', 's3:bucket/prefix'],
    ['s3:https://h/b?secretKey=abc&region=eu', 's3:https://h/b?secretKey=***&region=eu'],
    ['x:h/?token=t1;password=p2', 'x:h/?token=***;password=***'],
  ])('%s → %s', (url, want) => {
    expect(redactUrl(url)).toBe(want);
  });

  it('never leaves the password in the output', () => {
    for (const url of ['s3:https://k:SECRETPW@h/b', 'sftp:u:SECRETPW@h:/x', 'dav:https://u:SECRETPW@h/p?x=1']) {
      expect(redactUrl(url)).not.toContain('SECRETPW');
    }
  });
});

function recordingAdapter(schemes: string[]) {
  const opened: Array<{ url: string; options: unknown; env: NodeJS.ProcessEnv }> = [];
  const fake = fakeStorage();
  const adapter = defineStorageAdapter({
    schemes,
    open(url, options, env) {
      opened.push({ url, options, env });
      return fake.storage;
    },
  });
  return { adapter, opened, fake };
}

describe('openStorage', () => {
  it('opens a bare path with the local adapter as local:<absolute path>, wrapped in retries', async () => {
    const { adapter, opened, fake } = recordingAdapter(['local']);
    const env = { HOME: '/h' };
    const storage = await openStorage('repo', {
      adapters: { local: adapter },
      options: { local: { fsync: false } },
      env,
      cwd: '/work/x',
    });
    expect(opened).toEqual([{ url: 'local:/work/x/repo', options: { fsync: false }, env }]);
    expect(unwrapRetry(storage)).toBe(fake.storage);
    fake.failures.create = [transient()];
    await storage.create();
    expect(fake.calls.create).toBe(2);
  });

  it('passes retry options and the onRetry shorthand to the retry layer', async () => {
    const { adapter, fake } = recordingAdapter(['xy']);
    const seen: string[] = [];
    const s = await openStorage('xy:z', {
      adapters: { xy: adapter },
      retry: { baseDelayMs: 1, maxAttempts: 2 },
      onRetry: (i) => seen.push(`${i.operation} ${i.attempt} ${i.error}`),
    });
    fake.failures.stat = [transient('reset 1'), transient('reset 2')];
    await expect(s.stat({ type: 'key', name: 'k' })).rejects.toThrow(/failed after 2 attempts: reset 2/);
    expect(seen).toEqual(['stat 1 reset 1 (ECONNRESET)']);
  });

  it('passes other URLs unchanged with empty options by default', async () => {
    const { adapter, opened } = recordingAdapter(['s3']);
    await openStorage('s3:https://h:9000/b/p', { adapters: { s3: adapter } });
    expect(opened[0]!.url).toBe('s3:https://h:9000/b/p');
    expect(opened[0]!.options).toEqual({});
    expect(opened[0]!.env).toBe(process.env);
  });

  it('an unknown scheme is a config error listing the known schemes, without secrets', async () => {
    const err = (await openStorage('webdav:https://u:TOPSECRET@h/x', {
      adapters: { local: recordingAdapter(['local']).adapter, s3: 'x', sftp: 'y' },
    }).catch((e: unknown) => e)) as StorageError;
    expect(err).toBeInstanceOf(StorageError);
    expect(err.kind).toBe('config');
    expect(err.message).toContain('"webdav:"');
    expect(err.message).toContain('known schemes: local:, s3:, sftp:');
    expect(err.message).toContain('storage: { webdav: "kiwi-storage-webdav" }');
    expect(err.message).not.toContain('TOPSECRET');
  });

  it('rejects an adapter registered under a scheme it does not serve', async () => {
    await expect(
      openStorage('foo:x', { adapters: { foo: recordingAdapter(['bar']).adapter } }),
    ).rejects.toThrow(/serves "bar:", not "foo:"/);
  });

  it('rejects a malformed adapter object', async () => {
    await expect(openStorage('foo:x', { adapters: { foo: { schemes: 'foo' } as never } })).rejects.toThrow(
      /the adapter for "foo:" is not a valid storage adapter: "schemes" must be .*"open" must be a function/,
    );
  });
});

describe('adapter modules', () => {
  let dir: string;
  const adapterSource = (scheme: string, exportLine: string) => `
const adapter = {
  schemes: [${JSON.stringify(scheme)}],
  open(url, options, env) {
    return { location: 'mod:' + url, opts: options, create: async () => {}, save: async () => {}, load: async () => Buffer.alloc(0),
      stat: async () => ({ name: 'x', size: 0 }), list: async function* () {}, remove: async () => {},
      isNotFound: () => false, close: async () => {} };
  },
};
${exportLine}
`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiwi-registry-'));
    const pkg = async (name: string, files: Record<string, string>) => {
      const p = join(dir, 'node_modules', name);
      await mkdir(p, { recursive: true });
      for (const [f, content] of Object.entries(files)) await writeFile(join(p, f), content);
    };
    // An ESM package with dual exports: the import condition must win.
    await pkg('kiwi-storage-esm', {
      'package.json': JSON.stringify({ name: 'kiwi-storage-esm', type: 'module', exports: { '.': { import: './esm.js', require: './cjs.cjs' } } }),
      'esm.js': adapterSource('esmx', 'export default adapter;'),
      'cjs.cjs': 'throw new Error("the CommonJS entry must not be used");',
    });
    await pkg('kiwi-storage-cjs', {
      'package.json': JSON.stringify({ name: 'kiwi-storage-cjs', main: 'lib.js' }),
      'lib.js': adapterSource('cjsx', 'module.exports = adapter;'),
    });
    await mkdir(join(dir, 'node_modules', '@acme'), { recursive: true });
    await pkg('@acme/kiwi-storage', {
      'package.json': JSON.stringify({ name: '@acme/kiwi-storage', type: 'module', exports: './index.js' }),
      'index.js': adapterSource('acme', 'export { adapter };'),
    });
    await writeFile(join(dir, 'named.mjs'), adapterSource('named', 'export { adapter };'));
    await writeFile(join(dir, 'none.mjs'), 'export const something = 1;');
    await writeFile(join(dir, 'bad-shape.mjs'), 'export default { schemes: ["Bad Scheme"], open: 42 };');
    await writeFile(join(dir, 'throws.mjs'), 'throw new Error("cannot start: missing native module");');
    // A project folder below, so packages resolve by walking up.
    await mkdir(join(dir, 'project', 'sub'), { recursive: true });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads an ESM package default export (import condition) found from a subfolder', async () => {
    const s = (await openStorage('esmx:thing', {
      adapters: { esmx: 'kiwi-storage-esm' },
      options: { esmx: { a: 1 } },
      cwd: join(dir, 'project', 'sub'),
    })) as Storage & { opts?: unknown };
    expect(s.location).toBe('mod:esmx:thing');
    expect((unwrapRetry(s) as Storage & { opts?: unknown }).opts).toEqual({ a: 1 });
  });

  it('loads a CommonJS package and a scoped package with a named export', async () => {
    expect((await loadStorageAdapter('kiwi-storage-cjs', dir)).schemes).toEqual(['cjsx']);
    expect((await loadStorageAdapter('@acme/kiwi-storage', dir)).schemes).toEqual(['acme']);
  });

  it('loads a file by relative or absolute path', async () => {
    expect((await loadStorageAdapter('./named.mjs', dir)).schemes).toEqual(['named']);
    expect((await loadStorageAdapter(join(dir, 'named.mjs'), '/')).schemes).toEqual(['named']);
  });

  it('names the module when it is missing, empty, malformed or throws', async () => {
    await expect(loadStorageAdapter('kiwi-storage-nope', dir)).rejects.toThrow(
      /storage adapter module kiwi-storage-nope not found from .*npm install kiwi-storage-nope/,
    );
    await expect(loadStorageAdapter('./missing.mjs', dir)).rejects.toThrow(/module \.\/missing\.mjs not found: .*missing\.mjs does not exist/);
    await expect(loadStorageAdapter('./none.mjs', dir)).rejects.toThrow(
      /module \.\/none\.mjs exports no adapter: .*found exports: something/,
    );
    await expect(loadStorageAdapter('./bad-shape.mjs', dir)).rejects.toThrow(
      /module \.\/bad-shape\.mjs is not a valid storage adapter: "schemes" must be .*"open" must be a function/,
    );
    await expect(loadStorageAdapter('./throws.mjs', dir)).rejects.toThrow(/module \.\/throws\.mjs failed to load: cannot start/);
    const err = await loadStorageAdapter('./none.mjs', dir).catch((e: unknown) => e);
    expect((err as StorageError).kind).toBe('config');
  });
});
