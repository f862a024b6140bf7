import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { recordResult } from '../src/domain/ledger.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * fal's video for a request arrives at the moment its run gives up on it (FAL_TIMEOUT): the
 * video is paid for and must be the run's, whichever commits first. The give-up that commits
 * after the result was recorded finds a video and does not fail (worker/track.ts); the result
 * recorded while the give-up is in flight is taken once it has committed (ledger.recordResult).
 */
const prefix = `lrr${process.pid}`;
let segue: Segue;
beforeAll(() => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix }));
});
afterAll(async () => {
  await segue?.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

describe('a late video racing its run’s give-up', () => {
  it('is taken when it is recorded while the give-up is still in flight', { timeout: 30_000 }, async () => {
    const account = await createTestAccount(segue);
    const noQueue = { ...segue, generationJobs: { enqueue: async () => undefined, removeWaiting: async () => undefined } as never };
    const { transitions } = await createAndGenerate(noQueue, account.id, { transitions: transitionInputs(1) });
    const id = transitions[0]!.id;
    const requestId = `race-${id}`;
    // Running at fal, canceled there after FAL_TIMEOUT, followed in the ledger.
    await segue.sql.query(
      `UPDATE "Transition" SET "status" = 'IN_PROGRESS', "falRequestId" = $2, "attempts" = 1, "version" = "version" + 1 WHERE "id" = $1::uuid`,
      [id, requestId],
    );
    await segue.sql.query(
      `INSERT INTO "FalRequest" ("requestId", "accountId", "transitionId", "run", "attempt", "model", "costUsd", "state", "cancelReason", "cancelRequestedAt")
       VALUES ($1, $2::uuid, $3::uuid, 1, 1, 'fal-ai/kling-video/v2.1/pro/image-to-video', 0.49, 'ACCEPTED', 'FAL_TIMEOUT', now())`,
      [requestId, account.id, id],
    );
    // The run gives up, in a transaction not yet committed (as attemptFailed's write is in flight).
    const giveUp = new pg.Client({ connectionString: segue.config.databaseUrl });
    await giveUp.connect();
    let recording: ReturnType<typeof recordResult> | undefined;
    try {
      await giveUp.query('BEGIN');
      await giveUp.query(
        `UPDATE "Transition" SET "status" = 'FAILED', "errorCode" = 'FAL_TIMEOUT', "errorMessage" = 'gave up', "completedAt" = now(), "version" = "version" + 1
         WHERE "id" = $1::uuid AND "falVideoUrl" IS NULL`,
        [id],
      );
      const pid = Number((await giveUp.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
      // fal's webhook brings the video now: its statement waits for the give-up's row.
      recording = recordResult(segue, requestId, 'https://v3.fal.media/files/race/output.mp4');
      const blocked = until(
        async () =>
          (await segue.sql.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))`, [pid]))[0]!.n !== '0',
        { what: 'the result to wait for the give-up' },
      );
      await Promise.race([blocked, recording.then(() => Promise.reject(new Error('the result did not wait for the give-up')))]);
      await giveUp.query('COMMIT');
      expect(await recording).toMatchObject({ late: true, row: { id, status: 'IN_PROGRESS', falVideoUrl: 'https://v3.fal.media/files/race/output.mp4', errorCode: null } });
    } finally {
      await giveUp.query('ROLLBACK').catch(() => undefined);
      await giveUp.end();
      await recording?.catch(() => undefined);
    }
    const row = await segue.db.transition.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: 'IN_PROGRESS', falVideoUrl: 'https://v3.fal.media/files/race/output.mp4' });
    expect(await segue.db.falRequest.findUniqueOrThrow({ where: { requestId } })).toMatchObject({ state: 'ENDED', outcome: 'OK' });
  });
});
