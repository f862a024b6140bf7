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
export { createApiKey, listApiKeys, revokeApiKey } from './domain/api-keys.ts';
export { keyRevocations } from './events/credentials.ts';
export { deleteTransitions, deleteAccount } from './domain/deletion.ts';
export { AppError, ERROR_CODES, type ErrorCode } from './domain/errors.ts';
export { startWorker } from './worker/worker.ts';
export { startApiServer } from './http/server.ts';
