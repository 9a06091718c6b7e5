/**
 * Issue 13, item 8: URL secrets are masked everywhere, loose permissions on a password file are
 * warned about, and text from a repository or the file system reaches a terminal with its control
 * characters escaped (the `--json` output keeps the exact value).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '@kiwi-backup/core';
import { createLocalStorage } from '@kiwi-backup/storage-local';
import { escapeControl, maskMessage, maskSecrets, maskUrl, plural } from '../src/format.js';
import { jsonLines, removeDir, runKiwi, tempDir } from './helpers.js';

const EVIL_HOST = 'host\x1b[31mRED\x1b]0;title\x07\nFAKE LINE';
const EVIL_TAG = 'tag\x1b[2J';
const EVIL_NAME = 'evil\x1b[1;31mname\nsecond line\u202ecod.exe';

describe('escapeControl, maskSecrets, plural', () => {
  it('escapes C0, DEL, C1 and bidi overrides; leaves other text alone', () => {
    expect(escapeControl('plain ünïcödé 名前')).toBe('plain ünïcödé 名前');
    expect(escapeControl('a\nb\tc\rd\x1b[0m\x7f\x9b\u202e')).toBe('a\\nb\\tc\\rd\\x1b[0m\\x7f\\x9b\\u202e');
  });

  it('masks passwords in URLs and whole query strings', () => {
    expect(maskSecrets('cannot open s3:https://h:9000/b/p?secret=abc&x=1 now')).toBe('cannot open s3:https://h:9000/b/p?*** now');
    expect(maskSecrets('at sftp://me:pw@host/x and sftp:me:pw@host:/y')).toBe('at sftp://me:***@host/x and sftp:me:***@host:/y');
    expect(maskSecrets('dav:https://u:SECRET@h/p?token=T')).not.toMatch(/SECRET|T$/);
    expect(maskSecrets('/plain/path?not-a-url')).toBe('/plain/path?not-a-url');
  });

  it('a password holding "@", "/" or ":" is masked to the last "@" of its word', () => {
    // Once `sftp://backup:***@dor/x@nas.example/…` (the password's tail shown) and `***@CRET@host`.
    expect(maskSecrets('at "sftp://backup:Tr0ub@dor/x@nas.example/srv/kiwi": refused')).toBe('at "sftp://backup:***@nas.example/srv/kiwi": refused');
    expect(maskSecrets('sftp://user:pa/ssw0rd@host/path')).toBe('sftp://user:***@host/path');
    expect(maskSecrets('s3:https://AK:SE@CRET@host/b and s3:https://AK:SE/C?RET@host/b')).toBe('s3:https://AK:***@host/b and s3:https://AK:***@host/b');
    expect(maskSecrets('sftp:backup:Tr0ub@dor/x@nas.example:/srv sftp:me@corp:p@ss@host:/x')).toBe('sftp:backup:***@nas.example:/srv sftp:me@corp:***@host:/x');
    expect(maskSecrets('sftp://me@host/srv/kiwi, sftp:me@host:/srv')).toBe('sftp://me@host/srv/kiwi, sftp:me@host:/srv');
  });

  it('maskUrl masks a whole location, whatever its password holds; maskMessage replaces the location as written', () => {
    expect(maskUrl('sftp://backup:Tr0ub@dor/x@nas.example/srv/kiwi')).toBe('sftp://backup:***@nas.example/srv/kiwi');
    expect(maskUrl('sftp://u:pa ss"w\'d@host/x')).toBe('sftp://u:***@host/x');
    expect(maskUrl('s3:https://AK:SE@CRET@host/b?x=1')).toBe('s3:https://AK:***@host/b?***');
    expect(maskUrl('sftp:me:p@w@host:/srv')).toBe('sftp:me:***@host:/srv');
    for (const plain of ['/srv/backup@2024:x', 'C:\\backups', 'sftp://me@host/x', 's3:https://h:9000/b/p', 'repo']) expect(maskUrl(plain)).toBe(plain);
    const raw = 'sftp://u:pa ss@host/x';
    expect(maskMessage(`cannot connect to ${raw}: refused`, raw)).toBe('cannot connect to sftp://u:***@host/x: refused');
    expect(maskMessage('no password for repository repo/x', 'repo', '/abs/repo')).toBe('no password for repository repo/x');
  });

  it('plural forms', () => {
    expect(plural(1, 'file')).toBe('1 file');
    expect(plural(0, 'file')).toBe('0 files');
    expect(plural(2, 'entry', 'entries')).toBe('2 entries');
  });
});

describe('the CLI', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    work = await tempDir('kiwi-escapes-');
    const src = join(work, 'src');
    await mkdir(src);
    await writeFile(join(src, 'ok.txt'), 'fine');
    await writeFile(join(src, EVIL_NAME), 'crafted name');
    await writeFile(Buffer.concat([Buffer.from(`${src}/latin1-`), Buffer.from([0xe9, 0xff])]), 'not UTF-8');
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'pw' };
    expect((await runKiwi(['init'], { env })).code).toBe(0);
    expect((await runKiwi(['backup', src, '-q'], { env })).code).toBe(0);
    // A crafted snapshot: host, tags and paths with escape sequences and a newline.
    const repo = await Repository.open(createLocalStorage(join(work, 'repo')), 'pw');
    try {
      const [first] = await repo.listSnapshots();
      await repo.saveSnapshot({ ...first!.snapshot, hostname: EVIL_HOST, tags: [EVIL_TAG], paths: [`/srv/${EVIL_NAME}`], time: new Date(Date.UTC(2030, 0, 1)).toISOString() });
    } finally {
      await repo.close();
    }
  });
  afterAll(() => removeDir(work));

  function expectInert(text: string): void {
    expect(text).not.toContain('\x1b');
    expect(text).not.toContain('\x07');
    expect(text).not.toContain('\u202e');
    expect(text).not.toMatch(/^FAKE LINE/m);
    expect(text).not.toMatch(/^second line/m);
  }

  it('snapshots: a crafted host, tag and path are escaped for a person, exact in --json', async () => {
    const r = await runKiwi(['snapshots'], { env });
    expect(r.code).toBe(0);
    expectInert(r.stdout + r.stderr);
    expect(r.stdout).toContain('host\\x1b[31mRED');
    const j = await runKiwi(['snapshots', '--json-lines'], { env });
    const snaps = jsonLines(j.stdout).filter((l) => l.message_type === 'snapshot');
    // `--json` is one array (restic's form): the exact values there too.
    const array = JSON.parse((await runKiwi(['snapshots', '--json'], { env })).stdout) as Array<{ hostname: string }>;
    expect(array.map((x) => x.hostname)).toContain(EVIL_HOST);
    expect(snaps.map((s) => s.hostname)).toContain(EVIL_HOST);
    expect(snaps.flatMap((s) => s.tags as string[])).toContain(EVIL_TAG);
  });

  it('ls and diff: a file name with escapes and a newline is one escaped line; --json keeps it', async () => {
    const ls = await runKiwi(['ls', 'latest'], { env });
    expect(ls.code).toBe(0);
    expectInert(ls.stdout);
    expect(ls.stdout).toContain('evil\\x1b[1;31mname\\nsecond line\\u202ecod.exe');
    const long = await runKiwi(['ls', '-l', 'latest'], { env });
    expectInert(long.stdout);
    const json = await runKiwi(['ls', 'latest', '--json'], { env });
    const nodes = jsonLines(json.stdout);
    expect(nodes.some((l) => l.name === EVIL_NAME)).toBe(true);
    // A name that is not UTF-8: its exact bytes in name_raw.
    const raw = nodes.find((l) => typeof l.name_raw === 'string');
    expect(Buffer.from(String(raw?.name_raw), 'base64')).toEqual(Buffer.from([...Buffer.from('latin1-'), 0xe9, 0xff]));
    const snaps = jsonLines((await runKiwi(['snapshots', '--json-lines'], { env })).stdout).filter((l) => l.message_type === 'snapshot');
    const plain = snaps.find((s) => s.hostname !== EVIL_HOST)!;
    const diff = await runKiwi(['diff', String(plain.id), 'latest'], { env });
    expectInert(diff.stdout + diff.stderr);
  });

  it('a query string or password in the repository URL never reaches the output, human or --json', async () => {
    for (const repo of ['s3:https://127.0.0.1:9/bucket/p?secret=TOPSECRET', 'sftp://me:TOPSECRET@127.0.0.1/x']) {
      for (const extra of [[], ['--json']]) {
        const r = await runKiwi(['snapshots', '--repo', repo, ...extra], { env });
        expect(r.code, r.stderr).toBe(2);
        expect(r.stdout + r.stderr).not.toContain('TOPSECRET');
      }
    }
  });

  it('a password holding "@", "/" or ":" in the repository URL is not shown in part either', async () => {
    // The audit's URLs: once `sftp://backup:***@dor/x@nas.example/…`, the whole URL in a "bad port" error,
    // and `s3:https://***@CRET@host/b`.
    const cases: Array<[string, RegExp]> = [
      ['sftp://backup:Tr0ub@dor/x@nas.example/srv/kiwi', /Tr0ub|dor\/x/],
      ['sftp://user:pa/ssw0rd@host/path', /pa\/ssw0rd|ssw0rd|"pa"/],
      ['s3:https://AK:SE@CRET@host/b', /SE@CRET|CRET/],
      ['s3:https://AK:SE/CRET@host/b', /SE\/CRET|CRET/],
    ];
    for (const [repo, secret] of cases) {
      for (const extra of [[], ['--json'], ['--verbose']]) {
        const r = await runKiwi(['snapshots', '--repo', repo, ...extra], { env });
        expect(r.code, r.stderr).toBe(2);
        expect(r.stdout + r.stderr, `${repo} ${extra.join(' ')}`).not.toMatch(secret);
        expect(r.stdout + r.stderr).toMatch(/password in the URL is not accepted|contains credentials/);
      }
    }
  });

  it('a scheme named like a member of Object.prototype is an unknown scheme (exit 2)', async () => {
    const r = await runKiwi(['snapshots', '--repo', 'constructor:x'], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe('kiwi: no storage adapter for "constructor:" repositories (known: local, s3, sftp); name one in the config under "storage"\n');
  });

  it.runIf(process.platform !== 'win32')('a password or exclude file that is a device is refused before it is read; a password pipe still works', async () => {
    // `/dev/zero` was once read until the memory ran out.
    const noEnvPw = { ...env, KIWI_PASSWORD: '' };
    const pw = await runKiwi(['snapshots', '--password-file', '/dev/zero'], { env: noEnvPw });
    expect(pw.code).toBe(2);
    expect(pw.stderr).toBe('kiwi: cannot read password file /dev/zero: it is not a regular file or a pipe (a character device)\n');
    const ex = await runKiwi(['backup', join(work, 'src'), '--exclude-file', '/dev/zero'], { env });
    expect(ex.code).toBe(2);
    expect(ex.stderr).toBe('kiwi: cannot read the exclude file /dev/zero: it is not a regular file (a character device)\n');
    // `--password-file <(…)`: a pipe.
    const fifo = join(work, 'pw.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const writer = spawn('sh', ['-c', `printf 'pw\\n' > ${fifo}`]);
    const viaPipe = await runKiwi(['snapshots', '--password-file', fifo], { env: noEnvPw });
    writer.kill();
    expect(viaPipe.code, viaPipe.stderr).toBe(0);
    // One that never ends is cut off at 1 MiB.
    const endless = spawn('sh', ['-c', `exec cat /dev/zero > ${fifo}`]);
    const tooLong = await runKiwi(['snapshots', '--password-file', fifo], { env: noEnvPw });
    endless.kill();
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toBe(`kiwi: cannot read password file ${fifo}: it is larger than 1 MiB\n`);
  });

  it('a relative repository path in a message is not confused with words of the message', async () => {
    // `--repo repo` from the work directory: "no password for repository …" once said
    // "no password for <abs>/repository <abs>/<abs>/repo".
    const r = await runKiwi(['snapshots', '--repo', 'repo'], { env: { ...env, KIWI_PASSWORD: '' }, cwd: work });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`no password for repository ${join(work, 'repo')}:`);
  });

  it('a password file that others can read is used, with a warning', async () => {
    const pw = join(work, 'password');
    await writeFile(pw, 'pw\n');
    await chmod(pw, 0o644);
    const noEnvPw = { ...env, KIWI_PASSWORD: '' };
    const loose = await runKiwi(['snapshots', '--password-file', pw], { env: noEnvPw });
    expect(loose.code).toBe(0);
    expect(loose.stderr).toMatch(/warning: password file .*password can be read or changed by other users \(mode 0644\): run `chmod 600/);
    await chmod(pw, 0o600);
    const tight = await runKiwi(['snapshots', '--password-file', pw], { env: noEnvPw });
    expect(tight.code).toBe(0);
    expect(tight.stderr).not.toMatch(/warning/);
    // --json: the warning is a JSON line, stdout stays JSON.
    await chmod(pw, 0o640);
    const json = await runKiwi(['snapshots', '--password-file', pw, '--json-lines'], { env: noEnvPw });
    expect(jsonLines(json.stdout).some((l) => l.message_type === 'error' && l.severity === 'warning')).toBe(true);
  });
});
