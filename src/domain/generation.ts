import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { VideoProvider } from '../providers/provider.ts';
import { closeFinishedBatches, createBatch } from './batches.ts';
import { OPEN, RETRYABLE, TERMINAL } from './statuses.ts';
import { conflict } from './errors.ts';
import type { WatchBatch } from './ports.ts';
import { launchRuns } from './launch.ts';
import { alreadyGenerated, awaitingLateVideo, cancelTransitions, LATE_VIDEO_CONFLICT, RUN_START_FIELDS, startRuns } from './state-machine.ts';
import { noteCancelRequested } from './ledger.ts';
import { reserveWithinBudget } from './costs.ts';
import { createTransitions, getBatch, getTransition, pricingOf, type ServiceDeps } from './transitions.ts';

export interface GenerationDeps extends ServiceDeps {
  provider: VideoProvider;
}


/** Creates transitions and starts generating them at once, as one batch (the seed's create_and_generate). */
export function createAndGenerate(deps: ServiceDeps, accountId: string, input: Record<string, unknown>) {
  return createTransitions(deps, accountId, { ...input, generate: true });
}

/**
 * Stops what the provider is doing for these rows; a running Kling job may still finish (and
 * bill). The request stays in the ledger until fal says it ended: whoever follows it (the run's
 * worker, or the reconciler) sees the cancel noted there.
 */
async function stopAtProvider(deps: GenerationDeps, rows: readonly Transition[]) {
  await Promise.all(
    rows.map(async (row) => {
      await deps.generationJobs.removeWaiting(row.id, row.run).catch(() => undefined);
      if (!row.falRequestId) return;
      try {
        await noteCancelRequested(deps, row.falRequestId, 'CANCELED');
        await deps.provider.cancel(row.falRequestId);
      } catch (err) {
        deps.logger.warn({ err, transitionId: row.id, falRequestId: row.falRequestId }, 'cancel at the provider failed');
      }
    }),
  );
}

const alreadyGeneratedConflict = () =>
  conflict('This transition is already generated: fal has finished its video, which is being stored; it cannot be canceled now.', {
    status: 'GENERATED',
  });

/** QUEUED, SUBMITTED or IN_PROGRESS → CANCELED, also at fal when it was submitted. */
export async function cancelTransition(deps: GenerationDeps, accountId: string, id: string) {
  const row = await getTransition(deps, accountId, id);
  if (!OPEN.includes(row.status)) {
    throw conflict(`Only a queued or running transition can be canceled; this one is ${row.status}.`, { status: row.status });
  }
  const [canceled] = await cancelTransitions(deps, accountId, [id]);
  if (!canceled) {
    const now = await getTransition(deps, accountId, id);
    if (OPEN.includes(now.status) && (await alreadyGenerated(deps, id))) throw alreadyGeneratedConflict();
    throw conflict(`The transition ended (${now.status}) before it could be canceled.`, { status: now.status });
  }
  await stopAtProvider(deps, [canceled]);
  return canceled;
}

/** Cancels every unfinished transition of the batch's run. */
export async function cancelBatch(deps: GenerationDeps, accountId: string, batchId: string) {
  const batch = await getBatch(deps, accountId, batchId);
  const open = await deps.db.transition.findMany({
    where: { accountId, batchId: batch.id, status: { in: [...OPEN] } },
    select: { id: true },
  });
  if (open.length === 0) throw conflict('This batch has nothing left to cancel.');
  const canceled = await cancelTransitions(deps, accountId, open.map((t) => t.id));
  await closeFinishedBatches(deps.db, [batch.id]);
  await stopAtProvider(deps, canceled);
  return deps.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
}

/** FAILED or CANCELED → QUEUED: a new run in the same batch, which reopens. */
export async function retryTransition(deps: ServiceDeps, accountId: string, id: string) {
  const row = await getTransition(deps, accountId, id);
  if (!RETRYABLE.includes(row.status)) {
    throw conflict(`Only a failed or canceled transition can be retried; this one is ${row.status}.`, { status: row.status });
  }
  const queued = await deps.db.$transaction(async (tx) => {
    await reserveWithinBudget(tx, accountId, pricingOf(deps.config), row.durationSeconds);
    const batchId = row.batchId ?? (await createBatch(tx, accountId, null)).id;
    const [started] = await startRuns(tx, accountId, [id], batchId, RETRYABLE);
    if (!started) return null;
    await tx.batchItem.upsert({
      where: { batchId_transitionId: { batchId, transitionId: id } },
      update: { status: S.QUEUED },
      create: { batchId, transitionId: id, status: S.QUEUED, position: 0 },
    });
    await tx.batch.update({ where: { id: batchId }, data: { completedAt: null } });
    return started;
  });
  if (!queued) {
    if ((await awaitingLateVideo(deps.db, [id])).size > 0) throw conflict(LATE_VIDEO_CONFLICT, { status: S.FAILED });
    const now = await getTransition(deps, accountId, id);
    throw conflict(`The transition changed (${now.status}) before it could be retried.`, { status: now.status });
  }
  await launchRuns(deps, [queued], RUN_START_FIELDS);
  return queued;
}

export interface GenerateNowDeps extends ServiceDeps {
  watchBatch: WatchBatch;
}

/**
 * Creates, generates and waits until every transition has ended (the seed's synchronous
 * generate, for scripts). Resolves with the final rows; rejects after `timeoutMs`.
 */
export async function generateNow(
  deps: GenerateNowDeps,
  accountId: string,
  input: Record<string, unknown>,
  options: { timeoutMs?: number; pollMs?: number } = {},
): Promise<Transition[]> {
  const { transitions, batch } = await createAndGenerate(deps, accountId, input);
  const ids = transitions.map((t) => t.id);
  const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
  let wake: (() => void) | null = null;
  const stopWatching = await deps.watchBatch(accountId, batch!.id, () => wake?.());
  try {
    for (;;) {
      const rows = await deps.db.transition.findMany({ where: { id: { in: ids } } });
      if (rows.every((r) => TERMINAL.includes(r.status))) {
        const byId = new Map(rows.map((r) => [r.id, r]));
        return ids.map((id) => byId.get(id)!);
      }
      if (Date.now() > deadline) throw new Error(`generateNow: not finished after ${options.timeoutMs ?? 30 * 60_000} ms.`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.pollMs ?? 2_000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    stopWatching();
  }
}
