-- Closed batches by when they closed: the reconciler announces recent ends again.
CREATE INDEX "Batch_closed_idx" ON "Batch"("completedAt") WHERE ("completedAt" IS NOT NULL);
