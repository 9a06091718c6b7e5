export { restoreSnapshot, RestoreFileError, safeName, nsToUtimeSeconds, type RestoreOptions, type RestoreResult, type RestoreProgress } from './restore.js';
