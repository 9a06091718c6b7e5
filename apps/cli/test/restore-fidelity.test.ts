/**
 * Acceptance (issue 14): a tree with extended attributes (user.*, security.capability), a POSIX ACL, a FIFO,
 * a device node, a socket, a 200 MiB sparse file with two 4 KiB islands and hard links is backed up and
 * restored by the `kiwi` CLI as root; getfattr, getfacl, stat and du agree between source and restore.
 * Needs root and Linux, with attr, acl and libcap2-bin installed (scripts/test-all.mjs installs them; under
 * CI=true a missing one fails the test).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { chmod, link, mkdir, open, readdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { runKiwi, tempDir, removeDir } from './helpers.js';

const ci = process.env.CI === 'true';
const linux = process.platform === 'linux';
const root = process.getuid?.() === 0;
const TOOLS = ['getfattr', 'setfattr', 'getfacl', 'setfacl', 'setcap', 'getcap', 'mknod', 'mkfifo', 'setpriv'];
const missing = TOOLS.filter((t) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});
const ready = linux && root && missing.length === 0;
if (!ready && !ci) {
  console.warn(`\n*** restore fidelity acceptance skipped: ${!linux ? 'not Linux' : !root ? 'not root' : `missing ${missing.join(', ')} (apt-get install attr acl libcap2-bin)`} ***\n`);
}

/** A command's output in blocks (separated by blank lines), sorted: the order of directory entries may differ. */
function blocks(cmd: string, args: string[], cwd: string): string[] {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8' })
    .split(/\n\s*\n/)
    .map((b) => b.trim())
    .filter(Boolean)
    .sort();
}
function lines(cmd: string, args: string[], cwd: string): string[] {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}
const getfattr = (cwd: string) => blocks('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'], cwd);
const getfacl = (cwd: string) => blocks('getfacl', ['-R', '-P', '.'], cwd);
const stats = (cwd: string) => lines('sh', ['-c', "find . -print0 | xargs -0 stat -c '%n|%F|%a|%u|%g|%s|%t:%T|%h|%.9Y'"], cwd);
const du = (cwd: string) => lines('du', ['-a', '-l', '-B1', '.'], cwd);

