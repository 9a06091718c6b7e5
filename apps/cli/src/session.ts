import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Repository,
  RepositoryNotFoundError,
  PluginRuntime,
  loadConfig,
  openStorage,
  resolveDataDir,
  defaultRepositoryPath,
  defaultPasswordFilePath,
  resolveCacheDir,
  parseRepositoryUrl,
  createLogger,
  type Storage,
  type StorageAdapter,
  type Logger,
  type KiwiConfig,
  type RetryInfo,
  type RepositoryOptions,
} from '@kiwi-backup/core';
import { writeKeyHint } from './key-prefetch.js';
import { Output } from './output.js';
import { CliError, ExitCode, UsageError } from './exit-codes.js';
import { exitCodeFor } from './errors.js';
import { fileExists, generatePasswordFile, promptPassword, readPasswordFile, runPasswordCommand, type PasswordSource } from './password.js';
import type { GlobalArgs } from './args.js';
import { stringArg } from './args.js';
import { maskUrl } from './format.js';

/** The built-in storage adapters, loaded only when their scheme is used. */
const BUILTIN_ADAPTERS: Record<string, () => Promise<StorageAdapter>> = {
  local: async () => (await import('@kiwi-backup/storage-local')).localAdapter as StorageAdapter,
  s3: async () => (await import('@kiwi-backup/storage-s3')).s3Adapter as unknown as StorageAdapter,
  sftp: async () => (await import('@kiwi-backup/storage-sftp')).sftpAdapter as unknown as StorageAdapter,
};

/** The official plug-ins ship with the CLI: a data-directory folder of that name (e.g. holding only scripts) uses them. */
const BUILTIN_PLUGINS: Record<string, string> = Object.fromEntries(
  [
    ['script-launcher', '@kiwi-backup/plugin-script-launcher'],
    ['mysql-state', '@kiwi-backup/plugin-mysql-state'],
    ['notify', '@kiwi-backup/plugin-notify'],
  ].flatMap(([name, spec]) => {
    try {
      return [[name!, fileURLToPath(import.meta.resolve(spec!))]];
    } catch {
      return [];
    }
  }),
);

/**
 * Everything a command needs: output, data directory, config, the repository location and password.
 * Created once per command run; `close()` releases what was opened.
 */
export class Session {
  readonly out: Output;
  readonly env: NodeJS.ProcessEnv;
  readonly dataDir: string;
  readonly config: KiwiConfig;
  readonly configPath: string | undefined;
  readonly repoUrl: string;
  /** True when no repository was named: the default one in the data directory is used. */
  readonly isDefaultRepo: boolean;
  readonly log: Logger;
  private readonly args: GlobalArgs;
  private storageInstance: Storage | undefined;
  private repository: Repository | undefined;
  private readonly cleanups: Array<() => Promise<void>> = [];

  private constructor(init: {
    args: GlobalArgs;
    out: Output;
    env: NodeJS.ProcessEnv;
    dataDir: string;
    config: KiwiConfig;
    configPath: string | undefined;
    repoUrl: string;
    isDefaultRepo: boolean;
    log: Logger;
  }) {
    this.args = init.args;
    this.out = init.out;
    this.env = init.env;
    this.dataDir = init.dataDir;
    this.config = init.config;
    this.configPath = init.configPath;
    this.repoUrl = init.repoUrl;
    this.isDefaultRepo = init.isDefaultRepo;
    this.log = init.log;
  }

  static async create(args: GlobalArgs, env: NodeJS.ProcessEnv = process.env): Promise<Session> {
    const out = new Output({ json: Boolean(args.json), quiet: Boolean(args.quiet), verbose: Boolean(args.verbose) });
    const dataDir = resolveDataDir(env);
    const loaded = await loadConfig(stringArg(args.config), { dataDir });
    const config = loaded.config;
    const explicit = stringArg(args.repo) ?? env.KIWI_REPOSITORY ?? config.repository;
    const repoUrl = explicit ?? defaultRepositoryPath(dataDir);
    const log = createLogger({
      level: args.verbose ? 'debug' : args.quiet ? 'error' : 'info',
      sink: (event) => {
        const { level, scope, message, data } = event;
        if (out.json) {
          if (level === 'debug' && !args.verbose) return;
          out.emit('log', { level, scope, message, ...(data ? { data } : {}) });
          return;
        }
        const line = `${scope ? `[${scope}] ` : ''}${message}`;
        if (level === 'error') out.error(line);
        else if (level === 'warn') out.warn(line);
        else if (level === 'debug') out.debug(line);
        else out.info(line);
      },
    });
    return new Session({
      args,
      out,
      env,
      dataDir,
      config,
      configPath: loaded.exists ? loaded.path : undefined,
      repoUrl,
      isDefaultRepo: explicit === undefined,
      log,
    });
  }

