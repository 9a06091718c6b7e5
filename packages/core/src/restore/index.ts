export { restoreSnapshot, RestoreFileError, safeName, nsToUtimeSeconds, type RestoreOptions, type RestoreResult, type RestoreProgress } from './restore.js';
export { exactTimesAvailable, exactTimesUnavailableReason } from './times.js';