describe.runIf(ready || ci)('restore fidelity through the CLI (root)', () => {
  let work: string;
  let src: string;
  let env: NodeJS.ProcessEnv;
  let server: Server;

  beforeAll(async () => {
    if (missing.length > 0) throw new Error(`missing tools: ${missing.join(', ')} (scripts/test-all.mjs installs attr, acl, libcap2-bin)`);
    work = await tempDir('kiwi-cli-fidelity-');
    src = join(work, 'src');
    await mkdir(join(src, 'dir/deeper'), { recursive: true });
    await mkdir(join(src, 'bin'));
    await writeFile(join(src, 'file'), 'with attributes\n');
    execFileSync('setfattr', ['-n', 'user.comment', '-v', 'a comment', join(src, 'file')]);
    execFileSync('setfattr', ['-n', 'user.binary', '-v', '0x00ff10', join(src, 'file')]);
    execFileSync('setfattr', ['-n', 'trusted.kiwi', '-v', 'root only', join(src, 'file')]);
    execFileSync('setfacl', ['-m', 'u:nobody:rw,g:nogroup:r', join(src, 'file')]);
    execFileSync('setfacl', ['-m', 'u:nobody:rwx', '-d', '-m', 'u:nobody:rx', join(src, 'dir')]);
    execFileSync('setfattr', ['-n', 'user.on-dir', '-v', 'd', join(src, 'dir')]);
    await writeFile(join(src, 'dir/deeper/inherits'), 'made under a default ACL\n');
    await writeFile(join(src, 'bin/helper'), '#!/bin/sh\necho helper\n');
    await chmod(join(src, 'bin/helper'), 0o755);
    execFileSync('setcap', ['cap_net_raw,cap_net_admin+ep', join(src, 'bin/helper')]);
    execFileSync('mkfifo', ['-m', '0640', join(src, 'fifo')]);
    execFileSync('mknod', ['-m', '0620', join(src, 'null-dev'), 'c', '1', '3']);
    execFileSync('mknod', ['-m', '0600', join(src, 'loop-dev'), 'b', '7', '5']);
    execFileSync('chown', ['1234:2345', join(src, 'loop-dev'), join(src, 'dir/deeper/inherits')]);
    server = createServer();
    await new Promise<void>((r) => server.listen(join(src, 'socket'), r));
    // 200 MiB with two 4 KiB islands of data.
    const fh = await open(join(src, 'sparse'), 'w');
    await fh.truncate(200 * 1024 * 1024);
    await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 70 * 1024 * 1024);
    await fh.write(Buffer.alloc(4096, 0xa5), 0, 4096, 180 * 1024 * 1024 + 8192);
    await fh.close();
    await link(join(src, 'sparse'), join(src, 'dir/sparse-link'));
    await link(join(src, 'file'), join(src, 'bin/file-link'));
    execFileSync('touch', ['-h', '-d', '2021-05-06 07:08:09.123456789', join(src, 'dir'), join(src, 'fifo'), join(src, 'socket')]);
    env = { KIWI_DATA_DIR: join(work, 'data'), KIWI_REPOSITORY: join(work, 'repo'), KIWI_PASSWORD: 'correct horse' };
    const init = await runKiwi(['init'], { env });
    expect(init.code, init.stderr).toBe(0);
  });
  afterAll(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    await removeDir(work);
  });

  it('backup and restore as root: getfattr, getfacl, stat and du agree', async () => {
    const b = await runKiwi(['backup', src], { env, timeoutMs: 300_000 });
    expect(b.code, b.stderr).toBe(0);
    const target = join(work, 'restore');
    const r = await runKiwi(['restore', 'latest', '--target', target, '--verify'], { env, timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/warning|error|not restored/);
    expect(r.stderr).toMatch(/files verified/);
    const out = join(target, src);
    expect((await readdir(out)).sort()).toEqual((await readdir(src)).sort());
    expect(getfattr(out)).toEqual(getfattr(src));
    expect(getfattr(out).join('\n')).toMatch(/security\.capability=0x/);
    expect(getfattr(out).join('\n')).toMatch(/trusted\.kiwi=/);
    expect(getfacl(out)).toEqual(getfacl(src));
    expect(stats(out)).toEqual(stats(src));
    expect(du(out)).toEqual(du(src));
    const sparseDu = du(out).find((l) => l.endsWith('\t./sparse'))!;
    expect(Number(sparseDu.split('\t')[0])).toBeLessThanOrEqual(16 * 1024);
    expect(execFileSync('getcap', [join(out, 'bin/helper')], { encoding: 'utf8' })).toMatch(/cap_net_admin,cap_net_raw=ep/);
  });

  it('as a user without privileges: devices, trusted.* and capabilities are reported as not restored (exit 3), the rest restored', async () => {
    // A copy of the repository the unprivileged user can read and lock.
    const repo = join(work, 'repo-nobody');
    execFileSync('cp', ['-a', env.KIWI_REPOSITORY!, repo]);
    execFileSync('chmod', ['-R', 'a+rwX', repo]);
    const target = join(work, 'restore-nobody');
    const data = join(work, 'data-nobody');
    await mkdir(target);
    await mkdir(data);
    execFileSync('chown', ['65534:65534', target, data]);
    await chmod(work, 0o755);
    const r = await runKiwi(['restore', 'latest', '--target', target, '--repo', repo, '--json'], {
      env: { ...env, KIWI_DATA_DIR: data },
      asUser: { uid: 65534, gid: 65534 },
      timeoutMs: 300_000,
    });
    expect(r.code, r.stderr + r.stdout).toBe(3);
    const msgs = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const notRestored = msgs.filter((m) => m.not_restored === true).map((m) => String(m.message));
    expect(notRestored.some((m) => m.includes('null-dev') && m.includes('needs root'))).toBe(true);
    expect(notRestored.some((m) => m.includes('loop-dev') && m.includes('needs root'))).toBe(true);
    expect(notRestored.some((m) => m.includes('bin/helper') && m.includes('security.capability'))).toBe(true);
    expect(msgs.filter((m) => m.severity === 'error')).toEqual([]);
    const summary = msgs.find((m) => m.message_type === 'summary')!;
    expect(summary.not_restored).toBe(notRestored.length);
    const out = join(target, src);
    expect(stats(out).filter((l) => l.startsWith('./sparse|'))).toEqual(stats(src).filter((l) => l.startsWith('./sparse|')).map((l) => l.replace('|0|0|', '|65534|65534|')));
    expect(blocks('getfattr', ['-h', '-d', '-m', 'user\\.', 'file'], out)).toEqual(blocks('getfattr', ['-h', '-d', '-m', 'user\\.', 'file'], src));
  });
});
