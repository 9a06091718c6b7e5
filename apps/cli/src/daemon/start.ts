import type { Session } from '../session.js';
import { CliError, ExitCode, UsageError } from '../exit-codes.js';
import { describeError } from '../output.js';
import { VERSION } from '../version.js';
import { Daemon } from './daemon.js';
import { attachLog, EventBus, now } from './events.js';
import { startApiServer, type ListenAddress } from './http.js';
import { buildJobs } from './jobs.js';
import { retentionEngine } from './retention.js';
import { jobError, jobPassword } from './runner.js';
import type { GracefulStop } from './signals.js';
import { ensureWritableDataDir, loadOrCreateToken } from './token.js';

export interface RunDaemonOptions {
  session: Session;
  stop: GracefulStop;
  listen: ListenAddress;
  verbose: boolean;
}

/**
 * `kiwi daemon`, start to stop:
 * 1. the data directory must be writable (token, history, journal live there), the jobs valid;
 * 2. the plug-ins are loaded once, and what a crash left in the recovery journal is undone first;
 * 3. the token, the jobs' passwords, the API's address (a port in use is exit 2);
 * 4. `onServerStart`, once (a plug-in that throws: exit 2);
 * 5. the scheduler runs until SIGTERM/SIGINT/SIGHUP, then running jobs stop cleanly (exit 0).
 */
export async function runDaemon(opts: RunDaemonOptions): Promise<number> {
  const { session, stop } = opts;
  const out = session.out;
  const bus = new EventBus();
  const detach = attachLog(bus, out, { verbose: opts.verbose });
  try {
    await ensureWritableDataDir(session.dataDir);
    const jobs = buildJobs(session.config, session.configPath, { url: session.repoUrl, isDefault: session.isDefaultRepo });
    if (jobs.length === 0) {
      throw new UsageError(
        `no jobs to run: add "jobs" to the config (${session.configPath ?? `${session.dataDir}/config.json`}), e.g. ` +
          '"jobs": { "home": { "paths": ["/home"], "schedule": "0 2 * * *" } }; see docs/daemon.md',
      );
    }

    const plugins = await session.plugins();
    for (const w of plugins.warnings) out.warn(w);
    // Before anything else: undo what a killed Kiwi left (a stopped database…). Logged as it happens.
    const recovered = await plugins.recover({ signal: stop.signal });
    for (const r of recovered.filter((o) => o.status !== 'skipped')) {
      bus.publish({ type: 'recovery', time: now(), plugin: r.plugin, action: r.action, status: r.status, message: r.message });
    }

    const retention = retentionEngine();
    for (const job of jobs) {
      const noForget = retention.unavailable('forget');
      const noPrune = retention.unavailable('prune');
      if (job.config.forget && noForget) out.warn(`jobs.${job.name}.forget: ${noForget}`);
      if (job.config.prune && noPrune) out.warn(`jobs.${job.name}.prune: not scheduled: ${noPrune}`);
    }

    const { token, created, replaced, path: tokenFile } = await loadOrCreateToken(session.dataDir);
    if (created) out.info(`created the API token in ${tokenFile} (mode 0600)`);
    if (replaced) out.warn(replaced);

    const passwords = new Map<string, string>();
    for (const job of jobs) {
      try {
        passwords.set(job.name, await jobPassword({ session }, job, true));
      } catch (err) {
        throw new CliError(`job "${job.name}": ${jobError({ session }, job, err)}`, ExitCode.Usage, { cause: err });
      }
    }

    const daemon = new Daemon({ session, plugins, jobs, passwords, retention, bus, version: VERSION, recovered });
    const http = await startApiServer(daemon, token, opts.listen);
    try {
      try {
        await plugins.serverStart({ signal: stop.signal });
      } catch (err) {
        throw new CliError(`a plug-in failed at start, so the daemon does not run: ${describeError(err)}`, ExitCode.Usage, { cause: err });
      }
      if (stop.stopping) return 0;
      await daemon.start();
      bus.publish({ type: 'daemon', state: 'started', time: now(), url: http.url, version: VERSION, jobs: jobs.map((j) => j.name) });

      await new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve();
        else stop.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      bus.publish({ type: 'daemon', state: 'stopping', time: now() });
      await daemon.stop(stop.signal.reason);
    } finally {
      await http.close();
    }
    bus.publish({ type: 'daemon', state: 'stopped', time: now() });
    return ExitCode.Ok;
  } finally {
    out.clearProgress();
    detach();
  }
}
