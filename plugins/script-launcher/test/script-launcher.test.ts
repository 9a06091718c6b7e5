import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BackupAbortedError,
  loadTestPlugins,
  memoryLogger,
  runBackupWithPlugins,
  type RunBackupWithPluginsOptions,
} from '@kiwi-backup/core/testing';
import scriptLauncher from '../src/index.js';

const posix = process.platform !== 'win32';

/** Kiwi's data directory; the plug-in's scripts live in `dir` = `<dataDir>/plugins/script-launcher`. */
let dataDir: string;
let dir: string;
let trace: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kiwi-script-launcher-'));
  dir = join(dataDir, 'plugins', 'script-launcher');
  await mkdir(dir, { recursive: true });
  trace = join(dataDir, 'trace.log');
  await writeFile(trace, '');
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function script(name: string, body: string, mode = 0o755): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, mode);
  return path;
}

const launcher = (options: Record<string, unknown> = {}) => [{ name: 'script-launcher', module: scriptLauncher, options }];

/** One backup through Kiwi's real plug-in runtime with script-launcher loaded with `options`. */
function backup(options: Record<string, unknown> = {}, run: RunBackupWithPluginsOptions = {}) {
  return runBackupWithPlugins(launcher(options), { dataDir, ...run });
}

const traceLines = async () => (await readFile(trace, 'utf8')).split('\n').filter(Boolean);

