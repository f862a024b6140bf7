import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { closeFinishedBatches } from '../domain/batches.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Segue } from '../runtime.ts';
import { generationJobId, type Enqueueable } from './generation-queue.ts';
import { mediaJobId } from './media-queue.ts';
import { copyGraceMs, copyJobId } from './copy-queue.ts';

const PAGE = 1_000;

export interface ReconcileReport {
  checked: number;
  requeued: number;
  replacedFinished: number;
  batchesClosed: number;
  mediaRequeued: number;
}

/**
 * PostgreSQL is the truth, Redis only a work list: every unfinished transition must have its job.
 * Re-creates the jobs that are missing (a Redis wipe, an enqueue that failed after commit), or
 * that ended while their row did not (e.g. failed by BullMQ's stall limit). Jobs of rows that
 * already hold a fal request go first, to be tracked again at once. Runs at worker start and
 * periodically; a lock keeps the workers from doing it all at the same time.
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
    const { jobs, config } = this.segue;
    await jobs.ready();
    const redis = jobs.redis;
    const lock = `${config.queuePrefix}:reconciler:lock`;
    const token = randomUUID();
    const ttl = Math.max(5_000, config.worker.reconcileIntervalMs);
    if ((await redis.set(lock, token, 'PX', ttl, 'NX')) !== 'OK') return null;
    try {
      return await this.run();
    } finally {
      if ((await redis.get(lock)) === token) await redis.del(lock);
    }
  }

  async run(): Promise<ReconcileReport> {
    const { db, jobs, config, logger } = this.segue;
    // A wipe also loses the global cap; putting it back is idempotent.
    await jobs.setFalConcurrency(config.fal.concurrency);
    const report: ReconcileReport = { checked: 0, requeued: 0, replacedFinished: 0, batchesClosed: 0, mediaRequeued: 0 };
    const redis = jobs.redis;
    let cursor: { queuedAt: Date | null; id: string } | null = null;
    for (;;) {
      const rows: Array<{ id: string; run: number; accountId: string; status: S; queuedAt: Date | null }> =
        await db.transition.findMany({
          where: {
            status: { in: [S.QUEUED, S.SUBMITTED, S.IN_PROGRESS] },
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
      for (const row of rows) pipeline.hmget(jobs.queue.toKey(generationJobId(row.id, row.run)), 'finishedOn', 'data');
      const answers = (await pipeline.exec()) ?? [];
      const missing: typeof rows = [];
      for (const [i, row] of rows.entries()) {
        const [finishedOn, data] = (answers[i]?.[1] as Array<string | null> | undefined) ?? [null, null];
        if (!data) missing.push(row);
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
      const last = rows[rows.length - 1]!;
      cursor = { queuedAt: last.queuedAt, id: last.id };
      if (rows.length < PAGE) break;
    }
    report.batchesClosed = (await closeFinishedBatches(db, 'all-open')).length;
    report.mediaRequeued = await this.media();
    if (report.requeued || report.batchesClosed || report.mediaRequeued) logger.info(report, 'reconciled jobs with the database');
    return report;
  }

  /**
   * Results left without a copy (their worker died), combined videos still to render, and posters still to
   * make (a minute after completion).
   */
  private async media(): Promise<number> {
    const { db, mediaJobs, copyJobs } = this.segue;
    const [copies, combined, posters] = await Promise.all([
      // Results whose copier died: no change for longer than a copy can take.
      db.transition.findMany({
        where: {
          status: { in: [S.SUBMITTED, S.IN_PROGRESS] },
          falVideoUrl: { not: null },
          updatedAt: { lt: new Date(Date.now() - copyGraceMs(this.segue.config)) },
        },
        select: { id: true, run: true },
        take: PAGE,
      }),
      db.generatedTransition.findMany({ where: { status: { in: ['QUEUED', 'RUNNING'] } }, select: { id: true }, take: PAGE }),
      db.transition.findMany({
        where: { status: S.COMPLETED, videoKey: { not: null }, posterKey: null, completedAt: { lt: new Date(Date.now() - 60_000) } },
        select: { id: true, run: true },
        take: PAGE,
      }),
    ]);
    const jobs = [
      ...combined.map((c) => ({ kind: 'combine' as const, generatedTransitionId: c.id })),
      ...posters.map((t) => ({ kind: 'poster' as const, transitionId: t.id, run: t.run })),
    ];
    let added = 0;
    // A failed copy or combine whose row is still open failed to record its end: run it again. A
    // failed poster stays failed (its row is complete; the dashboard can retry it).
    for (const data of copies.map((c) => ({ transitionId: c.id, run: c.run }))) {
      if (await ensureJob(copyJobs.queue, copyJobId(data), () => copyJobs.add(data), true)) added += 1;
    }
    for (const data of jobs) {
      if (await ensureJob(mediaJobs.queue, mediaJobId(data), () => mediaJobs.add(data), data.kind === 'combine')) added += 1;
    }
    return added;
  }
}

/** Adds a job unless one with its id exists; a failed one is replaced when `replaceFailed`. */
async function ensureJob(queue: Queue, jobId: string, add: () => Promise<unknown>, replaceFailed: boolean): Promise<boolean> {
  const existing = await queue.getJob(jobId);
  if (existing && (!replaceFailed || !(await existing.isFailed()))) return false;
  if (existing) await existing.remove().catch(() => undefined);
  await add();
  return true;
}
