-- CreateEnum
CREATE TYPE "ImageStatus" AS ENUM ('PENDING', 'CHECKING', 'READY', 'FAILED');

-- AlterTable
ALTER TABLE "Transition" ADD COLUMN     "frontImageId" UUID,
ADD COLUMN     "tailImageId" UUID,
ALTER COLUMN "frontImageUrl" DROP NOT NULL,
ALTER COLUMN "tailImageUrl" DROP NOT NULL;

-- CreateTable
CREATE TABLE "Image" (
    "id" UUID NOT NULL,
    "accountId" UUID NOT NULL,
    "status" "ImageStatus" NOT NULL,
    "key" TEXT,
    "contentType" TEXT,
    "width" INTEGER,
    "height" INTEGER,
    "bytes" INTEGER,
    "declaredContentType" TEXT,
    "declaredBytes" INTEGER,
    "uploadKey" TEXT,
    "uploadExpiresAt" TIMESTAMP(3),
    "sourceUrl" TEXT,
    "checkedAt" TIMESTAMP(3),
    "leaseUntil" TIMESTAMP(3),
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "falUrl" TEXT,
    "falUploadedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Image_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Image_accountId_createdAt_id_idx" ON "Image"("accountId", "createdAt" DESC, "id" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "Image_accountId_sourceUrl_key" ON "Image"("accountId", "sourceUrl");

-- AddForeignKey
ALTER TABLE "Transition" ADD CONSTRAINT "Transition_frontImageId_fkey" FOREIGN KEY ("frontImageId") REFERENCES "Image"("id") ON DELETE NO ACTION ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Transition" ADD CONSTRAINT "Transition_tailImageId_fkey" FOREIGN KEY ("tailImageId") REFERENCES "Image"("id") ON DELETE NO ACTION ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Image" ADD CONSTRAINT "Image_accountId_fkey" FOREIGN KEY ("accountId") REFERENCES "Account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Each side of a transition is a URL or an uploaded image, never both, never neither.
ALTER TABLE "Transition" ADD CONSTRAINT "Transition_front_image_one_source" CHECK (("frontImageUrl" IS NULL) <> ("frontImageId" IS NULL));
ALTER TABLE "Transition" ADD CONSTRAINT "Transition_tail_image_one_source" CHECK (("tailImageUrl" IS NULL) <> ("tailImageId" IS NULL));
