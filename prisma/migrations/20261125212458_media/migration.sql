-- AlterTable
ALTER TABLE "GeneratedTransition" ADD COLUMN     "attempts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "burnSubtitles" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "completedAt" TIMESTAMP(3),
ADD COLUMN     "durationSeconds" DOUBLE PRECISION,
ADD COLUMN     "errorCode" TEXT,
ADD COLUMN     "errorMessage" TEXT,
ADD COLUMN     "posterUrl" TEXT,
ADD COLUMN     "subtitlesUrl" TEXT,
ADD COLUMN     "version" INTEGER NOT NULL DEFAULT 1,
ADD COLUMN     "videoKey" TEXT;

-- AlterTable
ALTER TABLE "Transition" ADD COLUMN     "falVideoUrl" TEXT,
ADD COLUMN     "posterKey" TEXT,
ADD COLUMN     "posterUrl" TEXT,
ADD COLUMN     "videoKey" TEXT;
