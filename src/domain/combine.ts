import { z } from 'zod';
import type { Db, Sql } from '../db.ts';
import type { GeneratedTransition, Prisma } from '../generated/prisma/client.ts';
import { GeneratedTransitionStatus as G, TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import { conflict, notFound, pathsOf } from './errors.ts';
import type { CombineJobs } from './ports.ts';
import { httpUrl, parseInput } from './transition-input.ts';
import type { Selection } from './transitions.ts';

export const COMBINE_LIMITS = { clips: 50 } as const;

export const combineInput = z.object({
  transitionIds: z
    .array(z.uuid('must be a transition id'))
    .min(2, 'must hold 2 to 50 transitions')
    .max(COMBINE_LIMITS.clips, `must hold 2 to ${COMBINE_LIMITS.clips} transitions`),
  audioUrl: httpUrl.nullish().transform((v) => v || null),
  burnSubtitles: z.boolean().nullish().transform((v) => v ?? false),
});

export interface CombineDeps {
  db: Db;
  sql: Sql;
  mediaJobs: CombineJobs;
  logger: Logger;
  events?: { generatedTransitionChanged(row: GeneratedTransition): void | Promise<void> };
}

/**
 * Joins COMPLETED transitions of the caller, in the order given, into one video (with an audio
 * track and subtitles when asked): a GeneratedTransition, rendered by a media worker.
 */
export async function combineTransitions(deps: CombineDeps, accountId: string, raw: unknown) {
  const input = parseInput(combineInput, raw);
  const unique = [...new Set(input.transitionIds)];
  const rows = await deps.db.transition.findMany({
    where: { id: { in: unique }, accountId },
    select: { id: true, status: true, videoKey: true },
  });
  if (rows.length !== unique.length) {
    const found = new Set(rows.map((r) => r.id));
    const missing = pathsOf('transitionIds', input.transitionIds, (id) => !found.has(id));
    throw notFound(missing.length > 1 ? `${missing.length} transitions` : 'Transition', missing);
  }
  const unfinished = new Set(rows.filter((r) => r.status !== S.COMPLETED || !r.videoKey).map((r) => r.id));
  if (unfinished.size) {
    throw conflict('Only COMPLETED transitions (with a stored video) can be combined.', {
      fields: pathsOf('transitionIds', input.transitionIds, (id) => unfinished.has(id)),
    });
  }
  const combined = await deps.db.generatedTransition.create({
    data: {
      accountId,
      audioUrl: input.audioUrl,
      burnSubtitles: input.burnSubtitles,
      items: { create: input.transitionIds.map((transitionId, position) => ({ transitionId, position })) },
    },
  });
  await deps.events?.generatedTransitionChanged(combined);
  await deps.mediaJobs
    .add({ kind: 'combine', generatedTransitionId: combined.id })
    .catch((err) => deps.logger.warn({ err }, 'could not queue the combine job; the reconciler will'));
  return combined;
}

export async function getGeneratedTransition(
  deps: { db: Db },
  accountId: string,
  id: string,
  query: Selection<Prisma.GeneratedTransitionInclude, Prisma.GeneratedTransitionSelect> = {},
) {
  const row = await deps.db.generatedTransition.findFirst({ ...query, where: { id, accountId } } as {
    where: Prisma.GeneratedTransitionWhereInput;
  });
  if (!row) throw notFound('Generated transition');
  return row;
}

/**
 * The one place a combined video's status changes: QUEUED → RUNNING → COMPLETED | FAILED
 * (RUNNING → RUNNING when a worker takes over after a crash), conditional on the current status,
 * with `version` bumped and the change announced after commit.
 */
export async function changeGeneratedTransition(
  deps: Pick<CombineDeps, 'sql' | 'events'>,
  id: string,
  from: readonly G[],
  to: G,
  data: Partial<Pick<GeneratedTransition, 'videoUrl' | 'videoKey' | 'posterUrl' | 'subtitlesUrl' | 'durationSeconds' | 'errorCode' | 'errorMessage'>> & {
    attempts?: 'increment';
    completed?: boolean;
  } = {},
): Promise<GeneratedTransition | null> {
  const values: unknown[] = [to, [...from], id];
  const sets = [`"status" = $1::"GeneratedTransitionStatus"`, `"version" = "version" + 1`, `"updatedAt" = (now() AT TIME ZONE 'UTC')`];
  for (const key of ['videoUrl', 'videoKey', 'posterUrl', 'subtitlesUrl', 'durationSeconds', 'errorCode', 'errorMessage'] as const) {
    if (data[key] === undefined) continue;
    values.push(data[key]);
    sets.push(`"${key}" = $${values.length}`);
  }
  if (data.attempts) sets.push(`"attempts" = "attempts" + 1`);
  if (data.completed) sets.push(`"completedAt" = (now() AT TIME ZONE 'UTC')`);
  const [row] = await deps.sql.query<GeneratedTransition>(
    `UPDATE "GeneratedTransition" SET ${sets.join(', ')}
     WHERE "id" = $3::uuid AND "status" = ANY($2::"GeneratedTransitionStatus"[]) RETURNING *`,
    values,
  );
  if (row) await deps.events?.generatedTransitionChanged(row);
  return row ?? null;
}
