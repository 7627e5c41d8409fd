/** The device–fleet contract: see README.md in this folder. Imports nothing of ours, only zod and Node's builtins. */
export * from './errors.js';
export * from './ids.js';
export * from './topics.js';
export * from './job-status.js';
export * from './jobs.js';
export * from './job-document.js';
export * from './limits.js';
export * from './bitmap.js';
export * from './cbor.js';
export * from './streams.js';
export * from './block-index.js';
export * from './device-status.js';
export * from './delivery-index.js';
