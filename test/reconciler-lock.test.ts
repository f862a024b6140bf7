import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reconciler } from '../src/queue/reconciler.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { testConfig } from './helpers/app.ts';
import { holdTransaction } from './helpers/held-transaction.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';

/**
 * One reconciler pass at a time across the workers: a Redis lock, taken for the pass interval (at
 * least 5 s), and kept while a longer pass runs.
 */
let segue: Segue;
const prefix = `reclock${randomBytes(3).toString('hex')}`;
beforeAll(() => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix, RECONCILE_INTERVAL_MS: '100' }));
});
afterAll(async () => {
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

describe('reconciler: the pass lock', () => {
  it('is kept while a pass outlasts it (a sweep waiting on PostgreSQL), so no other worker starts one beside it, and let go when the pass ends', { timeout: 30_000 }, async () => {
    const lock = `${prefix}:reconciler:lock`;
    const redis = segue.generationJobs.redis;
    // Another session holds the idempotency keys' table: the pass's sweep of them waits.
    const held = await holdTransaction(segue.config.databaseUrl);
    let pass: ReturnType<Reconciler['runIfLeader']> | undefined;
    try {
      await held.query('LOCK TABLE "IdempotencyKey" IN ACCESS EXCLUSIVE MODE');
      pass = new Reconciler(segue).runIfLeader();
      await held.blocks(pass, 'the idempotency keys sweep');
      // Past the lock's 5 s.
      await new Promise((r) => setTimeout(r, 6_500));
      expect(await redis.get(lock)).not.toBeNull();
      expect(await new Reconciler(segue).runIfLeader()).toBeNull();
      await held.commit();
      const report = await pass;
      expect(report?.failedSweeps).toEqual([]);
      expect(await redis.get(lock)).toBeNull();
    } finally {
      // The rollback lets a pass still waiting go on; it ends before the file closes Redis.
      await held.end();
      await pass?.catch(() => undefined);
    }
  });
});
