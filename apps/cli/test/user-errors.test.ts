/**
 * Every mistake a user can make on the command line ends with a clear message, a documented exit
 * code and no stack trace (issue 14, acceptance 5). The per-command rows are generated from the
 * command table, so a command added later is covered without editing this file.
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '@kiwi-backup/core';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { KIWI_BIN, removeDir, runKiwi, tempDir, jsonLines } from './helpers.js';

const STACK = /^\s+at .+[:(]/m;

interface Row {
  args: string[];
  code: number;
  stderr: RegExp;
}

interface CommandShape {
  name: string;
  positionals: Array<{ name: string; required: boolean }>;
}

async function commandShapes(): Promise<CommandShape[]> {
  const docs = (await import(pathToFileURL(join(dirname(KIWI_BIN), 'docs.js')).href)) as {
    describeCommands: () => Promise<CommandShape[]>;
  };
  return docs.describeCommands();
}

describe('user errors: a message and an exit code, never a stack trace', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let file: string;
  let ids: string[] = [];
  let ambiguous = '';

  beforeAll(async () => {
    work = await tempDir('kiwi-usererr-');
    const src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'a.txt'), 'a');
    file = join(work, 'a-file');
    await writeFile(file, 'not a directory');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    expect((await runKiwi(['backup', src, '-q'], { env })).code).toBe(0);
    // Copies of the snapshot until two ids share their first hex digit (an ambiguous prefix).
    const repo = await Repository.open(createLocalStorage(join(work, 'repo')), 'pw');
    try {
      const [first] = await repo.listSnapshots();
      for (let i = 0; i < 17; i++) {
        ids.push(await repo.saveSnapshot({ ...first!.snapshot, time: new Date(Date.UTC(2020, 0, 1, 0, 0, i)).toISOString() }));
      }
    } finally {
      await repo.close();
    }
    const byFirst = new Map<string, number>();
    for (const id of ids) byFirst.set(id[0]!, (byFirst.get(id[0]!) ?? 0) + 1);
    ambiguous = [...byFirst].find(([, n]) => n > 1)![0];
  });
  afterAll(() => removeDir(work));

  async function expectClean(row: Row, extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    const r = await runKiwi(row.args, { env: { ...env, ...extraEnv } });
    const what = `kiwi ${row.args.join(' ')}\n${r.stderr}`;
    expect(r.code, what).toBe(row.code);
    expect(r.stderr, what).toMatch(row.stderr);
    expect(r.stderr, what).not.toMatch(STACK);
    expect(r.stderr.trimEnd().split('\n').length, what).toBeLessThanOrEqual(3);
  }

  it('every command: an unknown option (2), a missing argument (2), an unknown snapshot (13)', async () => {
    const shapes = await commandShapes();
    expect(shapes.map((s) => s.name)).toEqual(expect.arrayContaining(['backup', 'restore', 'ls', 'diff', 'snapshots', 'check', 'init', 'plugins']));
    for (const cmd of shapes) {
      const words = cmd.name.split(' '); // `repair index`: a group's subcommand
      const required = cmd.positionals.filter((p) => p.required);
      const filler = required.map((p) => (p.name === 'shell' ? 'bash' : 'latest'));
      await expectClean({ args: [...words, ...filler, '--bogus-option'], code: 2, stderr: /unknown option --bogus-option/ });
      if (required.length) {
        await expectClean({ args: words, code: 2, stderr: new RegExp(`^kiwi ${cmd.name}: missing <${required[0]!.name}>`) });
      }
      if (required.some((p) => /snapshot|^a$|^b$/.test(p.name))) {
        const args = [...words, ...required.map(() => 'ffffffffffff')];
        if (cmd.name === 'restore') args.push('--target', join(work, 'out'));
        if (cmd.name === 'tag') args.push('--add', 'x');
        await expectClean({ args, code: 13, stderr: /no snapshot matches "ffffffffffff"/ });
      }
    }
  });

  it.each<Row & { title: string }>([
    { title: 'unknown command', args: ['bakcup'], code: 2, stderr: /unknown command "bakcup" \(did you mean "backup"\?\)/ },
    { title: 'a command group without its command', args: ['repair'], code: 2, stderr: /^kiwi repair: name a command: index, packs, snapshots/ },
    { title: 'an unknown command in a group', args: ['repair', 'snapshot'], code: 2, stderr: /kiwi repair: unknown command "snapshot" \(did you mean "snapshots"\?\)/ },
    { title: 'restore without --target', args: ['restore', 'latest'], code: 2, stderr: /restore needs --target/ },
    { title: 'a path not in the snapshot', args: ['ls', 'latest', '/no/such/path'], code: 1, stderr: /\/no\/such\/path (is )?not (found )?in/ },
    { title: 'a bad S3 URL', args: ['snapshots', '--repo', 's3:'], code: 2, stderr: /bucket/ },
    { title: 'a bad SFTP URL', args: ['snapshots', '--repo', 'sftp:nohost'], code: 2, stderr: /invalid SFTP repository URL/ },
    { title: 'an unknown URL scheme', args: ['snapshots', '--repo', 'foo:bar'], code: 2, stderr: /no storage adapter for "foo:"/ },
    { title: 'a missing config file', args: ['snapshots', '--config', '/no/such/config.json'], code: 2, stderr: /config file .* does not exist/ },
    { title: 'a password file that does not exist', args: ['snapshots', '--password-file', '/no/such/pw'], code: 2, stderr: /cannot read password file/ },
    { title: 'a password file that is a directory', args: ['snapshots', '--password-file', '/tmp'], code: 2, stderr: /^kiwi: cannot read password file \/tmp: it is a directory\n$/ },
    { title: 'backup of nothing', args: ['backup', '/no/such/source'], code: 1, stderr: /none of the sources exist/ },
    { title: 'unknown shell', args: ['completion', 'tcsh'], code: 2, stderr: /unknown shell "tcsh"/ },
    { title: 'an argument to a command that takes none', args: ['snapshots', 'extra'], code: 2, stderr: /unexpected argument "extra": this command takes options only/ },
  ])('$title', async (row) => {
    // The password file row needs KIWI_PASSWORD unset, or it would win.
    await expectClean(row, row.args.includes('--password-file') ? { KIWI_PASSWORD: '' } : {});
  });

  it('a repository that does not exist: "run kiwi init", exit 10', async () => {
    await expectClean({ args: ['snapshots', '--repo', join(work, 'nope')], code: 10, stderr: /no repository at .*nope: run `kiwi init` to create one/ });
    // Also when there is no password to open it with.
    await expectClean({ args: ['ls', 'latest', '--repo', join(work, 'nope')], code: 10, stderr: /run `kiwi init`/ }, { KIWI_PASSWORD: '' });
  });

  it('a restore target that is a file: exit 2, naming it', async () => {
    await expectClean({ args: ['restore', 'latest', '--target', file], code: 2, stderr: /restore target .*a-file is not a directory/ });
  });

  it('an ambiguous snapshot prefix: exit 13, listing the candidates', async () => {
    await expectClean({ args: ['ls', ambiguous], code: 13, stderr: /is ambiguous; it matches/ });
    await expectClean({ args: ['diff', ambiguous, 'latest'], code: 13, stderr: /is ambiguous/ });
  });

  it('--json: the error is a JSON line with the exit code; --verbose shows the stack', async () => {
    const r = await runKiwi(['ls', 'ffffffffffff', '--json'], { env });
    expect(r.code).toBe(13);
    expect(jsonLines(r.stdout)).toEqual([expect.objectContaining({ message_type: 'error', error: 'SnapshotNotFoundError', exit_code: 13 })]);
    const v = await runKiwi(['ls', 'ffffffffffff', '--verbose'], { env });
    expect(v.code).toBe(13);
    expect(v.stderr).toMatch(STACK);
  });
});