  /**
   * A session of its own on `repository` (a daemon job's), or on this session's repository when undefined
   * (`--repo`, `KIWI_REPOSITORY`, the config's, else the default one), sharing this session's output, config
   * and log. Close it after use; this one stays open.
   */
  forRepository(repository: string | undefined): Session {
    return new Session({
      args: { ...this.args, ...(repository !== undefined ? { repo: repository } : {}) },
      out: this.out,
      env: this.env,
      dataDir: this.dataDir,
      config: this.config,
      configPath: this.configPath,
      repoUrl: repository ?? this.repoUrl,
      isDefaultRepo: repository === undefined && this.isDefaultRepo,
      log: this.log,
    });
  }

  /** The storage behind the repository URL (built-in adapters, or custom ones named in the config). */
  async storage(): Promise<Storage> {
    if (this.storageInstance) return this.storageInstance;
    this.storageInstance = await this.storageAt(this.repoUrl);
    return this.storageInstance;
  }

  /** Open the storage of any repository URL; it is closed with the session. */
  async storageAt(url: string): Promise<Storage> {
    const { scheme } = parseRepositoryUrl(url);
    const adapters: Record<string, StorageAdapter | string> = {};
    const custom = this.config.storage ?? {};
    // Own keys only: a scheme such as `constructor:` must not find Object.prototype's members.
    if (Object.hasOwn(custom, scheme)) {
      adapters[scheme] = custom[scheme]!;
    } else if (Object.hasOwn(BUILTIN_ADAPTERS, scheme)) {
      adapters[scheme] = await BUILTIN_ADAPTERS[scheme]!();
    } else {
      const known = [...Object.keys(BUILTIN_ADAPTERS), ...Object.keys(custom)].join(', ');
      throw new UsageError(`no storage adapter for "${scheme}:" repositories (known: ${known}); name one in the config under "storage"`);
    }
    let storage: Storage;
    try {
      storage = await openStorage(url, {
        adapters,
        options: this.storageOptions(scheme, !Object.hasOwn(custom, scheme)),
        env: this.env,
        cwd: this.configPath ? resolve(this.configPath, '..') : process.cwd(),
        onRetry: (info: RetryInfo) =>
          this.log.warn(`storage ${info.operation} ${info.target} failed (${info.error}); retry ${info.attempt} in ${Math.round(info.delayMs)} ms`),
      });
    } catch (err) {
      // Adapters check the URL and their options when opened (no I/O yet): a TypeError or RangeError
      // there is a mistake in the URL or the config, a usage error (exit 2).
      const name = (err as Error | null)?.name;
      if (name === 'TypeError' || name === 'RangeError') throw new UsageError((err as Error).message);
      throw err;
    }
    this.cleanups.push(() => storage.close());
    return storage;
  }

  /**
   * The config's options per scheme; the built-in adapters also get a way to warn through the
   * command's output (SFTP: a private key others can read; all three: a repository entry that
   * does not belong, skipped by a listing).
   */
  private storageOptions(scheme: string, builtin: boolean): Record<string, Record<string, unknown>> {
    const options = { ...(this.config.storageOptions ?? {}) };
    if (builtin && (scheme === 'sftp' || scheme === 'local' || scheme === 's3')) {
      options[scheme] = { ...options[scheme], onWarning: (message: string) => this.out.warn(message) };
    }
    return options;
  }

