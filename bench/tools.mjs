// The tools the benchmark compares, each behind the same small interface:
//   available(), setup?(), teardown?(), repo(name) → a handle { name, location, env, args, plainFiles },
//   init(h), backup(h, source, label), restore(h, target), and where the tool has them
//   snapshots(h, label), ls(h, label), maintenance(h) (forget all but the last snapshot, then prune).
// Each named repository ('bench', 'deep', 'scale') is a repository of its own.
import { createRequire } from 'node:module';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { kiwiNodeArgs } from '../scripts/kiwi-node-args.mjs';
import { capture, which } from './measure.mjs';

const PASSWORD = 'kiwi-bench-password';

/** Whether ssh2 (under @kiwi-backup/storage-sftp) has its optional native crypto binding. */
export function ssh2BindingBuilt(root) {
  try {
    const req = createRequire(join(root, 'packages', 'storage-sftp', 'package.json'));
    return existsSync(join(dirname(req.resolve('ssh2/package.json')), 'lib', 'protocol', 'crypto', 'build', 'Release', 'sshcrypto.node'));
  } catch {
    return false;
  }
}

/**
 * @param {{ root: string, base: string, measure: Function, forgetByRm: boolean }} ctx
 */
export function createTools({ root, base, measure, forgetByRm }) {
  const kiwiBin = join(root, 'apps', 'cli', 'dist', 'bin.js');
  // Kiwi runs with the Node options its bin's shebang asks for, as an installed `kiwi` does.
  const kiwiArgv = (argv) => [...kiwiNodeArgs(kiwiBin), kiwiBin, ...argv];
  const kiwiEnv = (t, repository, extra = {}) => ({
    ...process.env,
    KIWI_PASSWORD: PASSWORD,
    KIWI_REPOSITORY: repository,
    KIWI_DATA_DIR: join(base, `${t}-datadir`),
    // Where a metadata cache for remote repositories goes ($XDG_CACHE_HOME/kiwi): fresh for every run.
    XDG_CACHE_HOME: join(base, `${t}-cache`),
    ...extra,
  });

  /** The Kiwi commands, for a local or a remote repository (the handle carries the URL and options). */
  const kiwiOps = (t) => {
    const k = (label, h, argv, opts = {}) => measure(label, process.execPath, kiwiArgv([...argv, ...h.args]), { env: h.env, ...opts });
    return {
      init: (h) => k(`${t} init`, h, ['init']),
      backup: (h, source, label) => k(label, h, ['backup', source, '--quiet']),
      restore: (h, target) => k(`${t} restore`, h, ['restore', 'latest', '--target', target, '--quiet']),
      snapshots: (h, label) => k(label, h, ['snapshots']),
      ls: (h, label) => k(label, h, ['ls', 'latest']),
      /**
       * `kiwi forget --keep-last 1 --prune`; where forget has no --prune yet, `kiwi forget --keep-last 1`
       * then `kiwi prune` (times added, the larger RSS); where there is no forget at all, null, unless
       * --forget-by-rm: then the snapshot files but the latest are deleted directly and `kiwi prune` alone is
       * timed.
       */
      maintenance(h) {
        const label = `${t} forget --keep-last 1 --prune --max-unused 0`;
        const one = k(label, h, ['forget', '--keep-last', '1', '--prune', '--max-unused', '0'], { okCodes: [2] });
        if (one.status === 0) return { ...one, how: 'forget --keep-last 1 --prune --max-unused 0' };
        if (!/unknown command/i.test(one.stderr)) {
          const f = k(`${t} forget --keep-last 1`, h, ['forget', '--keep-last', '1']);
          const p = k(`${t} prune`, h, ['prune', '--max-unused', '0']);
          return { seconds: f.seconds + p.seconds, rssMiB: Math.max(f.rssMiB, p.rssMiB), all: [f.seconds, p.seconds], how: 'forget --keep-last 1, then prune (2 processes)' };
        }
        if (!forgetByRm || !h.plainFiles) return null;
        const snaps = capture(`${t} snapshots --json-lines`, process.execPath, kiwiArgv(['snapshots', '--json-lines', ...h.args]), { env: h.env })
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
          .filter((m) => m.message_type === 'snapshot')
          .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
        for (const s of snaps.slice(0, -1)) rmSync(join(h.location, 'snapshots', s.id));
        const p = k(`${t} prune`, h, ['prune']);
        return { ...p, how: `prune only: no \`kiwi forget\` in this build, ${snaps.length - 1} snapshot file${snaps.length === 2 ? '' : 's'} deleted directly (untimed)` };
      },
      /** Afterwards: the repository checks clean and holds one snapshot. */
      checkAfterMaintenance(h) {
        capture(`${t} check`, process.execPath, kiwiArgv(['check', '--quiet', ...h.args]), { env: h.env });
        const n = capture(`${t} snapshots --json-lines`, process.execPath, kiwiArgv(['snapshots', '--json-lines', ...h.args]), { env: h.env })
          .split('\n')
          .filter((l) => l.includes('"message_type":"snapshot"')).length;
        if (n !== 1) throw new Error(`${t}: ${n} snapshots left after forget --keep-last 1`);
      },
    };
  };

  const tools = {
    kiwi: {
      available: () => existsSync(kiwiBin),
      local: true,
      repo(name) {
        const location = join(base, name === 'bench' ? 'repo-kiwi' : `repo-kiwi-${name}`);
        return { name, location, env: kiwiEnv('kiwi', location), args: [], plainFiles: true };
      },
      ...kiwiOps('kiwi'),
    },
    restic: {
      available: () => Boolean(which('restic')),
      local: true,
      repo(name) {
        const location = join(base, name === 'bench' ? 'repo-restic' : `repo-restic-${name}`);
        return { name, location, env: { ...process.env, RESTIC_PASSWORD: PASSWORD, RESTIC_REPOSITORY: location, RESTIC_CACHE_DIR: join(base, 'restic-cache') }, args: [] };
      },
      init: (h) => measure('restic init', 'restic', ['init', '--repository-version', '2'], { env: h.env }),
      backup: (h, source, label) => measure(label, 'restic', ['backup', '--quiet', source], { env: h.env }),
      restore: (h, target) => measure('restic restore', 'restic', ['restore', 'latest', '--target', target, '--quiet'], { env: h.env }),
      snapshots: (h, label) => measure(label, 'restic', ['snapshots'], { env: h.env }),
      ls: (h, label) => measure(label, 'restic', ['ls', 'latest'], { env: h.env }),
      maintenance: (h) => ({ ...measure('restic forget --keep-last 1 --prune --max-unused 0', 'restic', ['forget', '--keep-last', '1', '--prune', '--max-unused', '0'], { env: h.env }), how: 'forget --keep-last 1 --prune --max-unused 0' }),
    },
    borg: {
      available: () => Boolean(which('borg')),
      local: true,
      repo(name) {
        const location = join(base, name === 'bench' ? 'repo-borg' : `repo-borg-${name}`);
        return { name, location, env: { ...process.env, BORG_PASSPHRASE: PASSWORD, BORG_REPO: location, BORG_BASE_DIR: join(base, 'borg-base'), BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' }, args: [], archives: 0 };
      },
      init: (h) => measure('borg init', 'borg', ['init', '--encryption', 'repokey-blake2'], { env: h.env }),
      backup: (h, source, label) => measure(label, 'borg', ['create', '--compression', 'zstd,3', `::s${++h.archives}`, source], { env: h.env }),
      restore: (h, target) => measure('borg extract', 'borg', ['extract', `::s${h.archives}`], { env: h.env, cwd: target }),
    },
    'kiwi-s3': remoteKiwi('kiwi-s3'),
    'kiwi-sftp': remoteKiwi('kiwi-sftp'),
  };

  /** Kiwi against a loopback S3-compatible server or sshd: the same commands with another repository URL. */
  function remoteKiwi(t) {
    const serversDir = join(root, 'packages', 'test-servers', 'dist');
    let server;
    let configArgs = [];
    let aws = {};
    return {
      available: () => existsSync(kiwiBin) && existsSync(join(serversDir, 's3.js')) && (t === 'kiwi-s3' || existsSync('/usr/sbin/sshd')),
      local: false,
      async setup() {
        if (t === 'kiwi-s3') {
          const { startS3Server } = await import(join(serversDir, 's3.js'));
          server = await startS3Server();
          aws = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
          return;
        }
        const { startSshd } = await import(join(serversDir, 'sshd.js'));
        server = await startSshd();
        const configFile = join(base, 'sftp-config.json');
        await mkdir(join(base, 'kiwi-sftp-datadir'), { recursive: true });
        await writeFile(configFile, JSON.stringify({ storageOptions: { sftp: { privateKey: server.privateKeyPath, knownHostsFile: server.knownHostsPath } } }));
        configArgs = ['--config', configFile];
      },
      async teardown() {
        await server?.stop();
      },
      repo(name) {
        if (t === 'kiwi-s3') {
          const url = `s3:${server.endpoint}/${server.bucket}/${name}`;
          return { name, location: join(server.directory, server.bucket, name), env: kiwiEnv(t, url, aws), args: [] };
        }
        const url = `sftp://${server.username}@${server.host}:${server.port}${server.root}/${name}`;
        return { name, location: join(server.root, name), env: kiwiEnv(t, url), args: configArgs, plainFiles: true };
      },
      ...kiwiOps(t),
    };
  }

  return tools;
}

/** A fresh start for a tool's client-side state (data directory, caches), before its first repository. */
export function resetToolState(base, t) {
  for (const dir of [`${t}-datadir`, `${t}-cache`, ...(t === 'restic' ? ['restic-cache'] : []), ...(t === 'borg' ? ['borg-base'] : [])]) {
    rmSync(join(base, dir), { recursive: true, force: true });
  }
}
