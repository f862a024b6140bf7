-- Never pay twice, never show a wrong state: the ledger of submissions to fal becomes the record
-- of what may be in flight there (the FAL_CONCURRENCY slots and the budget reservations, held in
-- PostgreSQL so they outlive Redis), and periodic sweeps read indexes that hold only open work.

-- CreateEnum
CREATE TYPE "FalRequestState" AS ENUM ('SUBMITTING', 'UNCERTAIN', 'ACCEPTED', 'ENDED', 'REFUSED');

-- AlterTable: a ledger row exists from the claim on, before fal gave the request an id.
ALTER TABLE "FalRequest" DROP CONSTRAINT "FalRequest_pkey",
ADD COLUMN     "cancelReason" TEXT,
ADD COLUMN     "cancelRequestedAt" TIMESTAMP(3),
ADD COLUMN     "endedAt" TIMESTAMP(3),
ADD COLUMN     "id" UUID NOT NULL DEFAULT gen_random_uuid(),
ADD COLUMN     "outcome" TEXT,
ADD COLUMN     "state" "FalRequestState" NOT NULL DEFAULT 'SUBMITTING',
ALTER COLUMN "requestId" DROP NOT NULL,
ADD CONSTRAINT "FalRequest_pkey" PRIMARY KEY ("id");

-- Requests recorded before: in flight when a running transition still holds them and has no
-- result yet, else ended (a result being copied is over at fal).
UPDATE "FalRequest" f SET "state" = 'ENDED', "endedAt" = f."createdAt";
UPDATE "FalRequest" f SET "state" = 'ACCEPTED', "endedAt" = NULL
FROM "Transition" t
WHERE t."falRequestId" = f."requestId" AND t."status" IN ('SUBMITTED', 'IN_PROGRESS') AND t."falVideoUrl" IS NULL;
-- A submit recorded twice for one attempt (only a double payment could do that) keeps its
-- newest row under that attempt, the older ones move to negative attempt numbers.
UPDATE "FalRequest" f SET "attempt" = -f."attempt" - (SELECT count(*) FROM "FalRequest" g
  WHERE g."transitionId" = f."transitionId" AND g."run" = f."run" AND g."attempt" = f."attempt" AND g."createdAt" > f."createdAt")::int
WHERE EXISTS (SELECT 1 FROM "FalRequest" g
  WHERE g."transitionId" = f."transitionId" AND g."run" = f."run" AND g."attempt" = f."attempt" AND g."createdAt" > f."createdAt");

-- CreateIndex
CREATE INDEX "Batch_open_idx" ON "Batch"("createdAt") WHERE ("completedAt" IS NULL);

-- CreateIndex
CREATE UNIQUE INDEX "FalRequest_requestId_key" ON "FalRequest"("requestId");

-- CreateIndex
CREATE INDEX "FalRequest_open_idx" ON "FalRequest"("createdAt") WHERE (state IN ('SUBMITTING', 'ACCEPTED'));

-- CreateIndex
CREATE UNIQUE INDEX "FalRequest_transitionId_run_attempt_key" ON "FalRequest"("transitionId", "run", "attempt");

-- CreateIndex
CREATE INDEX "GeneratedTransition_open_idx" ON "GeneratedTransition"("createdAt") WHERE (status IN ('QUEUED', 'RUNNING'));

-- CreateIndex
CREATE INDEX "IdempotencyKey_createdAt_idx" ON "IdempotencyKey"("createdAt");

-- CreateIndex
CREATE INDEX "Transition_awaiting_poster_idx" ON "Transition"("completedAt") WHERE (status = 'COMPLETED' AND "posterKey" IS NULL AND "videoKey" IS NOT NULL);
