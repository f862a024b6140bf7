-- Whether a batchProgress message has carried the end of the batch. The close sets it false, the
-- flush of that message true. A closed batch left false had a closer that died before its message,
-- and the reconciler sends its end. A constant default adds the column without rewriting the
-- table, and every batch closed so far had its end sent as it closed.
ALTER TABLE "Batch" ADD COLUMN "endSent" BOOLEAN NOT NULL DEFAULT true;

CREATE INDEX "Batch_end_unsent_idx" ON "Batch"("completedAt") WHERE (("completedAt" IS NOT NULL) AND (NOT "endSent"));
