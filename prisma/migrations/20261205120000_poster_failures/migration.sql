-- A poster whose job failed its last attempt is noted on its row, so the reconciler's sweep for
-- lost poster jobs passes it by and tries it again a day later. Nullable, with no default: the
-- column is added in the catalog only, without rewriting the table. The sweeps read it through
-- the awaiting-poster partial index, which already holds these rows: no index to rebuild.
ALTER TABLE "Transition" ADD COLUMN "posterFailedAt" TIMESTAMP(3);
