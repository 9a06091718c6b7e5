/**
 * The programs mysql-state starts (the stop/start commands of `service` mode, the dump tool) never see
 * Kiwi's secrets: their output goes to Kiwi's log. They once inherited the whole environment,
 * KIWI_PASSWORD included.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET_ENV_VARS } from '@kiwi-backup/core';
import { memoryLogger } from '@kiwi-backup/core/testing';
import { runCommand } from '../src/command.js';
import { dumpDatabase } from '../src/dump.js';

let dir: string;
const saved: Record<string, string | undefined> = {};
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiwi-mysql-env-'));
  for (const name of [...SECRET_ENV_VARS, 'KIWI_TEST_PLAIN']) saved[name] = process.env[name];
  for (const name of SECRET_ENV_VARS) process.env[name] = `secret-of-${name}`;
  process.env.KIWI_TEST_PLAIN = 'plain-value';
});
afterAll(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await rm(dir, { recursive: true, force: true });
});

describe.runIf(process.platform !== 'win32')('child processes of mysql-state', () => {
  it('a stop/start command gets the environment without the secrets', async () => {
    const logger = memoryLogger();
    await runCommand('env', 10_000, logger);
    await runCommand(['env'], 10_000, logger);
    const logged = logger.entries.map((e) => e.message).join('\n');
    expect(logged).toContain('env: KIWI_TEST_PLAIN=plain-value');
    for (const name of SECRET_ENV_VARS) expect(logged, name).not.toContain(`secret-of-${name}`);
  });

  it('the dump tool gets the environment without the secrets', async () => {
    const tool = join(dir, 'fake-dump');
    await writeFile(tool, '#!/bin/sh\nenv\n');
    await chmod(tool, 0o755);
    const chunks: Buffer[] = [];
    const dump = dumpDatabase({ socket: '/nonexistent.sock', user: 'u', password: 'db-pw' }, 'app', { tool, args: [], signal: new AbortController().signal });
    for await (const chunk of dump) chunks.push(chunk);
    const out = Buffer.concat(chunks).toString('utf8');
    expect(out).toContain('KIWI_TEST_PLAIN=plain-value');
    for (const name of SECRET_ENV_VARS) expect(out, name).not.toContain(`secret-of-${name}`);
    expect(out).not.toContain('db-pw');
  });
});
