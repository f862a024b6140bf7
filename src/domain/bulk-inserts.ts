import type { Prisma, Transition } from '../generated/prisma/client.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
import type { Tx } from './idempotency.ts';

/**
 * Bulk inserts for the create path. Prisma's createMany costs about 30 ms for 100 transitions
 * here (its query compiler and row mapping run in JS); one INSERT ... SELECT FROM unnest(...)
 * costs about 4 ms and returns the stored rows, which keeps createTransitions(100) well inside
 * its 100 ms p99 budget (bench/create.ts). The row types still come from Prisma.
 */
export type NewTransition = Pick<
  Prisma.TransitionUncheckedCreateInput,
  | 'frontImageUrl'
  | 'tailImageUrl'
  | 'frontImageId'
  | 'tailImageId'
  | 'prompt'
  | 'negativePrompt'
  | 'transitionType'
  | 'durationSeconds'
  | 'enableSubtitles'
  | 'subtitles'
  | 'audioUrl'
> & {
  id: string;
  accountId: string;
  status?: TransitionStatus;
  batchId?: string;
  run?: number;
  queuedAt?: Date;
};

export async function insertTransitions(tx: Tx, rows: readonly NewTransition[]): Promise<Transition[]> {
  const col = <K extends keyof NewTransition>(key: K) => rows.map((r) => r[key] ?? null);
  return tx.$queryRaw<Transition[]>`
    INSERT INTO "Transition" ("id", "accountId", "frontImageUrl", "tailImageUrl", "frontImageId", "tailImageId", "prompt", "negativePrompt",
                              "transitionType", "durationSeconds", "enableSubtitles", "subtitles", "audioUrl",
                              "status", "batchId", "run", "queuedAt", "createdAt", "updatedAt")
    SELECT id, "accountId", "frontImageUrl", "tailImageUrl", "frontImageId", "tailImageId", prompt, "negativePrompt", "transitionType",
           "durationSeconds", "enableSubtitles", subtitles, "audioUrl",
           coalesce(status, 'DRAFT'), "batchId", coalesce(run, 0), "queuedAt", utc_now, utc_now
    FROM unnest(
      ${col('id')}::uuid[], ${col('accountId')}::uuid[], ${col('frontImageUrl')}::text[], ${col('tailImageUrl')}::text[],
      ${col('frontImageId')}::uuid[], ${col('tailImageId')}::uuid[],
      ${col('prompt')}::text[], ${col('negativePrompt')}::text[], ${col('transitionType')}::text[],
      ${col('durationSeconds')}::int[], ${col('enableSubtitles')}::boolean[], ${col('subtitles')}::text[],
      ${col('audioUrl')}::text[], ${col('status')}::"TransitionStatus"[], ${col('batchId')}::uuid[], ${col('run')}::int[],
      ${col('queuedAt')}::timestamp(3)[]
    ) AS t(id, "accountId", "frontImageUrl", "tailImageUrl", "frontImageId", "tailImageId", prompt, "negativePrompt", "transitionType",
           "durationSeconds", "enableSubtitles", subtitles, "audioUrl", status, "batchId", run, "queuedAt"),
    -- Prisma keeps DateTime as UTC in "timestamp without time zone" columns.
    (SELECT now() AT TIME ZONE 'UTC' AS utc_now) AS clock
    RETURNING *`;
}

export async function insertBatchItems(tx: Tx, batchId: string, transitionIds: readonly string[], status: TransitionStatus) {
  await tx.$executeRaw`
    INSERT INTO "BatchItem" ("batchId", "transitionId", "position", "status")
    SELECT ${batchId}::uuid, t.id, t.ord - 1, ${status}::"TransitionStatus"
    FROM unnest(${[...transitionIds]}::uuid[]) WITH ORDINALITY AS t(id, ord)`;
}
