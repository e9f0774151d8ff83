-- The SQLite twin of ../V3__add_webhook_outbox.sql (see 1_create_images.sql for why the
-- name has no `V` prefix).
ALTER TABLE images ADD COLUMN webhook_due_at INTEGER;
ALTER TABLE images ADD COLUMN webhook_attempts INTEGER NOT NULL DEFAULT 0;

CREATE INDEX images_webhook_due ON images (webhook_due_at) WHERE webhook_due_at IS NOT NULL;
