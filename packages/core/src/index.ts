export * from './storage/types.js';
export * from './storage/errors.js';
export * from './middleware/compose.js';
export * from './plugins/types.js';
export * from './chunker/index.js';
