export * from './errors.js';
export * from './runtime.js';
export {
  RecoveryJournal,
  recoveryDir,
  describeEntry,
  entryOwnerRunning,
  type RecoveryApi,
  type RecoveryHandle,
  type RecoveryEntry,
  type RecoveryOutcome,
  type UndoHandler,
  type UndoContext,
} from './recovery.js';
export { suggestHookName, looksLikeHook, isHookName } from './hooknames.js';
export {
  listDataDirPlugins,
  discoverPlugins,
  resolvePluginFolder,
  type PluginInfo,
  type PluginSource,
  type DisabledPluginInfo,
} from './loader.js';
export * from './builtin/excludes.js';
