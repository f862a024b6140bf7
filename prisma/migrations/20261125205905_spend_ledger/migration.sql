-- AlterTable
ALTER TABLE "Account" ADD COLUMN     "budgetUsd" DECIMAL(12,4);

-- CreateTable
CREATE TABLE "FalRequest" (
    "requestId" TEXT NOT NULL,
    "accountId" UUID NOT NULL,
    "transitionId" UUID NOT NULL,
    "run" INTEGER NOT NULL,
    "attempt" INTEGER NOT NULL,
    "model" TEXT NOT NULL,
    "costUsd" DECIMAL(12,4) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "FalRequest_pkey" PRIMARY KEY ("requestId")
);

-- CreateIndex
CREATE INDEX "FalRequest_accountId_createdAt_idx" ON "FalRequest"("accountId", "createdAt");

-- CreateIndex
CREATE INDEX "FalRequest_transitionId_idx" ON "FalRequest"("transitionId");

-- AddForeignKey
ALTER TABLE "FalRequest" ADD CONSTRAINT "FalRequest_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "FalRequest" ADD CONSTRAINT "FalRequest_transitionId_fkey" FOREIGN KEY ("transitionId") REFERENCES "Transition"("id") ON DELETE CASCADE ON UPDATE CASCADE;
