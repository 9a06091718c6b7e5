/**
 * `kiwi key list | add | remove | passwd` and `--password-command` (issue 10, acceptance 5, first half).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { runKiwi, tempDir, removeDir, jsonLines } from './helpers.js';
import { runPasswordCommand } from '../src/password.js';

describe('kiwi key and --password-command', () => {
  let work: string;
  let n = 0;

  /** A fresh repository with password `old` and one snapshot; returns its environment (no password set). */
  async function freshRepo(): Promise<NodeJS.ProcessEnv> {
    const env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, `repo-${++n}`) };
    expect((await runKiwi(['init'], { env: { ...env, KIWI_PASSWORD: 'old' } })).code).toBe(0);
    const b = await runKiwi(['backup', join(work, 'src'), '-q'], { env: { ...env, KIWI_PASSWORD: 'old' } });
    expect(b.code, b.stderr).toBe(0);
    return env;
  }
  const pwFile = async (name: string, content: string) => {
    const f = join(work, name);
    await writeFile(f, content);
    return f;
  };
  const keyIds = async (env: NodeJS.ProcessEnv, password: string) => {
    const r = await runKiwi(['key', 'list', '--json'], { env: { ...env, KIWI_PASSWORD: password } });
    expect(r.code, r.stderr).toBe(0);
    return jsonLines(r.stdout).filter((l) => l.message_type === 'key') as Array<{ id: string; current: boolean; message_type: string }>;
  };

  beforeAll(async () => {
    work = await tempDir('kiwi-keys-');
    await mkdir(join(work, 'src'));
    await writeFile(join(work, 'src', 'f.txt'), 'f');
  });
  afterAll(() => removeDir(work));

  it('key add, then the old key removed: the new password opens the repository, the old one gets exit 12', async () => {
    const env = await freshRepo();
    const [oldKey] = await keyIds(env, 'old');
    expect(oldKey!.current).toBe(true);
    const add = await runKiwi(['key', 'add', '--new-password-file', await pwFile('new-pw', 'new password\n')], { env: { ...env, KIWI_PASSWORD: 'old' } });
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/^added key [0-9a-f]{8}$/m);

    const keys = await keyIds(env, 'new password');
    expect(keys).toHaveLength(2);
    const mine = keys.find((k) => k.current)!;
    expect(mine.id).not.toBe(oldKey!.id);

    const rm = await runKiwi(['key', 'remove', oldKey!.id.slice(0, 8)], { env: { ...env, KIWI_PASSWORD: 'new password' } });
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toContain(`removed key ${oldKey!.id.slice(0, 8)}`);

    const withNew = await runKiwi(['ls', 'latest'], { env: { ...env, KIWI_PASSWORD: 'new password' } });
    expect(withNew.code, withNew.stderr).toBe(0);
    expect(withNew.stdout).toContain('f.txt');
    const withOld = await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD: 'old' } });
    expect(withOld.code).toBe(12);
    expect(withOld.stderr).toContain('wrong password');
  });

  it('removing the key in use (here also the last one) is refused; an unknown or malformed id is an error', async () => {
    const env = { ...(await freshRepo()), KIWI_PASSWORD: 'old' };
    const [only] = await keyIds(env, 'old');
    const r = await runKiwi(['key', 'remove', only!.id.slice(0, 6)], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing to remove key ${only!.id.slice(0, 8)}: it is the key this password opened, and the repository's only key`);
    expect(r.stderr, 'no stack trace').not.toMatch(/\n\s+at /);
    expect(await keyIds(env, 'old')).toHaveLength(1);

    // With a second key: the one in use is still refused, and the other one can go.
    expect((await runKiwi(['key', 'add', '--new-password-file', await pwFile('second', 'second')], { env })).code).toBe(0);
    const inUse = await runKiwi(['key', 'remove', only!.id], { env });
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/it is the key this password opened; open the repository with another key's password/);
    expect((await runKiwi(['key', 'remove', 'ffffffff'], { env })).stderr).toMatch(/no key ffffffff in .*\(keys: /);
    const bad = await runKiwi(['key', 'remove', 'xyz'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('key id "xyz" is not a hex id');
    expect((await runKiwi(['key', 'remove'], { env })).stderr).toContain('key remove needs the id');
    expect((await runKiwi(['key', 'rotate'], { env })).stderr).toContain('unknown key action "rotate": use one of list, add, remove, passwd');
    const noPw = await runKiwi(['key', 'add'], { env });
    expect(noPw.code).toBe(2);
    expect(noPw.stderr).toContain('no new password: give --new-password-file');
    expect(await keyIds(env, 'old')).toHaveLength(2);
  });

  it('key passwd: the new password replaces the current one', async () => {
    const env = await freshRepo();
    const r = await runKiwi(['key', 'passwd', '--new-password-file', await pwFile('changed', 'changed')], { env: { ...env, KIWI_PASSWORD: 'old' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/password changed: key [0-9a-f]{8} replaces [0-9a-f]{8}/);
    expect(await keyIds(env, 'changed')).toHaveLength(1);
    expect((await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD: 'old' } })).code).toBe(12);
  });

  it('--password-command: its output (without the trailing newline) is the password', async () => {
    const env = await freshRepo();
    const script = await pwFile('pw.sh', '#!/bin/sh\nprintf "old\\n"\n');
    const r = await runKiwi(['snapshots', '--password-command', `sh ${script}`], { env });
    expect(r.code, r.stderr).toBe(0);
    // From the environment, and from the config file.
    expect((await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD_COMMAND: 'echo old' } })).code).toBe(0);
    const cfg = await pwFile('pwcmd.json', JSON.stringify({ passwordCommand: 'echo old' }));
    expect((await runKiwi(['snapshots', '--config', cfg], { env })).code).toBe(0);
    // A wrong password from the command is a wrong password (12).
    expect((await runKiwi(['snapshots', '--password-command', 'echo nope'], { env })).code).toBe(12);
  });

  it('a password command that never finishes (no terminal to answer it) is killed after its time: a usage error, not a hang', async () => {
    const t0 = Date.now();
    // (A pipeline: what the shell started keeps the output open after the shell is killed.)
    await expect(runPasswordCommand('sleep 30 | cat', '--password-command', 500)).rejects.toThrow(/--password-command\) did not finish within 1 s/);
    expect(Date.now() - t0).toBeLessThan(5000);
    await expect(runPasswordCommand('echo fine', '--password-command', 5000)).resolves.toBe('fine');
  });

  it('a failing, silent or missing password command is a usage error (2) naming the source, never printing its output', async () => {
    const env = await freshRepo();
    const failing = await runKiwi(['snapshots', '--password-command', 'echo old; exit 3'], { env });
    expect(failing.code).toBe(2);
    expect(failing.stderr).toContain('the password command (--password-command) failed with exit code 3');
    expect(failing.stdout + failing.stderr).not.toContain('old');
    const silent = await runKiwi(['snapshots'], { env: { ...env, KIWI_PASSWORD_COMMAND: 'true' } });
    expect(silent.code).toBe(2);
    expect(silent.stderr).toContain('the password command (KIWI_PASSWORD_COMMAND) printed no password');
    const missing = await runKiwi(['snapshots', '--password-command', 'no-such-command-kiwi'], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('failed with exit code 127 (command not found?)');
    const both = await runKiwi(['snapshots', '--password-command', 'echo old', '--password-file', '/nonexistent'], { env });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give either --password-file or --password-command, not both');
  });
  it('a damaged key file is listed as damaged (escaped), does not stop key list, and can be removed by its id', async () => {
    const env = await freshRepo();
    // Not JSON: its name is its SHA-256, as every key file's.
    const garbage = Buffer.from('{"version":1,"kdf":"scr\u001b[2J');
    const { createHash } = await import('node:crypto');
    const id = createHash('sha256').update(garbage).digest('hex');
    await writeFile(join(env.KIWI_REPOSITORY!, 'keys', id), garbage);
    const list = await runKiwi(['key', 'list'], { env: { ...env, KIWI_PASSWORD: 'old' } });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(`${id.slice(0, 8)}  (damaged: keys/${id}: not valid JSON)`);
    expect(list.stdout).not.toContain('\u001b');
    const keys = await keyIds(env, 'old');
    expect(keys.map((k) => k.id)).toContain(id);
    const rm = await runKiwi(['key', 'remove', id.slice(0, 8)], { env: { ...env, KIWI_PASSWORD: 'old' } });
    expect(rm.code, rm.stderr).toBe(0);
    expect((await keyIds(env, 'old')).map((k) => k.id)).not.toContain(id);
  });
});
