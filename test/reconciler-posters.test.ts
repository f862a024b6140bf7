import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UnrecoverableError, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notePosterFailed, postersDueAgain } from '../src/domain/poster-failures.ts';
import { createTransitions, generateBatch } from '../src/domain/transitions.ts';
import { mediaTools, runFfmpeg } from '../src/media/ffmpeg.ts';
import { generationJobId } from '../src/queue/generation-queue.ts';
import { MEDIA_QUEUE, mediaJobId } from '../src/queue/media-queue.ts';
import { Reconciler } from '../src/queue/reconciler.ts';
import { createRedis } from '../src/redis.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { mediaProcessor } from '../src/worker/media-jobs.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * Posters and the reconciler. It gives a stored video whose poster job was lost (a Redis wipe, a
 * worker that died between the video and its poster) a poster job, a minute after it completed.
 * A poster whose job fails its last attempt is noted on its row: the sweep for lost jobs passes
 * it by, and it is tried again once a day for a while.
 */
let segue: Segue;
let dir: string;
const prefix = `recposters${randomBytes(3).toString('hex')}`;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'segue-reconciler-posters-'));
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix, MEDIA_DIR: dir }));
});
afterAll(async () => {
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
  await rm(dir, { recursive: true, force: true });
});

const rowOf = (id: string) => segue.db.transition.findUniqueOrThrow({ where: { id } });
const posterJob = (id: string) => ({ kind: 'poster' as const, transitionId: id, run: 1 });

/** Segue's media job processor on the test's queue (posters, combined videos). */
function mediaWorker() {
  const connection = createRedis(segue.config.redis, 'worker');
  const worker = new Worker(MEDIA_QUEUE, mediaProcessor(segue), { connection, prefix: segue.config.queuePrefix, concurrency: 1 });
  return {
    async close() {
      await worker.close();
      connection.disconnect();
    },
  };
}

/** `n` transitions COMPLETED `agoMs` ago with a video (stored or not, see storeVideo) and no poster. */
async function completedWithoutPoster(n: number, agoMs: number) {
  const account = await createTestAccount(segue);
  const ids: string[] = [];
  for (let i = 0; i < n; i += 100) {
    const { transitions } = await createTransitions(segue, account.id, { transitions: transitionInputs(Math.min(100, n - i)) });
    ids.push(...transitions.map((t) => t.id));
  }
  await segue.sql.query(
    `UPDATE "Transition" SET "status" = 'COMPLETED', "run" = 1, "videoKey" = 'videos/' || "id" || '.mp4',
       "completedAt" = (now() AT TIME ZONE 'UTC') - $2::bigint * interval '1 millisecond'
     WHERE "id" = ANY($1::uuid[])`,
    [ids, agoMs],
  );
  return ids;
}

/** Puts a one-second video where the row's videoKey says (the storage outage is over). */
async function storeVideo(id: string) {
  const video = path.join(dir, `${id}-clip.mp4`);
  await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc2=s=64x64:d=1', '-pix_fmt', 'yuv420p', video], { tools: await mediaTools() });
  await (await segue.media.storage()).put(`videos/${id}.mp4`, video, 'video/mp4');
}

