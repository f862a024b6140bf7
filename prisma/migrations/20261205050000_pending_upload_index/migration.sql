-- Direct uploads not completed yet, by when their URL expired: the reconciler deletes those
-- abandoned an hour after. The index holds only PENDING images, so a pass reads only those.
CREATE INDEX "Image_upload_pending_idx" ON "Image"("uploadExpiresAt") WHERE (status = 'PENDING'::"ImageStatus");
