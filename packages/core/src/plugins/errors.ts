import type { HookName } from './types.js';

/** Where a plug-in failed: one of the hooks, or while loading it. */
export type PluginPhase = HookName | 'load';

function causeMessage(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  if (typeof cause === 'string') return cause;
  try {
    return JSON.stringify(cause) ?? String(cause);
  } catch {
    return String(cause);
  }
}

/**
 * An error thrown by (or while loading) a plug-in. The message names the plug-in
 * and the hook: `plug-in "x" failed in onBackupStart: <cause message>`.
 */
export class PluginError extends Error {
  readonly plugin: string;
  readonly hook: PluginPhase;
  /** The plug-in's file or folder, when known. */
  readonly path: string | undefined;
  constructor(plugin: string, hook: PluginPhase, cause: unknown, options: { path?: string; message?: string } = {}) {
    const base =
      options.message ??
      (hook === 'load'
        ? `plug-in "${plugin}"${options.path ? ` (${options.path})` : ''} failed to load: ${causeMessage(cause)}`
        : `plug-in "${plugin}" failed in ${hook}: ${causeMessage(cause)}`);
    super(base, cause === undefined ? undefined : { cause });
    this.name = 'PluginError';
    this.plugin = plugin;
    this.hook = hook;
    this.path = options.path;
  }
}

/**
 * Thrown by `ctx.abort(reason)`: the backup stops with status `aborted`.
 * Passes through the hook chains unwrapped.
 */
export class BackupAbortedError extends Error {
  readonly reason: string;
  /** The plug-in that aborted, if a plug-in did. */
  readonly plugin: string | undefined;
  readonly hook: HookName | undefined;
  constructor(reason: string, plugin?: string, hook?: HookName) {
    super(plugin ? `backup aborted by plug-in "${plugin}"${hook ? ` in ${hook}` : ''}: ${reason}` : `backup aborted: ${reason}`);
    this.name = 'BackupAbortedError';
    this.reason = reason;
    this.plugin = plugin;
    this.hook = hook;
  }
}
