export * from './params.js';
export { deriveGearTable, GEAR_TABLE_LABEL } from './gear.js';
export { Chunker } from './fastcdc.js';
export { BufferPool, sharedBufferPool } from '../buffer-pool.js';
export { chunkFile, chunkStream, type ChunkReadOptions, type ChunkReadStats } from './reader.js';