/** Running, and (where /proc tells) not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // exited in between
  }
}

describe.runIf(posix)('script-launcher', () => {
  it('runs pre_backup before and post_backup after the backup, with the backup in the environment', async () => {
    const dump = (tag: string) =>
      `echo "${tag} hook=$KIWI_HOOK status=$KIWI_STATUS id=$KIWI_BACKUP_ID snap=$KIWI_SNAPSHOT_ID repo=$KIWI_REPOSITORY ` +
      `tags=$KIWI_TAGS dry=$KIWI_DRY_RUN err=$KIWI_ERROR pw=\${KIWI_PASSWORD:-none} extra=$EXTRA" >> "${trace}"\n` +
      `printf '%s\\n' "$KIWI_SOURCES" | while IFS= read -r src; do echo "${tag} source=$src" >> "${trace}"; done\n` +
      `echo "${tag} says hello"; echo "${tag} complains" >&2`;
    await script('pre_backup.sh', dump('pre'));
    await script('post_backup.sh', `${dump('post')}\necho "post stats=$KIWI_STATS" >> "${trace}"`);
    const previous = process.env.KIWI_PASSWORD;
    process.env.KIWI_PASSWORD = 'hunter2';
    try {
      const run = await backup({ env: { EXTRA: 'x1' } }, {
        sources: ['/srv/a', '/srv/with space'],
        repository: 's3:bucket/kiwi',
        tags: ['daily', 'db'],
        snapshotId: 'abc123',
        body: async () => {
          await writeFile(trace, 'body\n', { flag: 'a' });
        },
      });
      expect(run.startError).toBeUndefined();
      expect(run.stopErrors).toEqual([]);
      const id = run.backup.id;
      const lines = await traceLines();
      expect(lines).toEqual([
        `pre hook=pre_backup status=running id=${id} snap= repo=s3:bucket/kiwi tags=daily,db dry=0 err= pw=none extra=x1`,
        'pre source=/srv/a',
        'pre source=/srv/with space',
        'body',
        `post hook=post_backup status=success id=${id} snap=abc123 repo=s3:bucket/kiwi tags=daily,db dry=0 err= pw=none extra=x1`,
        'post source=/srv/a',
        'post source=/srv/with space',
        expect.stringMatching(/^post stats=\{"filesNew":0,/),
      ]);
      // Output goes to the plug-in's log line by line: stdout as info, stderr as warn.
      expect(run.logs).toContainEqual(expect.objectContaining({ level: 'info', message: 'pre_backup: pre says hello' }));
      expect(run.logs).toContainEqual(expect.objectContaining({ level: 'warn', message: 'pre_backup: pre complains' }));
      expect(run.logs).toContainEqual(expect.objectContaining({ level: 'info', message: 'post_backup: post says hello' }));
      expect(JSON.stringify(run.logs)).not.toContain('hunter2');
    } finally {
      if (previous === undefined) delete process.env.KIWI_PASSWORD;
      else process.env.KIWI_PASSWORD = previous;
    }
  });

  it('aborts the backup when pre_backup fails, with the exit code and its last output; post still runs', async () => {
    await script('pre_backup.sh', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo "line $i"; done\necho "disk not mounted" >&2\nexit 3');
    await script('post_backup.sh', `echo "post status=$KIWI_STATUS err=$KIWI_ERROR" >> "${trace}"`);
    const run = await backup();
    expect(run.bodyRan).toBe(false);
    expect(run.startError).toBeInstanceOf(BackupAbortedError);
    const message = (run.startError as Error).message;
    expect(message).toContain(`pre_backup script ${join(dir, 'pre_backup.sh')} failed with exit code 3`);
    expect(message).toContain('disk not mounted');
    expect(message).toContain('line 25');
    expect(message).not.toContain('line 5\n'); // only the last lines
    expect(run.backup.status).toBe('aborted');
    // KIWI_ERROR is the message of the error that ended the backup: the whole abort, last output lines included.
    const text = await readFile(trace, 'utf8');
    expect(text).toMatch(/^post status=aborted err=backup aborted by plug-in "script-launcher" in onBackupStart: pre_backup script .* failed with exit code 3\nlast output:\n/);
    expect(text).toContain('disk not mounted');
  });

  it('runs the backup anyway with continueOnPreFailure, logging the failure', async () => {
    await script('pre_backup.sh', 'exit 1');
    const run = await backup({ continueOnPreFailure: true });
    expect(run.bodyRan).toBe(true);
    expect(run.startError).toBeUndefined();
    expect(run.logs).toContainEqual(
      expect.objectContaining({ level: 'error', message: expect.stringMatching(/failed with exit code 1[\s\S]*continuing the backup/) }),
    );
  });

  it('treats a pre script that is not executable as a failure', async () => {
    await script('pre_backup.sh', 'echo never', 0o644);
    const log = memoryLogger();
    const runtime = await loadTestPlugins(launcher(), { dataDir, logger: log });
    await runtime.serverStart();
    expect(log.entries).toContainEqual(expect.objectContaining({ level: 'warn', message: expect.stringContaining('is not executable') }));
    const run = await runBackupWithPlugins(runtime);
    expect(run.bodyRan).toBe(false);
    expect((run.startError as Error).message).toContain('not executable (chmod +x');
  });

  it('logs missing scripts and lets the backup run', async () => {
    const run = await backup();
    expect(run.bodyRan).toBe(true);
    expect(run.startError).toBeUndefined();
    expect(run.stopErrors).toEqual([]);
    expect(run.logs).toContainEqual(
      expect.objectContaining({ level: 'info', message: `no pre_backup script (looked for ${join(dir, 'pre_backup.sh')}); nothing to run` }),
    );
    expect(run.logs).toContainEqual(expect.objectContaining({ message: expect.stringContaining('no post_backup script') }));
  });

  it('runs post_backup after a failed backup with KIWI_STATUS=failure, keeping the backup error', async () => {
    await script('post_backup.sh', `echo "status=$KIWI_STATUS err=$KIWI_ERROR" >> "${trace}"`);
    const run = await backup({}, {
      body: async () => {
        throw new Error('disk on fire');
      },
    });
    expect((run.startError as Error).message).toBe('disk on fire');
    expect(run.stopErrors).toEqual([]);
    expect(await traceLines()).toEqual(['status=failure err=disk on fire']);
  });

  it('reports a failing post_backup without hiding the backup result', async () => {
    await script('post_backup.sh', 'echo "upload failed" >&2; exit 2');
    const ok = await backup({}, { snapshotId: 'feedbeef' });
    expect(ok.startError).toBeUndefined();
    expect(ok.backup.status).toBe('success');
    expect(ok.stopErrors).toHaveLength(1);
    const msg = ok.stopErrors[0]!.message;
    expect(msg).toContain('post_backup script');
    expect(msg).toContain('failed with exit code 2');
    expect(msg).toContain('upload failed');
    expect(msg).toContain('the backup itself ended with status success, snapshot feedbeef');
  });

  it('takes commands from options: an argv array and a shell command line', async () => {
    const run = await backup({
      pre: ['/bin/sh', '-c', `echo "argv $KIWI_HOOK $0" >> "${trace}"`, 'zero'],
      post: `echo "shell $KIWI_HOOK $KIWI_STATUS" >> "${trace}" && echo chained >> "${trace}"`,
    });
    expect(run.startError).toBeUndefined();
    expect(await traceLines()).toEqual(['argv pre_backup zero', 'shell post_backup success', 'chained']);
  });

  it('runs a script named by a relative path in the plug-in folder', async () => {
    await script('my-pre.sh', `echo "custom $KIWI_HOOK" >> "${trace}"`);
    await backup({ pre: 'my-pre.sh', post: false });
    expect(await traceLines()).toEqual(['custom pre_backup']);
  });

  it('kills a hanging pre script and its whole process group at the timeout', async () => {
    const pids = join(dir, 'pids');
    // A background child, plus a shell that ignores SIGTERM, so only the SIGKILL after the grace period ends it.
    await script('pre_backup.sh', `sleep 300 &\necho $! > "${pids}"\ntrap '' TERM\necho $$ >> "${pids}"\necho started\nwhile :; do sleep 1; done`);
    const started = Date.now();
    const run = await backup({ timeout: 400, killGrace: '300ms' });
    const elapsed = Date.now() - started;
    expect(run.bodyRan).toBe(false);
    const message = (run.startError as Error).message;
    expect(message).toContain('timed out after 400 ms and was killed with its process group');
    expect(message).toContain('started');
    expect(elapsed).toBeLessThan(5_000);
    const [child, shell] = (await readFile(pids, 'utf8')).trim().split('\n').map(Number);
    expect(child).toBeGreaterThan(0);
    expect(shell).toBeGreaterThan(0);
    expect(running(child!)).toBe(false);
    expect(running(shell!)).toBe(false);
  });

  it('kills the pre script when the backup is interrupted (SIGINT)', async () => {
    const pids = join(dir, 'pids');
    await script('pre_backup.sh', `echo $$ > "${pids}"\nexec sleep 300`);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('SIGINT')), 300);
    const started = Date.now();
    const run = await backup({ post: false }, { signal: controller.signal });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(run.bodyRan).toBe(false);
    expect((run.startError as Error).message).toContain('was killed because the backup was interrupted');
    expect(run.backup.status).toBe('interrupted');
    expect(running(Number((await readFile(pids, 'utf8')).trim()))).toBe(false);
  });

  it('still runs post_backup after an interrupted backup', async () => {
    await script('post_backup.sh', `echo "status=$KIWI_STATUS" >> "${trace}"`);
    const controller = new AbortController();
    const run = await backup({}, {
      signal: controller.signal,
      body: async () => {
        controller.abort(new Error('SIGTERM'));
        throw new Error('interrupted by SIGTERM');
      },
    });
    expect(run.stopErrors).toEqual([]);
    expect(await traceLines()).toEqual(['status=interrupted']);
  });

  it('rejects unknown or malformed options when loaded', async () => {
    await expect(loadTestPlugins(launcher({ preScript: 'x' }), { dataDir })).rejects.toThrow(
      /script-launcher: unknown option "preScript"/,
    );
    await expect(loadTestPlugins(launcher({ timeout: 'soon' }), { dataDir })).rejects.toThrow(/option "timeout"/);
    await expect(loadTestPlugins(launcher({ pre: 42 }), { dataDir })).rejects.toThrow(/option "pre"/);
    await expect(loadTestPlugins(launcher({ passEnv: 'AWS_SECRET_ACCESS_KEY' }), { dataDir })).rejects.toThrow(/option "passEnv" must be an array/);
    await expect(loadTestPlugins(launcher({ passEnv: ['HOME'] }), { dataDir })).rejects.toThrow(/option "passEnv": "HOME" is not withheld from the scripts/);
  });

  it("withholds every one of Kiwi's secrets from the scripts, but those named in passEnv", async () => {
    // Before, only KIWI_PASSWORD was withheld: a pre script's `env` put the SFTP password, the password
    // command, the source repository's password and the AWS secret into Kiwi's log.
    const secrets: Record<string, string> = {
      KIWI_PASSWORD: 'pw-repo',
      KIWI_PASSWORD_COMMAND: 'echo pw-command',
      KIWI_FROM_PASSWORD: 'pw-from',
      KIWI_SFTP_PASSWORD: 'pw-sftp',
      KIWI_SFTP_KEY_PASSPHRASE: 'pw-passphrase',
      AWS_ACCESS_KEY_ID: 'AKIA-ID',
      AWS_SECRET_ACCESS_KEY: 'aws-secret',
      AWS_SESSION_TOKEN: 'aws-token',
    };
    const kept = { KIWI_PASSWORD_FILE: '/etc/kiwi/password', AWS_PROFILE: 'backup' };
    const previous = Object.fromEntries(Object.keys({ ...secrets, ...kept }).map((k) => [k, process.env[k]]));
    Object.assign(process.env, secrets, kept);
    try {
      await script('pre_backup.sh', 'env');
      const run = await backup({ post: false });
      const logged = run.logs.map((l) => l.message).join('\n');
      for (const [name, value] of Object.entries(secrets)) {
        expect(logged, name).not.toContain(`${name}=`);
        expect(logged, name).not.toContain(value);
      }
      // Paths and settings that are not secrets are still there.
      expect(logged).toContain('pre_backup: KIWI_PASSWORD_FILE=/etc/kiwi/password');
      expect(logged).toContain('pre_backup: AWS_PROFILE=backup');
      // A script that needs the AWS credentials gets them when passEnv names them.
      const aws = await backup({ post: false, passEnv: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'] });
      const awsLogged = aws.logs.map((l) => l.message);
      expect(awsLogged).toContain('pre_backup: AWS_SECRET_ACCESS_KEY=aws-secret');
      expect(awsLogged).toContain('pre_backup: AWS_SESSION_TOKEN=aws-token');
      expect(awsLogged.join('\n')).not.toContain('pw-');
    } finally {
      for (const [k, v] of Object.entries(previous)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
