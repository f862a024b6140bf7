-- Direct uploads by when their URL expired, for the reconciler: an hour after, it removes what
-- may be left where the PUT lands, and deletes the image if it was never completed. It holds only
-- the images whose upload place is not cleared yet, so a pass reads only those.
CREATE INDEX "Image_upload_expiry_idx" ON "Image"("uploadExpiresAt") WHERE ("uploadExpiresAt" IS NOT NULL);
