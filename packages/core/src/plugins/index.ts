export * from './errors.js';
export * from './runtime.js';
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
