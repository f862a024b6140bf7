import type { Job } from 'bullmq';
import { changeTransition, loadTransition, type ChangeData, type ChangeGuard } from '../domain/state-machine.ts';
import type { Transition } from '../generated/prisma/client.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import type { GenerationJobData } from '../queue/generation-queue.ts';
import type { Segue } from '../runtime.ts';
import type { ClaimBatcher } from '../domain/claims.ts';
import type { Copier } from './copy-jobs.ts';
import type { WakeInfo, Watch } from './wakeups.ts';

/** Why a worker aborts a running job: it is stopping (hand the job over) or lost the job's lock. */
export const ABORT_SHUTDOWN = 'shutdown';
export const ABORT_LOCK_LOST = 'lock-lost';

/** One generation job at work: the transition and run it drives, and what it drives them with. */
export interface RunContext {
  readonly segue: Segue;
  readonly job: Job<GenerationJobData>;
  readonly token: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly ref: { id: string; run: number };
  readonly log: Logger;
  /** Changes of the row made elsewhere (a webhook, a cancel), caught from the start of the job on. */
  readonly watch: Watch;
  readonly copier: Copier;
  /** This process's claims, sent to PostgreSQL together. */
  readonly claims: ClaimBatcher;
}

/**
 * A pause that spends no attempt and holds no slot: the job goes back to BullMQ's delayed set
 * until `ms` from now (waiting for a lost submit's answer, for a slot, for an earlier request).
 */
export class Park extends Error {
  constructor(
    readonly ms: number,
    reason: string,
  ) {
    super(reason);
  }
}

/** The worker is stopping or lost the job: stop here (see ABORT_*). */
export class Aborted extends Error {
  constructor(readonly reason: unknown) {
    super(`aborted: ${String(reason)}`);
  }
}

export function checkAbort(ctx: RunContext) {
  if (ctx.signal?.aborted) throw new Aborted(ctx.signal.reason);
}

export const loadRow = (ctx: RunContext) => loadTransition(ctx.segue, ctx.ref.id);

/** The row after a change heard on its watch: from the change's own message, or PostgreSQL when that cannot tell it. */
export const rowAfterChange = async (ctx: RunContext, woke: { changed: WakeInfo | null }, row: Transition): Promise<Transition | null> =>
  (woke.changed && ctx.watch.rowAfter(row)) || loadRow(ctx);

export const changeRow = (ctx: RunContext, to: TransitionStatus, data: ChangeData, guard: ChangeGuard = {}): Promise<Transition | null> =>
  changeTransition(ctx.segue, ctx.ref, to, data, guard);

/** Waits `ms`, or less when the job is aborted. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs a write that must land (a request id fal returned, an undo of a claim whose submit never
 * left): PostgreSQL may be failing right now, so it is tried again, backing off to 5 s, until it
 * succeeds or `maxMs` has passed. Shutdown does not stop it: a lost write here costs money.
 */
export async function persist<T>(ctx: Pick<RunContext, 'log'>, what: string, write: () => Promise<T>, maxMs = 10 * 60_000): Promise<T> {
  const giveUpAt = Date.now() + maxMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 5_000)) {
    try {
      return await write();
    } catch (err) {
      if (Date.now() + delay > giveUpAt) throw err;
      ctx.log.warn({ err }, `could not ${what} yet; trying again in ${delay} ms`);
      await pause(delay);
    }
  }
}
