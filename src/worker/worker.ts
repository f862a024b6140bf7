import { hostname } from 'node:os';
import { Worker, type Job } from 'bullmq';
import { BACKOFF_TYPE, GENERATION_QUEUE, type GenerationJobData } from '../queue/generation-queue.ts';
import { generationBackoff } from '../queue/backoff.ts';
import { Reconciler } from '../queue/reconciler.ts';
import { MEDIA_QUEUE, type MediaJobData } from '../queue/media-queue.ts';
import { COPY_QUEUE, type CopyJobData } from '../queue/copy-queue.ts';
import { ClaimBatcher, claimPolicy } from '../domain/claims.ts';
import { Copier, copyProcessor } from './copy-jobs.ts';
import { Posters } from './posters.ts';
import { mediaProcessor } from './media-jobs.ts';
import { workerName } from '../queue/workers-online.ts';
import { closeRedis, createRedis } from '../redis.ts';
import type { Segue } from '../runtime.ts';
import { ABORT_LOCK_LOST, ABORT_SHUTDOWN, runGeneration } from './generation.ts';
import { Wakeups } from './wakeups.ts';

export interface RunningWorker {
  worker: Worker<GenerationJobData>;
  reconciler: Reconciler;
  /** Stops taking jobs, hands running ones to other workers, and closes its connections. */
  close(): Promise<void>;
}

/** How long a staged job (see GenerationQueue.setFalConcurrency) waits for a fal slot before parking. */
const STAGED_SLOT_WAIT_MS = 60_000;

/**
 * A generation worker: BullMQ pulls jobs (up to WORKER_CONCURRENCY in this process, up to
 * FAL_CONCURRENCY and the staged ones across all processes), each of which drives one
 * transition. Start as many as you like, on as many machines: they share the work through Redis.
 */