describe('reconciler: posters', () => {
  it('a poster that fails its last attempt is noted on its row, left alone, and tried again a day later', { timeout: 60_000 }, async () => {
    const [id] = await completedWithoutPoster(1, 120_000);
    const data = posterJob(id!);
    const queue = segue.mediaJobs.queue;
    // Its video is not in storage: each render fails. Two attempts, the second 300 ms after the first.
    await queue.add('poster', data, { jobId: mediaJobId(data), attempts: 2, backoff: { type: 'fixed', delay: 300 } });
    const media = mediaWorker();
    try {
      await until(async () => (await queue.getJob(mediaJobId(data)))?.attemptsMade === 1, { what: 'the first attempt failed' });
      expect((await rowOf(id!)).posterFailedAt).toBeNull();
      await until(async () => (await queue.getJob(mediaJobId(data)))?.isFailed(), { what: 'the last attempt failed' });
      const { posterFailedAt } = await rowOf(id!);
      expect(posterFailedAt).toBeInstanceOf(Date);
      // Left alone: the failed job stays as it is, and so does the note.
      await new Reconciler(segue).run();
      expect(await (await queue.getJob(mediaJobId(data)))!.isFailed()).toBe(true);
      expect((await rowOf(id!)).posterFailedAt).toEqual(posterFailedAt);

      // A day later, with the video in storage, the reconciler queues it again, and it is made.
      await segue.sql.query(`UPDATE "Transition" SET "posterFailedAt" = "posterFailedAt" - interval '25 hours' WHERE "id" = $1::uuid`, [id]);
      await storeVideo(id!);
      expect((await new Reconciler(segue).run()).mediaRequeued).toBeGreaterThanOrEqual(1);
      const row = await until(async () => {
        const now = await rowOf(id!);
        return now.posterKey ? now : null;
      }, { what: 'the poster made on the next try' });
      expect(row).toMatchObject({ status: 'COMPLETED', posterFailedAt: null, posterUrl: expect.any(String) });
    } finally {
      await media.close();
    }
  });

  it('a poster made by a retry from the dashboard clears the note', { timeout: 60_000 }, async () => {
    const [id] = await completedWithoutPoster(1, 120_000);
    const data = posterJob(id!);
    const queue = segue.mediaJobs.queue;
    await queue.add('poster', data, { jobId: mediaJobId(data), attempts: 1 });
    const media = mediaWorker();
    try {
      await until(async () => (await rowOf(id!)).posterFailedAt, { what: 'the failure noted' });
      await storeVideo(id!);
      await (await queue.getJob(mediaJobId(data)))!.retry('failed');
      const row = await until(async () => {
        const now = await rowOf(id!);
        return now.posterKey ? now : null;
      }, { what: 'the poster made by the retry' });
      expect(row.posterFailedAt).toBeNull();
    } finally {
      await media.close();
    }
  });

  it('a failed poster is tried again for 30 days after its video completed; a new run starts without the note', async () => {
    const [recent] = await completedWithoutPoster(1, 2 * 86_400_000);
    const [old] = await completedWithoutPoster(1, 31 * 86_400_000);
    for (const id of [recent!, old!]) {
      expect(await notePosterFailed(segue.sql, { id, run: 1 }, new Date(Date.now() - 25 * 3_600_000))).toBe(true);
    }
    const due = (await postersDueAgain(segue.sql, 1_000)).map((d) => d.id);
    expect(due).toContain(recent);
    expect(due).not.toContain(old);

    const { accountId } = await rowOf(recent!);
    await generateBatch(segue, accountId, { transitionIds: [recent] });
    expect(await rowOf(recent!)).toMatchObject({ status: 'QUEUED', run: 2, posterFailedAt: null });
  });

  it('notes a thousand posters that failed for good with no note, and finds the lost poster job beside them', { timeout: 120_000 }, async () => {
    // A thousand older videos whose posters failed every attempt (their jobs are kept, failed),
    // with no note on their rows: the failure did not come from Segue's media worker (here, a
    // bare BullMQ worker), as when a job fails over stalls without running.
    const failedForGood = await completedWithoutPoster(1_000, 3_600_000);
    const queue = segue.mediaJobs.queue;
    const failedBefore = await queue.getFailedCount();
    await queue.addBulk(failedForGood.map((id) => ({ name: 'poster', data: posterJob(id), opts: { jobId: mediaJobId(posterJob(id)), attempts: 1 } })));
    const connection = createRedis(segue.config.redis, 'worker');
    const failing = new Worker(MEDIA_QUEUE, async () => {
      throw new UnrecoverableError('the video cannot be decoded');
    }, { connection, prefix: segue.config.queuePrefix, concurrency: 50 });
    try {
      await until(async () => (await queue.getFailedCount()) === failedBefore + 1_000, { timeoutMs: 60_000, what: 'the thousand posters failed' });
    } finally {
      await failing.close();
      connection.disconnect();
    }
    // A newer video whose poster job was lost, just past the minute the reconciler leaves it.
    const [lost] = await completedWithoutPoster(1, 61_000);

    const report = await new Reconciler(segue).run();
    expect(report.mediaRequeued).toBeGreaterThanOrEqual(1);
    expect((await queue.getJob(mediaJobId(posterJob(lost!))))?.data).toEqual(posterJob(lost!));
    // The failed ones stay failed, now noted (a page of 1,000 a pass: with the lost one, the last
    // is noted by the next pass), and later passes go past them.
    await new Reconciler(segue).run();
    expect(await segue.db.transition.count({ where: { id: { in: failedForGood }, posterFailedAt: { not: null } } })).toBe(1_000);
    expect(await (await queue.getJob(mediaJobId(posterJob(failedForGood[0]!))))!.isFailed()).toBe(true);
  });
});

describe('reconciler: generation jobs', () => {
  it('leaves a queued transition with its job alone, gives one whose job was lost a new one, and replaces a finished job left behind', async () => {
    // Whatever earlier tests left open is settled first: only this test's rows count below.
    await new Reconciler(segue).run();
    const account = await createTestAccount(segue);
    const { transitions } = await createTransitions(segue, account.id, { generate: true, transitions: transitionInputs(3) });
    const queue = segue.generationJobs.queue;
    const jobIds = transitions.map((t) => generationJobId(t.id, t.run));
    for (const id of jobIds) expect(await queue.getJob(id)).toBeDefined();

    // Every job is there (no worker runs here: they wait): nothing to requeue.
    expect((await new Reconciler(segue).run()).requeued).toBe(0);

    // One job lost (a Redis wipe), one left finished while its row is still open (a crash between
    // the two): both rows get a waiting job again, the third is left as it is.
    await queue.remove(jobIds[0]!);
    const client = segue.generationJobs.redis;
    await client.hset(queue.toKey(jobIds[1]!), 'finishedOn', String(Date.now()));
    const report = await new Reconciler(segue).run();
    expect(report.requeued).toBe(2);
    for (const id of jobIds) {
      const job = await queue.getJob(id);
      expect(job?.data).toMatchObject({ transitionId: transitions[jobIds.indexOf(id)]!.id });
      expect(job?.finishedOn).toBeUndefined();
    }
  });
});

