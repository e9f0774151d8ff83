-- The SQLite twin of ../V2__add_callback_url.sql (see 1_create_images.sql for why the name
-- has no `V` prefix).
ALTER TABLE images ADD COLUMN callback_url TEXT;