export async function startWorker(segue: Segue, options: { name?: string } = {}): Promise<RunningWorker> {
  const { config, logger } = segue;
  const log = logger.child({ component: 'worker' });
  // Prisma's engine starts on first use (about 0.3 s of CPU, compiling its WebAssembly; it opens
  // no connection): started before anything else, so the first jobs do not wait for it.
  await segue.db.$connect();
  const connection = createRedis(config.redis, 'worker');
  const subscriber = createRedis(config.redis, 'subscriber');
  const wakeups = new Wakeups(subscriber, segue.topics);
  const posters = new Posters(segue, config.media.concurrency);
  const copier = new Copier(segue, posters, config.worker.copyConcurrency);
  // The claims run one transaction at a time, on a connection of their own: a freed slot's next
  // claim does not queue behind the statements of the requests that just finished.
  const claimsSql = segue.lane('claims');
  // A staged job waits STAGED_SLOT_WAIT_MS for a slot, then parks (and another job is staged).
  const claims = new ClaimBatcher(
    { db: segue.db, sql: claimsSql, get events() { return segue.events; } },
    claimPolicy(config),
    { slotWaitMs: STAGED_SLOT_WAIT_MS },
  );
  await wakeups.start();
  await segue.generationJobs.setFalConcurrency(config.fal.concurrency);
  // The storage driver loads on first use: load it now, so the first finished video is stored as
  // quickly as the next (a result is stored within milliseconds of fal, see README).
  await segue.media.storage().catch((err) => log.warn({ err }, 'storage not ready at start'));
  // The connections a burst of submits needs, open before the first job: opening ten at once
  // costs the first jobs of a batch about 150 ms on a small machine.
  if (config.worker.concurrency > 0) {
    await Promise.all([segue.sql.warm(config.fal.concurrency), claimsSql.warm(1)]).catch((err) => log.warn({ err }, 'database connections not opened at start'));
  }

  // The fair share's clock moves when a job claims its slot (submit.ts), not when it starts: a
  // staged job has not had its turn yet.
  const processor = (job: Job<GenerationJobData>, token?: string, signal?: AbortSignal) =>
    runGeneration(segue, wakeups, copier, claims, job, token, signal);

  const worker = new Worker<GenerationJobData>(GENERATION_QUEUE, processor, {
    connection,
    prefix: config.queuePrefix,
    name: options.name ?? workerName(hostname(), process.pid, config.worker.concurrency),
    concurrency: Math.max(1, config.worker.concurrency),
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    // A stall is a crash of some worker, not a fault of the job; the row makes reruns safe.
    maxStalledCount: 20,
    autorun: false,
    settings: { backoffStrategy: generationBackoff(config.fal.retryDelayMs) },
  });
  worker.on('error', (err) => log.warn({ err }, 'worker error'));
  // A job whose lock we lost is someone else's now: stop driving it here.
  worker.on('lockRenewalFailed', (ids: string[]) => ids.forEach((id) => worker.cancelJob(id, ABORT_LOCK_LOST)));
  worker.on('failed', (job, err) => {
    if (job && err.name !== 'DelayedError') log.debug({ jobId: job.id, err: err.message }, 'job attempt ended in error');
  });

  // Finished videos into storage, off the fal slots: part of generation, so it runs where it does.
  const copyWorker = new Worker<CopyJobData>(COPY_QUEUE, copyProcessor(segue, posters), {
    connection,
    prefix: config.queuePrefix,
    name: workerName(hostname(), process.pid, config.worker.copyConcurrency),
    concurrency: config.worker.copyConcurrency,
    lockDuration: Math.max(config.worker.lockDurationMs, 60_000),
    stalledInterval: config.worker.stalledIntervalMs,
    autorun: false,
  });
  copyWorker.on('error', (err) => log.warn({ err }, 'copy worker error'));

  // ffmpeg work (posters, combined videos) on its own queue, so renders never hold up fal slots.
  const mediaWorker = new Worker<MediaJobData>(MEDIA_QUEUE, mediaProcessor(segue), {
    connection,
    prefix: config.queuePrefix,
    name: workerName(hostname(), process.pid, config.media.concurrency),
    concurrency: Math.max(1, config.media.concurrency),
    lockDuration: Math.max(config.worker.lockDurationMs, 60_000),
    stalledInterval: config.worker.stalledIntervalMs,
    autorun: false,
  });
  mediaWorker.on('error', (err) => log.warn({ err }, 'media worker error'));

  const reconciler = new Reconciler(segue);
  await reconciler.run().catch((err) => log.warn({ err }, 'initial reconcile failed'));
  reconciler.start();
  // WORKER_CONCURRENCY=0 or MEDIA_CONCURRENCY=0: a process for one kind of work only, so media
  // and generation can be scaled (and placed) apart.
  if (config.worker.concurrency > 0) {
    void worker.run().catch((err) => log.error({ err }, 'worker stopped'));
    void copyWorker.run().catch((err) => log.error({ err }, 'copy worker stopped'));
  }
  if (config.media.concurrency > 0) void mediaWorker.run().catch((err) => log.error({ err }, 'media worker stopped'));
  log.info(
    {
      concurrency: config.worker.concurrency,
      mediaConcurrency: config.media.concurrency,
      copyConcurrency: config.worker.concurrency > 0 ? config.worker.copyConcurrency : 0,
      falConcurrency: config.fal.concurrency,
      backoff: BACKOFF_TYPE,
    },
    'generation worker started',
  );

  let closing: Promise<void> | null = null;
  return {
    worker,
    reconciler,
    close() {
      closing ??= (async () => {
        await reconciler.stop();
        // Running jobs finish their current call, then go back to the queue for another worker.
        worker.cancelAllJobs(ABORT_SHUTDOWN);
        // Stop taking jobs first, so the copies handed over below go to other workers, not back here.
        const closed = Promise.all([worker.close(), copyWorker.close(), mediaWorker.close()]);
        await copier.close();
        await posters.close();
        await closed;
        await wakeups.stop();
        await closeRedis(connection, subscriber);
        log.info('generation worker stopped');
      })();
      return closing;
    },
  };
}
