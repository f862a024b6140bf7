import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordResult } from '../src/domain/ledger.ts';
import { changeTransition, loadTransition } from '../src/domain/state-machine.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import { closeRedis, createRedis, type RedisClient } from '../src/redis.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { Wakeups, type Watch } from '../src/worker/wakeups.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * A tracker woken by a change made elsewhere (a webhook's result, a cancel) learns the new row
 * from the change's own message, which carries the columns it wrote, instead of reading it again.
 */
let segue: Segue;
let subscriber: RedisClient;
let wakeups: Wakeups;
const prefix = `wake${randomBytes(3).toString('hex')}`;
beforeAll(async () => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix }));
  subscriber = createRedis(segue.config.redis, 'subscriber');
  wakeups = new Wakeups(subscriber, segue.topics);
  await wakeups.start();
});
afterAll(async () => {
  await wakeups.stop();
  await closeRedis(subscriber);
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

/** A QUEUED transition whose changes this test makes itself, as a worker and a webhook would. */
async function queuedRow(): Promise<Transition> {
  const account = await createTestAccount(segue);
  const noQueue = { ...segue, generationJobs: { enqueue: async () => undefined } as never };
  const { transitions } = await createTransitions(noQueue, account.id, { transitions: transitionInputs(1), generate: true });
  return (await loadTransition(segue, transitions[0]!.id))!;
}

/** Until the watch has heard the change that made `version`. */
const heard = (watch: Watch, version: number) =>
  until(async () => (await watch.sleep(20, version - 1)) !== 'timeout', { what: `the change to version ${version}` });

describe('Wakeups.rowAfter', () => {
  it('gives exactly the row PostgreSQL holds after the changes heard: claim, progress and a result recorded elsewhere', async () => {
    const row = await queuedRow();
    const watch = wakeups.watch(row.id);
    try {
      const requestId = `req-${randomBytes(4).toString('hex')}`;
      await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date(), falRequestId: requestId }, { from: ['QUEUED'] });
      await changeTransition(segue, row, 'IN_PROGRESS', { startedAt: 'now-if-null', queuePosition: null }, { falRequestId: requestId });
      const recorded = await recordResult(segue, requestId, 'https://v3.fal.media/files/result.mp4');
      expect(recorded!.version).toBe(row.version + 3);
      await heard(watch, recorded!.version);

      const rebuilt = watch.rowAfter(row);
      expect(rebuilt).toEqual(await loadTransition(segue, row.id));
      expect(rebuilt).toMatchObject({ status: 'IN_PROGRESS', falVideoUrl: 'https://v3.fal.media/files/result.mp4', falRequestId: requestId, attempts: 1 });
      expect(rebuilt!.startedAt).toBeInstanceOf(Date);
      // Nothing newer since: the caller keeps what it has.
      expect(watch.rowAfter(rebuilt!)).toBeNull();
    } finally {
      watch.close();
    }
  });

  it('is null when a change in between was not heard: the caller reads the row', async () => {
    const row = await queuedRow();
    const requestId = `req-${randomBytes(4).toString('hex')}`;
    // Made, and delivered to this process, before the watch began: never heard by it.
    const earlier = wakeups.watch(row.id);
    const submitted = await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date(), falRequestId: requestId }, { from: ['QUEUED'] });
    await heard(earlier, submitted!.version);
    earlier.close();
    const watch = wakeups.watch(row.id);
    try {
      const canceled = await changeTransition(segue, row, 'CANCELED', { completedAt: new Date() });
      await heard(watch, canceled!.version);
      expect(watch.rowAfter(row)).toBeNull();
      // From the row one version older (as a tracker that had read it), the change heard is enough.
      expect(watch.rowAfter(submitted!)).toEqual(await loadTransition(segue, row.id));
    } finally {
      watch.close();
    }
  });
});
