/**
 * The HTTP edge's shared pieces without the server behind them: bearer-token checks and the HTTP error family. Other
 * layers that run an HTTP API of their own (the fleet's) import this entry, so they do not load the inference
 * server's services, schedulers, metrics and capture (about 20 MB of a process's RSS).
 */
export { BearerAuth, readTokenFile } from './auth.js';
export { CALLER_FAULTS, HttpError, type HttpErrorCode } from './status.js';
