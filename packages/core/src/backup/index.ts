export { runBackup, BackupInterruptedError, PROGRAM_VERSION, type BackupOptions, type BackupResult, type ErrorWithBackupResult } from './backup.js';
export type { EngineRepository, EntryError, ProgressFn } from './types.js';
