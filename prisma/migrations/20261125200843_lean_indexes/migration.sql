-- DropIndex
DROP INDEX "BatchItem_batchId_status_idx";

-- DropIndex
DROP INDEX "Transition_accountId_status_createdAt_idx";
