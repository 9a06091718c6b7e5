export * from './types.js';
export { WalkEntry, entryType, type WalkEvent, type WalkEnterEvent, type WalkLeaveEvent, type WalkEntryEvent, type WalkErrorEvent } from './entry.js';
export { walk, normalizeSources } from './walk.js';
