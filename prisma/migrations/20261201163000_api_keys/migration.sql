-- API keys as objects: an account has any number of keys, each revocable and optionally expiring.
-- End users of an app's identity provider map to accounts by (issuer, claim).
-- The spend ledger outlives deleted transitions (what fal billed stays billed).

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" UUID NOT NULL,
    "accountId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),
    "expiresAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- Every existing account's key keeps working: its hash moves into the new table. The secret was
-- never stored, so the prefix is only the part every key shares.
INSERT INTO "ApiKey" ("id", "accountId", "name", "prefix", "hash", "createdAt")
SELECT gen_random_uuid(), "id", 'default', 'sg_', "apiKeyHash", "createdAt" FROM "Account";

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- CreateIndex
CREATE INDEX "ApiKey_accountId_createdAt_idx" ON "ApiKey"("accountId", "createdAt");

-- AddForeignKey
ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- DropIndex
DROP INDEX "Account_apiKeyHash_key";

-- AlterTable
ALTER TABLE "Account" DROP COLUMN "apiKeyHash",
ADD COLUMN     "authIssuer" TEXT,
ADD COLUMN     "authSubject" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "Account_authIssuer_authSubject_key" ON "Account"("authIssuer", "authSubject");

-- The ledger keeps a deleted transition's requests (transitionId becomes null).
-- DropForeignKey
ALTER TABLE "FalRequest" DROP CONSTRAINT "FalRequest_transitionId_fkey";

-- AlterTable
ALTER TABLE "FalRequest" ALTER COLUMN "transitionId" DROP NOT NULL;

-- AddForeignKey
ALTER TABLE "FalRequest" ADD CONSTRAINT "FalRequest_transitionId_fkey" FOREIGN KEY ("transitionId") REFERENCES "Transition"("id") ON DELETE SET NULL ON UPDATE CASCADE;