  /**
   * The other repository of `copy` and `init --copy-chunker-params` (`--from-repo`), with its
   * password from `--from-password-file`, $KIWI_FROM_PASSWORD, $KIWI_FROM_PASSWORD_FILE, or a prompt.
   */
  async openFromRepository(url: string, passwordFile: string | undefined, options: Pick<RepositoryOptions, 'lockOptions'> = {}): Promise<Repository> {
    const storage = await this.storageAt(url);
    let password: string;
    const file = passwordFile ?? this.env.KIWI_FROM_PASSWORD_FILE;
    if (this.env.KIWI_FROM_PASSWORD) password = this.env.KIWI_FROM_PASSWORD;
    else if (file) password = await readPasswordFile(file, (message) => this.out.warn(message));
    else if (process.stdin.isTTY) password = await promptPassword(`Password of ${storage.location}: `);
    else throw new UsageError(`no password for the repository ${storage.location}: set KIWI_FROM_PASSWORD, KIWI_FROM_PASSWORD_FILE or --from-password-file`);
    let repo: Repository;
    try {
      repo = await Repository.open(storage, password, { logger: this.repositoryLogger(), ...options });
    } catch (err) {
      // Name the source: the messages would otherwise read as if about this command's repository.
      const name = (err as Error).name;
      if (name === 'RepositoryNotFoundError') throw new CliError(`--from-repo: no repository at ${storage.location}`, ExitCode.RepositoryNotFound, { cause: err });
      if (err instanceof Error && err.name !== 'CliError') throw new CliError(`--from-repo ${storage.location}: ${err.message}`, exitCodeFor(err) as ExitCode, { cause: err });
      throw err;
    }
    this.cleanups.unshift(() => repo.close());
    return repo;
  }

  /**
   * The repository password: $KIWI_PASSWORD, --password-file or --password-command, $KIWI_PASSWORD_FILE or
   * $KIWI_PASSWORD_COMMAND, the config's passwordFile or passwordCommand, the default repository's password file,
   * or a prompt on a TTY. With `creating`, the default repository gets a generated password file when none of these is set.
   */
  async password(opts: { creating?: boolean } = {}): Promise<{ password: string; source: PasswordSource }> {
    if (this.env.KIWI_PASSWORD !== undefined && this.env.KIWI_PASSWORD !== '') {
      return { password: this.env.KIWI_PASSWORD, source: 'env' };
    }
    const flagFile = stringArg(this.args['password-file']);
    const flagCommand = stringArg(this.args['password-command']);
    if (flagFile && flagCommand) throw new UsageError('give either --password-file or --password-command, not both');
    const envFile = this.env.KIWI_PASSWORD_FILE || undefined;
    const envCommand = this.env.KIWI_PASSWORD_COMMAND || undefined;
    const sources: Array<[kind: 'file' | 'command', value: string | undefined, name: string]> = [
      ['file', flagFile, '--password-file'],
      ['command', flagCommand, '--password-command'],
      ['file', envFile, 'KIWI_PASSWORD_FILE'],
      ['command', envCommand, 'KIWI_PASSWORD_COMMAND'],
      ['file', this.config.passwordFile, 'passwordFile'],
      ['command', this.config.passwordCommand, `passwordCommand in ${this.configPath ?? 'the config'}`],
    ];
    const warn = (message: string) => this.out.warn(message);
    for (const [kind, value, name] of sources) {
      if (!value) continue;
      if (kind === 'file') return { password: await readPasswordFile(value, warn), source: 'file' };
      return { password: await runPasswordCommand(value, name), source: 'command' };
    }
    if (this.isDefaultRepo) {
      const passwordFile = defaultPasswordFilePath(this.dataDir);
      if (await fileExists(passwordFile)) return { password: await readPasswordFile(passwordFile, warn), source: 'default-password-file' };
      if (opts.creating) {
        const password = await generatePasswordFile(passwordFile);
        this.out.info(`Created the password file of the default repository: ${passwordFile}`);
        this.out.info('It is the only way to read your backups: keep a copy of it somewhere safe, away from this machine.');
        this.out.emit('status', { action: 'password_file_created', path: passwordFile });
        return { password, source: 'generated' };
      }
    }
    if (process.stdin.isTTY) {
      const password = await promptPassword(opts.creating ? 'New repository password: ' : 'Repository password: ');
      if (opts.creating) {
        const again = await promptPassword('Repeat password: ');
        if (again !== password) throw new UsageError('passwords do not match');
      }
      if (!password) throw new UsageError('empty password');
      return { password, source: 'prompt' };
    }
    throw new UsageError(
      `no password for repository ${this.printableRepo()}: set KIWI_PASSWORD, KIWI_PASSWORD_FILE or --password-file, or KIWI_PASSWORD_COMMAND or --password-command`,
    );
  }

  /** The repository location as it may be printed: no password, no query string (see `maskUrl`). */
  printableRepo(): string {
    return maskUrl(this.storageInstance?.location ?? this.repoUrl);
  }

