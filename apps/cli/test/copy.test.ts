/**
 * `kiwi copy` (issue #10, acceptance 5): three snapshots from a local repository into one on an
 * S3-compatible server; they restore exactly there, and a second copy uploads nothing.
 */
import { expect, it, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { describeWithServer, s3ServerAvailable, startS3Server, S3_SERVER_INSTALL_HINT, type S3TestServer } from '@kiwi-backup/test-servers';
import { runKiwi, tempDir, removeDir, makeSampleTree, jsonLines, snapshotTree, bytes, snapshotList } from './helpers.js';

describeWithServer('kiwi copy, local → S3 (s3rver)', s3ServerAvailable(), S3_SERVER_INSTALL_HINT, () => {
  let server: S3TestServer;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let local: string;
  let remote: string;

  beforeAll(async () => {
    server = await startS3Server();
    work = await tempDir('kiwi-cli-copy-');
    local = join(work, 'local-repo');
    remote = `s3:http://127.0.0.1:${server.port}/${server.bucket}/offsite`;
    env = {
      KIWI_DATA_DIR: join(work, 'data'),
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_PROFILE: '',
      AWS_CONFIG_FILE: join(work, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(work, 'no-aws-credentials'),
    };
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await removeDir(work);
  });

  it('copies three snapshots that restore exactly; a second copy uploads nothing; copying a repository into itself is refused', async () => {
    const src = join(work, 'src');
    await makeSampleTree(src);
    const localEnv = { ...env, KIWI_REPOSITORY: local, KIWI_PASSWORD: 'local-pw' };
    expect((await runKiwi(['init'], { env: localEnv })).code).toBe(0);
    const states: Array<Map<string, unknown>> = [];
    for (let i = 0; i < 3; i++) {
      await writeFile(join(src, `gen-${i}.bin`), bytes(300_000, 50 + i));
      const b = await runKiwi(['backup', src], { env: localEnv });
      expect(b.code, b.stderr).toBe(0);
      states.push(await snapshotTree(src));
    }
    const remoteEnv = { ...env, KIWI_REPOSITORY: remote, KIWI_PASSWORD: 'remote-pw', KIWI_FROM_PASSWORD: 'local-pw' };
    const init = await runKiwi(['init', '--copy-chunker-params', '--from-repo', local], { env: remoteEnv });
    expect(init.code, init.stderr).toBe(0);

    const first = await runKiwi(['copy', '--from-repo', local, '--json'], { env: remoteEnv });
    expect(first.code, first.stderr).toBe(0);
    const summary = jsonLines(first.stdout).find((l) => l.message_type === 'summary')!;
    expect(summary.copied).toBe(3);
    expect(summary.same_ids).toBe(true);

    // Each copy restores exactly the state it was taken of (oldest first).
    const list = snapshotList((await runKiwi(['snapshots', '--json'], { env: remoteEnv })).stdout);
    const ids = list.sort((a, b) => String(a.time).localeCompare(String(b.time))).map((l) => String(l.id));
    expect(ids).toHaveLength(3);
    for (const [i, id] of ids.entries()) {
      const target = join(work, `restore-${i}`);
      const r = await runKiwi(['restore', id.slice(0, 12), '--target', target], { env: remoteEnv });
      expect(r.code, r.stderr).toBe(0);
      expect(await snapshotTree(join(target, src))).toEqual(states[i]);
    }
    expect((await runKiwi(['check', '--read-data'], { env: remoteEnv })).code).toBe(0);

    const second = await runKiwi(['copy', '--from-repo', local, '--json'], { env: remoteEnv });
    expect(second.code, second.stderr).toBe(0);
    const again = jsonLines(second.stdout).find((l) => l.message_type === 'summary')!;
    expect(again).toMatchObject({ copied: 0, skipped: 3, blobs_stored: 0, bytes_stored: 0 });

    const self = await runKiwi(['copy', '--from-repo', local], { env: { ...localEnv, KIWI_FROM_PASSWORD: 'local-pw' } });
    expect(self.code).toBe(2);
    expect(self.stderr).toMatch(/is this repository itself/);
    expect(self.stderr).not.toMatch(/\n\s+at /);

    // A missing source or a wrong password for it: the message is about --from-repo, not this repository.
    const missing = join(work, 'no-such-repo');
    const none = await runKiwi(['copy', '--from-repo', missing], { env: { ...localEnv, KIWI_FROM_PASSWORD: 'local-pw' } });
    expect(none.code, none.stderr).toBe(10);
    expect(none.stderr).toContain(`--from-repo: no repository at ${missing}`);
    const wrong = await runKiwi(['copy', '-r', remote, '--from-repo', local], { env: { ...env, KIWI_PASSWORD: 'remote-pw', KIWI_FROM_PASSWORD: 'not-it' } });
    expect(wrong.code, wrong.stderr).toBe(12);
    expect(wrong.stderr).toMatch(/--from-repo .*wrong password/);
  });
});
