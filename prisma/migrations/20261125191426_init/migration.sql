-- CreateEnum
CREATE TYPE "TransitionStatus" AS ENUM ('DRAFT', 'QUEUED', 'SUBMITTED', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'CANCELED');

-- CreateEnum
CREATE TYPE "GeneratedTransitionStatus" AS ENUM ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED');

-- CreateTable
CREATE TABLE "Account" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "apiKeyHash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Account_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Transition" (
    "id" UUID NOT NULL,
    "accountId" UUID NOT NULL,
    "frontImageUrl" TEXT NOT NULL,
    "tailImageUrl" TEXT NOT NULL,
    "transitionType" TEXT NOT NULL DEFAULT 'morph',
    "durationSeconds" INTEGER NOT NULL DEFAULT 5,
    "prompt" TEXT NOT NULL,
    "negativePrompt" TEXT,
    "videoUrl" TEXT,
    "enableSubtitles" BOOLEAN NOT NULL DEFAULT false,
    "audioUrl" TEXT,
    "subtitles" TEXT,
    "status" "TransitionStatus" NOT NULL DEFAULT 'DRAFT',
    "version" INTEGER NOT NULL DEFAULT 1,
    "run" INTEGER NOT NULL DEFAULT 0,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "falRequestId" TEXT,
    "queuePosition" INTEGER,
    "batchId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "queuedAt" TIMESTAMP(3),
    "submittedAt" TIMESTAMP(3),
    "startedAt" TIMESTAMP(3),
    "completedAt" TIMESTAMP(3),

    CONSTRAINT "Transition_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Batch" (
    "id" UUID NOT NULL,
    "accountId" UUID NOT NULL,
    "idempotencyKey" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completedAt" TIMESTAMP(3),

    CONSTRAINT "Batch_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "BatchItem" (
    "batchId" UUID NOT NULL,
    "transitionId" UUID NOT NULL,
    "position" INTEGER NOT NULL,
    "status" "TransitionStatus" NOT NULL,

    CONSTRAINT "BatchItem_pkey" PRIMARY KEY ("batchId","transitionId")
);

-- CreateTable
CREATE TABLE "GeneratedTransition" (
    "id" UUID NOT NULL,
    "accountId" UUID NOT NULL,
    "status" "GeneratedTransitionStatus" NOT NULL DEFAULT 'QUEUED',
    "videoUrl" TEXT,
    "audioUrl" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "GeneratedTransition_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "GeneratedTransitionItem" (
    "generatedTransitionId" UUID NOT NULL,
    "position" INTEGER NOT NULL,
    "transitionId" UUID NOT NULL,

    CONSTRAINT "GeneratedTransitionItem_pkey" PRIMARY KEY ("generatedTransitionId","position")
);

-- CreateTable
CREATE TABLE "IdempotencyKey" (
    "accountId" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "operation" TEXT NOT NULL,
    "requestHash" TEXT NOT NULL,
    "transitionIds" UUID[],
    "batchId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "IdempotencyKey_pkey" PRIMARY KEY ("accountId","key")
);

-- CreateIndex
CREATE UNIQUE INDEX "Account_apiKeyHash_key" ON "Account"("apiKeyHash");

-- CreateIndex
CREATE UNIQUE INDEX "Transition_falRequestId_key" ON "Transition"("falRequestId");

-- CreateIndex
CREATE INDEX "Transition_accountId_createdAt_id_idx" ON "Transition"("accountId", "createdAt" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "Transition_accountId_status_createdAt_idx" ON "Transition"("accountId", "status", "createdAt" DESC);

-- CreateIndex
CREATE INDEX "Transition_status_queuedAt_idx" ON "Transition"("status", "queuedAt");

-- CreateIndex
CREATE INDEX "Transition_batchId_idx" ON "Transition"("batchId");

-- CreateIndex
CREATE INDEX "Batch_accountId_createdAt_id_idx" ON "Batch"("accountId", "createdAt" DESC, "id" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "Batch_accountId_idempotencyKey_key" ON "Batch"("accountId", "idempotencyKey");

-- CreateIndex
CREATE INDEX "BatchItem_transitionId_idx" ON "BatchItem"("transitionId");

-- CreateIndex
CREATE INDEX "BatchItem_batchId_status_idx" ON "BatchItem"("batchId", "status");

-- CreateIndex
CREATE UNIQUE INDEX "BatchItem_batchId_position_key" ON "BatchItem"("batchId", "position");

-- CreateIndex
CREATE INDEX "GeneratedTransition_accountId_createdAt_id_idx" ON "GeneratedTransition"("accountId", "createdAt" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "GeneratedTransitionItem_transitionId_idx" ON "GeneratedTransitionItem"("transitionId");

-- AddForeignKey
ALTER TABLE "Transition" ADD CONSTRAINT "Transition_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Transition" ADD CONSTRAINT "Transition_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "Batch"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Batch" ADD CONSTRAINT "Batch_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "BatchItem" ADD CONSTRAINT "BatchItem_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "Batch"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "BatchItem" ADD CONSTRAINT "BatchItem_transitionId_fkey" FOREIGN KEY ("transitionId") REFERENCES "Transition"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GeneratedTransition" ADD CONSTRAINT "GeneratedTransition_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GeneratedTransitionItem" ADD CONSTRAINT "GeneratedTransitionItem_generatedTransitionId_fkey" FOREIGN KEY ("generatedTransitionId") REFERENCES "GeneratedTransition"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "GeneratedTransitionItem" ADD CONSTRAINT "GeneratedTransitionItem_transitionId_fkey" FOREIGN KEY ("transitionId") REFERENCES "Transition"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "IdempotencyKey" ADD CONSTRAINT "IdempotencyKey_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;
