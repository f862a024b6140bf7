import { randomBytes } from 'node:crypto';
import { UnrecoverableError, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTransitions } from '../src/domain/transitions.ts';
import { MEDIA_QUEUE, mediaJobId } from '../src/queue/media-queue.ts';
import { Reconciler } from '../src/queue/reconciler.ts';
import { createRedis } from '../src/redis.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * The reconciler gives a stored video whose poster job was lost (a Redis wipe, a worker that died
 * between the video and its poster) a poster job, a minute after it completed. Posters that
 * failed for good stay failed, and must not keep it from the ones it is there for.
 */
let segue: Segue;
const prefix = `recposters${randomBytes(3).toString('hex')}`;
beforeAll(() => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix }));
});
afterAll(async () => {
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

/** `n` transitions COMPLETED `agoMs` ago with a stored video and no poster. */
async function completedWithoutPoster(n: number, agoMs: number) {
  const account = await createTestAccount(segue);
  const ids: string[] = [];
  for (let i = 0; i < n; i += 100) {
    const { transitions } = await createTransitions(segue, account.id, { transitions: transitionInputs(Math.min(100, n - i)) });
    ids.push(...transitions.map((t) => t.id));
  }
  await segue.sql.query(
    `UPDATE "Transition" SET "status" = 'COMPLETED', "run" = 1, "videoKey" = 'videos/' || "id" || '.mp4',
       "completedAt" = (now() AT TIME ZONE 'UTC') - $2::int * interval '1 millisecond'
     WHERE "id" = ANY($1::uuid[])`,
    [ids, agoMs],
  );
  return ids;
}

describe('reconciler: posters', () => {
  it('finds a lost poster job behind a thousand posters that failed for good', { timeout: 120_000 }, async () => {
    // A thousand older videos whose posters failed every attempt (their jobs are kept, failed).
    const failedForGood = await completedWithoutPoster(1_000, 3_600_000);
    const queue = segue.mediaJobs.queue;
    await queue.addBulk(failedForGood.map((id) => {
      const data = { kind: 'poster' as const, transitionId: id, run: 1 };
      return { name: 'poster', data, opts: { jobId: mediaJobId(data), attempts: 1 } };
    }));
    const connection = createRedis(segue.config.redis, 'worker');
    const failing = new Worker(MEDIA_QUEUE, async () => {
      throw new UnrecoverableError('the video cannot be decoded');
    }, { connection, prefix: segue.config.queuePrefix, concurrency: 50 });
    try {
      await until(async () => (await queue.getFailedCount()) === 1_000, { timeoutMs: 60_000, what: 'the thousand posters failed' });
    } finally {
      await failing.close();
      connection.disconnect();
    }
    // A newer video whose poster job was lost, just past the minute the reconciler leaves it.
    const [lost] = await completedWithoutPoster(1, 61_000);

    const report = await new Reconciler(segue).run();
    expect(report.mediaRequeued).toBeGreaterThanOrEqual(1);
    const job = await queue.getJob(mediaJobId({ kind: 'poster', transitionId: lost!, run: 1 }));
    expect(job?.data).toEqual({ kind: 'poster', transitionId: lost, run: 1 });
    // The failed ones stay failed: not run again by the reconciler.
    expect(await queue.getFailedCount()).toBe(1_000);
  });
});
