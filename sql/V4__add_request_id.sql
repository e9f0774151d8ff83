-- The upload's request id (`X-Request-Id`), published with every dispatch of its job (the
-- relay's republish after a dead worker's lease included), so every attempt's log lines
-- carry the id the client saw. NULL for rows from before it.
ALTER TABLE images ADD COLUMN request_id TEXT;
