-- The SQLite twin of ../V4__add_request_id.sql (see 1_create_images.sql for why the name
-- has no `V` prefix).
ALTER TABLE images ADD COLUMN request_id TEXT;
