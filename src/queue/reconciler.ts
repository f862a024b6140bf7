import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { closeFinishedBatches, unsentBatchEnds } from '../domain/batches.ts';
import { sweepExpiredUploads } from '../domain/expired-uploads.ts';
import { sweepIdempotencyKeys } from '../domain/idempotency.ts';
import { submitAnswerMs } from '../domain/claims.ts';
import { abandonStaleRequests, expireStaleSubmissions, orphanRequests } from '../domain/ledger.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import { OPEN } from '../domain/statuses.ts';
import type { Segue } from '../runtime.ts';
import { releaseRequest } from '../domain/fal-requests.ts';
import { clearPosterFailures, notePostersFailed, postersDueAgain } from '../domain/poster-failures.ts';
import { generationJobId, type Enqueueable } from './generation-queue.ts';
import { mediaJobId } from './media-queue.ts';
import { copyGraceMs, copyJobId } from './copy-queue.ts';
import type { RedisClient } from '../redis.ts';

const PAGE = 1_000;
/** Posters failed for good tried again per pass: each is a few ffmpeg runs on a media worker. */
const FAILED_POSTERS_PER_PASS = 100;
/** Orphan requests looked at per pass: each costs a status call (and a cancel the first time). */
const ORPHANS_PER_PASS = 100;
const ORPHANS_AT_ONCE = 10;
/** Jobs a pass adds at once: a page of them at a time would stand in front of every other enqueue on the connection. */
const ADDS_AT_ONCE = 100;
/** After this long, a request fal never said ended stops holding a slot. */
const STALE_REQUEST_MS = 24 * 3_600_000;
/** The reconciler's lock is renewed every third of its time-to-live, this many times at most. */
const LOCK_RENEWALS = 30;
const RENEW_IF_OURS = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0`;
/** Let go of the lock only while it is this pass's: once it lapsed, it may be another worker's. */
const RELEASE_IF_OURS = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;
/** How long a batch's end is its closer's to send (a flush follows its close within moments). */
const UNSENT_END_SETTLE_MS = 10_000;

export interface ReconcileReport {
  checked: number;
  requeued: number;
  replacedFinished: number;
  batchesClosed: number;
  /**
   * Batch ends this pass gave the publisher to send: those it closed, and those whose closer died
   * before its message. A send that fails stays recorded unsent, and goes again.
   */
  batchEndsSent: number;
  mediaRequeued: number;
  /** Requests no run follows any more that fal has now ended. */
  orphansEnded: number;
  /** Submits whose answer can no longer come: now UNCERTAIN (they hold no slot). */
  submissionsExpired: number;
  idempotencyKeysDeleted: number;
  /**
   * Direct uploads an hour past their URL's expiry whose upload place this pass cleared: deleted
   * if never completed, else only their upload place forgotten (its file removed either way).
   */
  uploadsSwept: number;
  /** Sweeps of this pass that failed (logged); the others ran all the same. */
  failedSweeps: Sweep[];
}

/** A pass's sweeps, in their order (the names its log, report and metric use). */
export type Sweep = 'cap' | 'jobs' | 'batches' | 'media' | 'submissions' | 'orphans' | 'idempotency keys' | 'uploads';

/**
 * PostgreSQL is the truth, Redis only a work list: every unfinished transition must have its job.
 * Re-creates the jobs that are missing (a Redis wipe, an enqueue that failed after commit), or
 * that ended while their row did not (e.g. failed by BullMQ's stall limit). Jobs of rows that
 * already hold a fal request go first, to be tracked again at once. Also follows the requests no
 * run follows any more until fal ends them, and deletes what has expired. Every sweep reads an
 * index that holds only open work, so a pass costs what is open, not what was ever done. Runs at
 * worker start and periodically; a lock keeps the workers from doing it all at the same time.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly segue: Segue) {}

  start() {
    const interval = this.segue.config.worker.reconcileIntervalMs;
    const tick = () => {
      this.running = this.runIfLeader()
        .catch((err) => this.segue.logger.warn({ err }, 'reconcile failed'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, interval);
        });
    };
    this.timer = setTimeout(tick, interval);
  }

  async stop() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Runs when no other worker is reconciling right now. */
  async runIfLeader(): Promise<ReconcileReport | null> {
    const { generationJobs: jobs, config } = this.segue;
    await jobs.ready();
    const redis = jobs.redis;
    const lock = `${config.queuePrefix}:reconciler:lock`;
    const token = randomUUID();
    const ttl = Math.max(5_000, config.worker.reconcileIntervalMs);
    if ((await redis.set(lock, token, 'PX', ttl, 'NX')) !== 'OK') return null;
    // A pass that outlasts the lock (a PostgreSQL that times out sweep after sweep, a long
    // backlog) keeps it, so that no other worker starts a pass beside it; for a bounded time
    // only, so a pass that hangs cannot stop every worker's passes.
    let renewals = 0;
    const keep = setInterval(() => {
      if (++renewals > LOCK_RENEWALS) return clearInterval(keep);
      redis.eval(RENEW_IF_OURS, 1, lock, token, ttl).catch(() => undefined);
    }, ttl / 3);
    keep.unref();
    try {
      return await this.run();
    } finally {
      clearInterval(keep);
      await redis.eval(RELEASE_IF_OURS, 1, lock, token);
    }
  }

  /**
   * One pass. Each sweep runs on its own: one that fails (PostgreSQL or Redis refusing a
   * statement, a job Redis holds that cannot be read) is logged and named in the report, and the
   * others still run, above all those that follow fal's requests and free their slots.
   */
  async run(): Promise<ReconcileReport> {
    const { config, logger } = this.segue;
    const report: ReconcileReport = {
      checked: 0,
      requeued: 0,
      replacedFinished: 0,
      batchesClosed: 0,
      batchEndsSent: 0,
      mediaRequeued: 0,
      orphansEnded: 0,
      submissionsExpired: 0,
      idempotencyKeysDeleted: 0,
      uploadsSwept: 0,
      failedSweeps: [],
    };
    const sweep = async (name: Sweep, work: () => Promise<unknown>) => {
      try {
        await work();
      } catch (err) {
        report.failedSweeps.push(name);
        this.segue.metrics.reconcileSweepFailures.inc({ sweep: name });
        logger.warn({ err, sweep: name }, 'a reconcile sweep failed; the others go on');
      }
    };
    // A wipe also loses the global cap; putting it back is idempotent.
    await sweep('cap', () => this.segue.generationJobs.setFalConcurrency(config.fal.concurrency));
    await sweep('jobs', () => this.requeue(report));
    await sweep('batches', () => this.batches(report));
    await sweep('media', () => this.media(report));
    await sweep('submissions', async () => {
      report.submissionsExpired = await expireStaleSubmissions(this.segue.sql, submitAnswerMs(config.fal));
    });
    await sweep('orphans', async () => {
      report.orphansEnded = await this.orphans();
    });
    await sweep('idempotency keys', async () => {
      report.idempotencyKeysDeleted = await sweepIdempotencyKeys(this.segue.db, config.http.idempotencyTtlMs);
    });
    await sweep('uploads', async () => {
      report.uploadsSwept = await sweepExpiredUploads(this.segue);
    });
    if (report.requeued || report.batchesClosed || report.batchEndsSent || report.mediaRequeued || report.orphansEnded || report.submissionsExpired || report.uploadsSwept) {
      logger.info(report, 'reconciled jobs with the database');
    }
    return report;
  }

  /** Every unfinished row without a live job gets one (those holding a fal request first). */
  private async requeue(report: ReconcileReport) {
    const { db, generationJobs: jobs } = this.segue;
    const redis = jobs.redis;
    let cursor: { queuedAt: Date | null; id: string } | null = null;
    for (;;) {
      const rows: Array<{ id: string; run: number; accountId: string; status: S; queuedAt: Date | null }> =
        await db.transition.findMany({
          where: {
            status: { in: [...OPEN] },
            // A result waiting for its copy into storage has a copy job instead (see media()).
            falVideoUrl: null,
            ...(cursor ? { OR: [{ queuedAt: { gt: cursor.queuedAt ?? new Date(0) } }, { queuedAt: cursor.queuedAt, id: { gt: cursor.id } }] } : {}),
          },
          orderBy: [{ queuedAt: 'asc' }, { id: 'asc' }],
          take: PAGE,
          select: { id: true, run: true, accountId: true, status: true, queuedAt: true },
        });
      if (rows.length === 0) break;
      report.checked += rows.length;
      const pipeline = redis.pipeline();
      // `timestamp`, not `data`: BullMQ writes both when it stores a job, and only whether the job
      // exists is wanted here; a timestamp is 13 bytes where data is a whole JSON object.
      for (const row of rows) pipeline.hmget(jobs.queue.toKey(generationJobId(row.id, row.run)), 'finishedOn', 'timestamp');
      const answers = (await pipeline.exec()) ?? [];
      const missing: typeof rows = [];
      const unanswered = new RowFailures();
      for (const [i, row] of rows.entries()) {
        // A job Redis did not answer for (timed out, refused) is left as it is, not taken for lost.
        const [error, answer] = answers[i] ?? [new Error('Redis gave no answer for the job')];
        if (error) {
          unanswered.note(error);
          continue;
        }
        const [finishedOn, storedAt] = answer as Array<string | null>;
        if (!storedAt) missing.push(row);
        else if (finishedOn) {
          await jobs.queue.remove(generationJobId(row.id, row.run)).catch(() => 0);
          report.replacedFinished += 1;
          missing.push(row);
        }
      }
      const inFlight: Enqueueable[] = missing.filter((r) => r.status !== S.QUEUED);
      const waiting: Enqueueable[] = missing.filter((r) => r.status === S.QUEUED);
      await jobs.enqueue(inFlight, { urgent: true });
      await jobs.enqueue(waiting);
      report.requeued += missing.length;
      // The sweep fails (and says so) rather than page on through a Redis that does not answer.
      unanswered.throwIfAny('job(s) Redis did not answer for');
      const last = rows[rows.length - 1]!;
      cursor = { queuedAt: last.queuedAt, id: last.id };
      if (rows.length < PAGE) break;
    }
  }

  /** Batches whose last item ended, and batch ends no message carried. */
  private async batches(report: ReconcileReport) {
    const closed = await closeFinishedBatches(this.segue.db, 'all-open');
    report.batchesClosed = closed.length;
    // Ends no message carried: closed here (the process that saw them end died before its close),
    // or closed by a process that died between its commit and its message. Their subscribers
    // wait for an end no later change would send: it goes now, and the flush records it sent.
    const unsent = new Set([...closed.map((b) => b.id), ...(await unsentBatchEnds(this.segue, UNSENT_END_SETTLE_MS))]);
    report.batchEndsSent = unsent.size;
    if (unsent.size > 0) {
      this.segue.events.batchesChanged([...unsent]);
      await this.segue.events.flush();
    }
  }

  /**
   * Requests fal accepted that no run follows any more (canceled, superseded, given up after a
   * timeout, or whose follower died): ask fal to cancel each (once), and record its end when fal
   * says it is over, so its slot frees and its transition may submit again.
   */
  private async orphans(): Promise<number> {
    const { sql, logger, config } = this.segue;
    const log = logger.child({ component: 'reconciler' });
    // A request fal has not said is over after a day, and no status call can settle: it stops
    // holding a slot (a person should look: the log names it).
    for (const lost of await abandonStaleRequests(sql, Math.max(STALE_REQUEST_MS, config.fal.timeoutMs * 3 + config.fal.cancelGraceMs))) {
      log.error({ falRequestId: lost.requestId, transitionId: lost.transitionId }, 'a fal request never ended; it no longer holds a slot');
    }
    const requests = await orphanRequests(sql, ORPHANS_PER_PASS);
    // A few at a time: each costs a status call (and the first time a cancel).
    const settled = await inChunks(requests, ORPHANS_AT_ONCE, (r) => releaseRequest(this.segue, r.requestId!, 'SUPERSEDED', log).catch(() => false));
    return settled.filter(Boolean).length;
  }

  /**
   * Results left without a copy (their worker died), combined videos still to render, posters still to
   * make (a minute after completion), and posters that failed for good a day ago.
   */
  private async media(report: ReconcileReport): Promise<void> {
    const { mediaJobs, copyJobs } = this.segue;
    const { sql } = this.segue;
    // Plain SQL with the partial indexes' own conditions as literals, so the planner always uses them.
    const [copies, combined, posters, failedPosters] = await Promise.all([
      // Results whose copier died: no change for longer than a copy can take.
      sql.query<{ id: string; run: number }>(
        `SELECT "id", "run" FROM "Transition"
         WHERE "status" IN ('SUBMITTED', 'IN_PROGRESS') AND "falVideoUrl" IS NOT NULL AND "updatedAt" < $1
         LIMIT ${PAGE}`,
        [new Date(Date.now() - copyGraceMs(this.segue.config)).toISOString()],
      ),
      sql.query<{ id: string }>(
        `SELECT "id" FROM "GeneratedTransition" WHERE status = ANY (ARRAY['QUEUED'::"GeneratedTransitionStatus", 'RUNNING'::"GeneratedTransitionStatus"]) LIMIT ${PAGE}`,
        [],
      ),
      sql.query<{ id: string; run: number }>(
        `SELECT "id", "run" FROM "Transition"
         WHERE "status" = 'COMPLETED' AND "posterKey" IS NULL AND "videoKey" IS NOT NULL AND "completedAt" < $1 AND "posterFailedAt" IS NULL
         ORDER BY "completedAt" DESC LIMIT ${PAGE}`,
        [new Date(Date.now() - 60_000).toISOString()],
      ),
      postersDueAgain(sql, FAILED_POSTERS_PER_PASS),
    ]);
    const jobs = [
      ...combined.map((c) => ({ kind: 'combine' as const, generatedTransitionId: c.id })),
      ...posters.map((t) => ({ kind: 'poster' as const, transitionId: t.id, run: t.run })),
    ];
    // Each job on its own: one Redis cannot give back (a key some other program wrote) fails
    // only its row, and the sweep fails once the others are done.
    const failed = new RowFailures();
    const ensure = (queue: Queue, jobId: string, state: JobState | Error, add: () => Promise<unknown>, replaceFailed: boolean) =>
      ensureJob(queue, jobId, state, add, replaceFailed).catch((error: unknown) => {
        failed.note(error);
        return false as const;
      });
    const added = (outcomes: ReadonlyArray<Ensured>) => (report.mediaRequeued += outcomes.filter((o) => o === true).length);
    // A failed copy or combine whose row is still open failed to record its end: run it again. A
    // poster job that failed its last attempt notes that on its row, which leaves the sweep above
    // and is tried again a day later, below. One whose note never came (its job failed without
    // running, over stalls; PostgreSQL refused the note) is noted here, from its failed job.
    // Each queue's jobs are read in one round trip; a job Redis did not answer for is left as it is.
    const copyData = copies.map((c) => ({ transitionId: c.id, run: c.run }));
    const copyStates = await jobStates(copyJobs, copyData.map(copyJobId));
    added(await inChunks(copyData, ADDS_AT_ONCE, (data, i) => ensure(copyJobs.queue, copyJobId(data), copyStates[i]!, () => copyJobs.add(data), true)));
    const mediaStates = await jobStates(mediaJobs, jobs.map(mediaJobId));
    const outcomes = await inChunks(jobs, ADDS_AT_ONCE, (data, i) =>
      ensure(mediaJobs.queue, mediaJobId(data), mediaStates[i]!, () => mediaJobs.add(data), data.kind === 'combine'),
    );
    added(outcomes);
    const unnoted = jobs.flatMap((data, i) => {
      const outcome = outcomes[i]!;
      return data.kind === 'poster' && typeof outcome === 'object' ? [{ id: data.transitionId, run: data.run, at: outcome.failedAt }] : [];
    });
    await notePostersFailed(sql, unnoted);
    // Posters that failed for good a day ago: their notes are cleared, then their failed jobs
    // replaced, and the rows wait for their posters as new videos do. Cleared first, so that the
    // note of a new job that fails at once is its own and stays (a note is only written where
    // none is); and only those whose jobs Redis has just answered for, so an outage clears
    // nothing. Should the jobs not be added after all, the next pass finds the rows' failed jobs
    // unnoted: it notes them from those jobs, already a day old, and the pass after retries them.
    const retried = failedPosters.map((noted) => ({ kind: 'poster' as const, transitionId: noted.id, run: noted.run }));
    const retriedStates = await jobStates(mediaJobs, retried.map(mediaJobId));
    await clearPosterFailures(sql, failedPosters.filter((_, i) => !(retriedStates[i] instanceof Error)));
    added(await inChunks(retried, ADDS_AT_ONCE, (data, i) => ensure(mediaJobs.queue, mediaJobId(data), retriedStates[i]!, () => mediaJobs.add(data), true)));
    failed.throwIfAny('media job(s) could not be checked');
  }
}

/** A sweep's rows that failed: counted, the first kept as the cause of the error the sweep ends with once the others are done. */
class RowFailures {
  private count = 0;
  private first: unknown;

  note(error: unknown) {
    if (this.count++ === 0) this.first = error;
  }

  throwIfAny(what: string) {
    if (this.count > 0) throw new Error(`${this.count} ${what}; the others were checked`, { cause: this.first });
  }
}

/** `work` on each item, `size` at a time; the results in the items' order. */
async function inChunks<T, R>(items: readonly T[], size: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += size) {
    results.push(...(await Promise.all(items.slice(i, i + size).map((item, j) => work(item, i + j)))));
  }
  return results;
}

/** Whether a job with an id exists in its queue, and if so since when it has failed (null: it has not). */
type JobState = { exists: false } | { exists: true; failedAt: Date | null };
/** True when a job was added; for a failed job left in place, when it failed; false otherwise. */
type Ensured = boolean | { failedAt: Date };

/**
 * The state of each job, read in one round trip for all (its hash and its place in the failed
 * set, as BullMQ's own isFailed reads it), not two per job. An answer Redis refuses (a key some
 * other program wrote, of another type) is that job's error alone.
 */
async function jobStates(jobs: { queue: Queue; redis: RedisClient }, jobIds: readonly string[]): Promise<Array<JobState | Error>> {
  if (jobIds.length === 0) return [];
  const pipeline = jobs.redis.pipeline();
  const failedSet = jobs.queue.toKey('failed');
  // `timestamp` tells that the job exists (BullMQ writes it with the job, as `data`), in 13 bytes.
  for (const id of jobIds) pipeline.hmget(jobs.queue.toKey(id), 'finishedOn', 'timestamp').zscore(failedSet, id);
  const answers = (await pipeline.exec()) ?? [];
  return jobIds.map((_, i) => {
    const [hashError, hash] = answers[2 * i] ?? [new Error('Redis gave no answer for the job')];
    const [scoreError, score] = answers[2 * i + 1] ?? [new Error('Redis gave no answer for the job')];
    if (hashError || scoreError) return (hashError ?? scoreError)!;
    const [finishedOn, storedAt] = hash as Array<string | null>;
    if (storedAt === null) return { exists: false };
    return { exists: true, failedAt: score === null ? null : new Date(finishedOn ? Number(finishedOn) : Date.now()) };
  });
}

/** Adds a job unless one with its id exists; a failed one is replaced when `replaceFailed`. */
async function ensureJob(queue: Queue, jobId: string, state: JobState | Error, add: () => Promise<unknown>, replaceFailed: boolean): Promise<Ensured> {
  if (state instanceof Error) throw state;
  if (state.exists) {
    if (!state.failedAt) return false;
    if (!replaceFailed) return { failedAt: state.failedAt };
    await queue.remove(jobId).catch(() => 0);
  }
  await add();
  return true;
}
