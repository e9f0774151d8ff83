-- The webhook target an upload may name: the status document is POSTed there when the job
-- ends. Checked by the gateway at upload (and again before each delivery); NULL when none.
ALTER TABLE images ADD COLUMN callback_url TEXT;