describe('reconciler: a sweep that fails', () => {
  it('is named in the report, and the sweeps after it still run: a submit whose answer can no longer come is made UNCERTAIN', async () => {
    const [id] = await completedWithoutPoster(1, 120_000);
    // Older, so swept after it: a video whose poster job was lost.
    const [lost] = await completedWithoutPoster(1, 180_000);
    // A poster job's key Redis holds as something other than a job (a string some other program
    // wrote): the media sweep fails on it, once it has done the other rows.
    const queue = segue.mediaJobs.queue;
    const key = queue.toKey(mediaJobId(posterJob(id!)));
    const client = segue.mediaJobs.redis;
    await segue.mediaJobs.ready();
    await client.set(key, 'not a job');
    // The same for a queued transition's generation job: the jobs sweep fails on it (it is not
    // taken for lost), once it has done the rest of its page.
    const [queued] = await completedWithoutPoster(1, 0);
    await segue.sql.query(`UPDATE "Transition" SET "status" = 'QUEUED', "videoKey" = NULL, "completedAt" = NULL WHERE "id" = $1::uuid`, [queued]);
    const generationKey = segue.generationJobs.queue.toKey(generationJobId(queued!, 1));
    await client.set(generationKey, 'not a job');
    // A submit of a day ago that never had its answer: the submissions sweep, after media's.
    const { accountId } = await rowOf(id!);
    const [submission] = await segue.sql.query<{ id: string }>(
      `INSERT INTO "FalRequest" ("accountId", "transitionId", "run", "attempt", "model", "costUsd", "state", "createdAt")
       VALUES ($1::uuid, $2::uuid, 7, 1, 'fal-ai/kling-video/v2.1/pro/image-to-video', 0.49, 'SUBMITTING', (now() AT TIME ZONE 'UTC') - interval '1 day')
       RETURNING "id"`,
      [accountId, id],
    );
    try {
      const report = await new Reconciler(segue).run();
      expect(report.failedSweeps).toEqual(['jobs', 'media']);
      const failures = await segue.metrics.registry.getSingleMetricAsString('segue_reconcile_sweep_failures_total');
      expect(failures).toMatch(/\{sweep="media"\} 1$/m);
      expect(failures).toMatch(/\{sweep="jobs"\} 1$/m);
      expect(await client.get(generationKey)).toBe('not a job');
      expect((await queue.getJob(mediaJobId(posterJob(lost!))))?.data).toEqual(posterJob(lost!));
      expect(report.mediaRequeued).toBeGreaterThanOrEqual(1);
      expect(report.submissionsExpired).toBeGreaterThanOrEqual(1);
      expect((await segue.db.falRequest.findUniqueOrThrow({ where: { id: submission!.id } })).state).toBe('UNCERTAIN');
    } finally {
      await client.del(key, generationKey);
    }
    // Once the job can be read, the sweep passes again.
    expect((await new Reconciler(segue).run()).failedSweeps).toEqual([]);
  });

  it('while Redis cannot be reached, clears no poster failure it could not retry', async () => {
    // A poster that failed for good a day ago: due to be tried again, its note cleared and its job replaced.
    const [id] = await completedWithoutPoster(1, 2 * 86_400_000);
    const notedAt = new Date(Date.now() - 25 * 3_600_000);
    expect(await notePosterFailed(segue.sql, { id: id!, run: 1 }, notedAt)).toBe(true);
    const cut = createSegue(testConfig({ QUEUE_PREFIX: prefix, MEDIA_DIR: dir, REDIS_URL: 'redis://127.0.0.1:1' }));
    try {
      const report = await new Reconciler(cut).run();
      expect(report.failedSweeps).toContain('media');
      // The note stays: the next pass with Redis back retries the poster.
      expect((await rowOf(id!)).posterFailedAt).toEqual(notedAt);
    } finally {
      await cut.close();
    }
    expect((await new Reconciler(segue).run()).mediaRequeued).toBeGreaterThanOrEqual(1);
    expect((await rowOf(id!)).posterFailedAt).toBeNull();
    expect((await segue.mediaJobs.queue.getJob(mediaJobId(posterJob(id!))))?.data).toEqual(posterJob(id!));
  });
});
