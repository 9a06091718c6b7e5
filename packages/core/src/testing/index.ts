/**
 * `@kiwi-backup/core/testing`: test plug-ins on Kiwi's real plug-in runtime.
 * No test-runner dependency: use it from Vitest, Jest, `node:test` or a plain script.
 */
export {
  runBackupWithPlugins,
  loadTestPlugins,
  instantiatePlugin,
  type PluginUnderTest,
  type LoadTestPluginsOptions,
  type RunBackupWithPluginsOptions,
  type TestBackupBody,
  type PluginTestRun,
  type AddedFile,
  type TestFileDecision,
} from './harness.js';
export {
  memoryLogger,
  fakeFileEntry,
  fakeBackupInfo,
  emptyBackupStats,
  readContent,
  type LogEntry,
  type MemoryLogger,
  type FakeBackupFields,
} from './fakes.js';
export { BackupAbortedError, PluginError } from '../plugins/errors.js';
export { BackupInterruptedError } from '../backup/backup.js';
export { PluginRuntime, type InlinePlugin } from '../plugins/runtime.js';
export { comparableMtime } from './times.js';
export {
  HostileRepo,
  zstdBomb,
  treeJson,
  fileNode,
  dirNode,
  type HostileBlob,
  type WrittenPack,
} from './hostile.js';
