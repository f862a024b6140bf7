-- The completedAt whose end a batchProgress message has carried: a batch closed by a process that
-- died before its message differs, and the reconciler sends its end.
ALTER TABLE "Batch" ADD COLUMN "announcedEnd" TIMESTAMP(3);

-- Batches closed before this release had their ends sent as they closed.
UPDATE "Batch" SET "announcedEnd" = "completedAt" WHERE "completedAt" IS NOT NULL;

CREATE INDEX "Batch_end_unsent_idx" ON "Batch"("completedAt") WHERE (("completedAt" IS NOT NULL) AND ("announcedEnd" IS DISTINCT FROM "completedAt"));
