-- The metadata of every image: the source of truth for status, ownership and which jobs
-- still need to be (re)published. Applied by refinery at start, before the pool serves.

CREATE TABLE images (
    id               UUID        PRIMARY KEY,
    owner            TEXT        NOT NULL,
    status           TEXT        NOT NULL
        CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    -- JobSpec, StoredImage and [StoredVariant] as the engine serialises them.
    spec             JSONB       NOT NULL,
    original         JSONB       NOT NULL,
    variants         JSONB       NOT NULL DEFAULT '[]'::jsonb,
    -- The last failure: final when FAILED, the reason for a pending retry otherwise.
    error_code       TEXT,
    error_message    TEXT,
    attempts         INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Set while a worker holds the job; past it, the worker is presumed dead.
    lease_expires_at TIMESTAMPTZ,
    -- When the relay must (re)publish the job; NULL once the queue confirmed it.
    dispatch_at      TIMESTAMPTZ,
    idempotency_key  TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CHECK ((error_code IS NULL) = (error_message IS NULL))
);

-- An owner's listing, newest first, with a keyset cursor on (created_at, id).
CREATE INDEX images_owner_newest ON images (owner, created_at DESC, id DESC);

-- The relay's scan for jobs due for publishing; few rows carry a mark at any time.
CREATE INDEX images_dispatch_due ON images (dispatch_at) WHERE dispatch_at IS NOT NULL;

-- The relay's scan for expired leases; only jobs in flight are indexed.
CREATE INDEX images_lease_expiry ON images (lease_expires_at) WHERE status = 'PROCESSING';

-- One upload per owner and idempotency key, also under concurrent requests.
CREATE UNIQUE INDEX images_owner_idempotency ON images (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
