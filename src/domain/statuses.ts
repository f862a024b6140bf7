import { TransitionStatus as S, type TransitionStatus } from '../generated/prisma/enums.ts';

/**
 * The sets of transition statuses the rules speak of, in one place:
 *
 *   DRAFT → QUEUED → SUBMITTED → IN_PROGRESS → COMPLETED | FAILED | CANCELED
 */

/** At the provider: submitted (maybe waiting in fal's queue) or generating. */
export const RUNNING: readonly TransitionStatus[] = [S.SUBMITTED, S.IN_PROGRESS];

/** A run under way, queued or at the provider: what a cancel stops, what holds a transition busy. */
export const OPEN: readonly TransitionStatus[] = [S.QUEUED, ...RUNNING];

/** A run that has ended. */
export const TERMINAL: readonly TransitionStatus[] = [S.COMPLETED, S.FAILED, S.CANCELED];

/** What a new run can start from (generateBatch): never generated, or ended. */
export const RUN_STARTABLE: readonly TransitionStatus[] = [S.DRAFT, ...TERMINAL];

/** What retryTransition starts again: a run that ended without a video. */
export const RETRYABLE: readonly TransitionStatus[] = [S.FAILED, S.CANCELED];

/**
 * SQL: a run that gave up on its fal request and has no video: at a time limit (fal may still run
 * that request to the end, and bill it; no new run starts while the request is open:
 * state-machine.startRuns), or after its result could not be read (fal had finished it). A video
 * that comes for the request after all is then the run's (ledger.recordResult): it is paid for.
 */
export const GAVE_UP = `("status" = 'FAILED' AND "errorCode" IN ('FAL_TIMEOUT', 'FAL_QUEUE_TIMEOUT', 'FAL_RESULT_UNAVAILABLE') AND "falVideoUrl" IS NULL)`;

export const isRunning = (status: TransitionStatus) => RUNNING.includes(status);
export const isOpen = (status: TransitionStatus) => OPEN.includes(status);