  /**
   * Open the repository (exit 10 if it does not exist, 12 on a wrong password). `options.lockOptions`:
   * how its locks wait for others (see `--retry-lock`); `options.password` skips the usual sources (the
   * daemon reads each job's password once, at start).
   */
  async openRepository(options: Pick<RepositoryOptions, 'lockOptions'> & { password?: string } = {}): Promise<Repository> {
    if (this.repository) return this.repository;
    const storage = await this.storage();
    const { password: given, ...openOptions } = options;
    let password: string;
    try {
      password = given ?? (await this.password()).password;
    } catch (err) {
      // No password to be had: when there is no repository either, say that first (exit 10).
      if (err instanceof UsageError && !(await this.repositoryExists(storage))) throw new RepositoryNotFoundError(this.printableRepo());
      throw err;
    }
    const cacheDir = this.cacheDir();
    const repo = await Repository.open(storage, password, { logger: this.repositoryLogger(), ...(cacheDir ? { cacheDir } : {}), ...openOptions });
    // For the next command's key prefetch (remote repositories only; see key-prefetch.ts).
    if (cacheDir && repo.keyKdf) writeKeyHint(cacheDir, this.repoUrl, repo.keyKdf);
    this.repository = repo;
    this.cleanups.unshift(() => repo.close());
    return repo;
  }

  /** Create a new repository. */
  async initRepository(opts: { sameChunkerAs?: Repository; password?: string } & Pick<RepositoryOptions, 'lockOptions'> = {}): Promise<Repository> {
    const storage = await this.storage();
    const { password: given, ...initOpts } = opts;
    const password = given ?? (await this.password({ creating: true })).password;
    const repo = await Repository.init(storage, password, { logger: this.repositoryLogger(), ...initOpts });
    this.repository = repo;
    this.cleanups.unshift(() => repo.close());
    return repo;
  }

  /** True when the storage holds a repository (its `config` file); errors other than not-found propagate. */
  private async repositoryExists(storage: Storage): Promise<boolean> {
    try {
      await storage.stat({ type: 'config', name: 'config' });
      return true;
    } catch (err) {
      if (!storage.isNotFound(err)) throw err;
      return false;
    }
  }

  /** Open the repository; the default repository is created on first use. */
  async openOrCreateDefault(options: Pick<RepositoryOptions, 'lockOptions'> = {}): Promise<{ repository: Repository; created: boolean }> {
    if (!this.isDefaultRepo) return { repository: await this.openRepository(options), created: false };
    const storage = await this.storage();
    const exists = await this.repositoryExists(storage);
    if (exists) return { repository: await this.openRepository(options), created: false };
    // (init refuses a location that holds a repository's files without its config.)
    const repository = await this.initRepository(options);
    this.out.info(`Created the default repository at ${this.printableRepo()}`);
    return { repository, created: true };
  }

  /**
   * The metadata cache's base directory: for remote repositories (a local one is its own cache),
   * unless --no-cache; --cache-dir also turns it on for a local repository.
   */
  private cacheDir(): string | undefined {
    if (this.args.cache === false) return undefined;
    const explicit = stringArg(this.args['cache-dir']);
    if (explicit) return resolve(explicit);
    return parseRepositoryUrl(this.repoUrl).scheme === 'local' ? undefined : resolveCacheDir(this.env);
  }

  /** The repository engine's messages (damaged files skipped, stale locks taken over…) go through the command's output. */
  repositoryLogger(): { info(message: string): void; warn(message: string): void } {
    return { info: (m) => this.log.info(m), warn: (m) => this.log.warn(m) };
  }

  async plugins(): Promise<PluginRuntime> {
    return PluginRuntime.load({
      dataDir: this.dataDir,
      config: this.config,
      ...(this.configPath ? { configPath: this.configPath } : {}),
      cwd: process.cwd(),
      logger: this.log,
      // Commands print the warnings themselves (once).
      logWarnings: false,
      builtins: BUILTIN_PLUGINS,
    });
  }

  async close(): Promise<void> {
    for (const fn of this.cleanups.splice(0)) {
      try {
        await fn();
      } catch (err) {
        this.log.warn(`while closing: ${(err as Error).message}`);
      }
    }
  }
}

export function ensureInteractiveOk(): void {
  if (!process.stdin.isTTY) throw new CliError('not a terminal', ExitCode.Usage);
}
