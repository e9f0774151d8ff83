-- The SQLite twin of ../V1__create_images.sql (the embedded, standalone store). The file
-- name deliberately lacks refinery's `V` prefix: refinery scans `sql/` recursively and
-- would otherwise run this file against PostgreSQL too. The store applies it itself and
-- records the version in `PRAGMA user_version`.
--
-- Types differ where SQLite has none of its own: ids are lower-case hyphenated UUID text
-- (which sorts like PostgreSQL's uuid), times are microseconds since the Unix epoch, JSON
-- is text.

CREATE TABLE images (
    id               TEXT    PRIMARY KEY NOT NULL,
    owner            TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    spec             TEXT    NOT NULL,
    original         TEXT    NOT NULL,
    variants         TEXT    NOT NULL DEFAULT '[]',
    error_code       TEXT,
    error_message    TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_expires_at INTEGER,
    dispatch_at      INTEGER,
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK ((error_code IS NULL) = (error_message IS NULL))
) STRICT;

CREATE INDEX images_owner_newest ON images (owner, created_at DESC, id DESC);

CREATE INDEX images_dispatch_due ON images (dispatch_at) WHERE dispatch_at IS NOT NULL;

CREATE INDEX images_lease_expiry ON images (lease_expires_at) WHERE status = 'PROCESSING';

CREATE UNIQUE INDEX images_owner_idempotency ON images (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
