-- The webhook outbox. A job that ends with a callback_url is marked due for its webhook in
-- the same write that records its final status; the workers' webhook dispatchers take due
-- marks (moving each to the end of a hold, so one sender at a time tries it), and clear
-- the mark once the webhook is delivered, refused or given up. A worker that stops or dies
-- mid-delivery leaves the mark to fall due again, so no webhook is lost with it.
ALTER TABLE images ADD COLUMN webhook_due_at TIMESTAMPTZ;
-- Delivery attempts taken so far, for the back-off and the limit on attempts. No CHECK:
-- with one, adding the column would scan the whole table under an exclusive lock (without,
-- both columns are added without touching the rows).
ALTER TABLE images ADD COLUMN webhook_attempts INTEGER NOT NULL DEFAULT 0;

-- Building it reads the table once (a few seconds per million rows), while writes wait.
CREATE INDEX images_webhook_due ON images (webhook_due_at) WHERE webhook_due_at IS NOT NULL;
