-- The digest of the image a box was created from, so cached images in use are
-- never pruned even when their tag has moved on.
ALTER TABLE boxes ADD COLUMN image_digest TEXT;
