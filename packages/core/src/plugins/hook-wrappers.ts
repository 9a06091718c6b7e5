/**
 * How each plug-in's hooks are wrapped for the chains: errors attributed to the right plug-in, a
 * second `next()` refused, and (with a {@link HandOverCheck}) what the plug-in handed over checked.
 */
import type { Middleware, Next } from '../middleware/compose.js';
import { BackupAbortedError, PluginError } from './errors.js';
import type { HandOverCheck } from './hand-over.js';
import type { LoadedPlugin } from './loader.js';
import type { HookName } from './types.js';

/** A rejected promise already marked handled: the hook fails with `err` even if the plug-in does not await it. */
function handledRejection(err: unknown): Promise<never> {
  const rejected = Promise.reject(err);
  rejected.catch(() => {});
  return rejected;
}

const CALLED_TWICE = 'next() called multiple times';

/**
 * How each plug-in's hook is wrapped: attribution of errors to the right plug-in. With `handOver`,
 * what the plug-in left for the engine is checked when it calls `next()` (before the rest of the chain
 * and, in onBackupStart, the backup itself run) and, with `onReturn`, when its hook returns: the first
 * check that fails is the plug-in's doing (every plug-in before it passed the same check), and fails
 * its hook with its name, whether or not it awaited `next()`.
 */
export function wrapHook<C>(
  plugin: LoadedPlugin,
  hook: HookName,
  fn: (ctx: C, next: Next) => unknown,
  view: C,
  requireNext: boolean,
  aborted?: () => BackupAbortedError | undefined,
  handOver?: HandOverCheck,
): Middleware<unknown> {
  const { name, path } = plugin;
  return (_shared, next) => {
    let called = false;
    let downstreamFailed = false;
    let downstreamError: unknown;
    /** What {@link handOver} found wrong, once found. */
    let badHandOver: TypeError | undefined;
    const handedOverOk = (): boolean => {
      if (handOver && badHandOver === undefined) {
        const problem = handOver.check();
        if (problem !== undefined) badHandOver = new TypeError(problem);
      }
      return badHandOver === undefined;
    };
    /** A second next(): the hook fails with it, whether or not the plug-in awaited that call. */
    let calledTwice: Error | undefined;
    const guardedNext: Next = () => {
      // (Without an await, a plain rejection would escape every handler and stop the process.)
      if (called) return handledRejection((calledTwice ??= new Error(CALLED_TWICE)));
      called = true;
      if (!handedOverOk()) return handledRejection(badHandOver);
      return next().then(undefined, (e: unknown) => {
        downstreamFailed = true;
        downstreamError = e;
        throw e;
      });
    };
    const attribute = (e: unknown): unknown => {
      if (badHandOver !== undefined) return new PluginError(name, hook, badHandOver, { path });
      if (downstreamFailed && e === downstreamError) return e; // not ours: passes through as is
      if (e instanceof BackupAbortedError) return e;
      return new PluginError(name, hook, e, { path });
    };
    let result: unknown;
    try {
      result = fn(view, guardedNext);
    } catch (e) {
      return Promise.reject(attribute(e));
    }
    return Promise.resolve(result).then(
      () => {
        if ((handOver?.onReturn === true && !handedOverOk()) || badHandOver !== undefined) throw new PluginError(name, hook, badHandOver, { path });
        if (calledTwice) throw new PluginError(name, hook, calledTwice, { path });
        if (requireNext && !called) {
          // It aborted (and caught its own throw): report the abort, not a missing next().
          const abortError = aborted?.();
          if (abortError) throw abortError;
          throw new PluginError(name, hook, undefined, {
            path,
            message: `plug-in "${name}" failed in ${hook}: it returned without calling next(), so the backup would not run (use ctx.abort(reason) to stop a backup)`,
          });
        }
      },
      (e: unknown) => {
        throw attribute(e);
      },
    );
  };
}

/** onBackupStop wrapping: never rejects; collects errors; always continues the chain. */
export function wrapStopHook<C>(plugin: LoadedPlugin, fn: (ctx: C, next: Next) => unknown, view: C, errors: Error[]): Middleware<unknown> {
  const { name, path } = plugin;
  return async (_shared, next) => {
    let called = false;
    /** A second next(): the hook fails with it, whether or not the plug-in awaited that call. */
    let calledTwice: Error | undefined;
    const guardedNext: Next = () => {
      if (called) return handledRejection((calledTwice ??= new Error(CALLED_TWICE)));
      called = true;
      return next(); // never rejects: downstream wrappers collect their errors
    };
    let thrown: unknown;
    try {
      await fn(view, guardedNext);
    } catch (e) {
      thrown = e;
      errors.push(e instanceof BackupAbortedError ? e : new PluginError(name, 'onBackupStop', e, { path }));
    }
    // A second next() it did not await (one it awaited threw above) is its error too.
    if (calledTwice && thrown !== calledTwice) errors.push(new PluginError(name, 'onBackupStop', calledTwice, { path }));
    if (!called) {
      called = true;
      await next();
    }
  };
}
