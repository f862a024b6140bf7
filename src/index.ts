/**
 * Segue as a library: the same services the API, the worker and the CLI call.
 *
 *   const segue = createSegue(loadConfig());
 *   const rows = await generateNow(segue, accountId, { transitions: [...] });
 */
export { loadConfig, type Config } from './config.ts';
export { createSegue, type Segue } from './runtime.ts';
export { createTransitions, generateBatch, getTransition, getBatch } from './domain/transitions.ts';
export { createAndGenerate, generateNow, cancelTransition, cancelBatch, retryTransition } from './domain/generation.ts';
export { createAccount, listAccounts } from './domain/accounts.ts';
export { AppError, ERROR_CODES, type ErrorCode } from './domain/errors.ts';
export { startWorker } from './worker/worker.ts';
export { startApiServer } from './http/server.ts';
