//! The production metadata store: PostgreSQL through a deadpool connection pool, shared by
//! every gateway and worker process.
//!
//! Claims lock the row (`SELECT ... FOR UPDATE`) and decide inside one transaction, so two
//! workers handed the same job by a redelivery cannot both take it; every worker write is a
//! single `UPDATE` guarded by the attempt number.

mod codec;
mod config;
mod errors;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use pixmill_actors::ports::{
    BackendError, Claim, ClaimedJob, Completion, DueWebhook, ErrorKind, JobMessage, MetadataStore,
};
use pixmill_actors::record::{Cursor, ListQuery, NewImage, Page};
use pixmill_actors::{ImageId, ImageRecord, JobError, Owner};
use tokio::time::error::Elapsed;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::NoTls;
use uuid::Uuid;

use self::codec::{attempt_param, read_row, StoredRow, COLUMNS};
pub use self::config::PostgresConfig;
use self::errors::{pg_error, pool_error};
use super::metadata_rules::{
    decide_claim, later_by, now_micros, page_limit, to_micros, ClaimRow, ClaimStep,
};

const BACKEND: &str = "postgres";

mod embedded {
    refinery::embed_migrations!("sql");
}

/// Serialises schema creation and migrations across processes starting at once; the
/// value is arbitrary but fixed.
const MIGRATION_LOCK: i64 = 0x0070_6978_6d69_6c6c;

type PgResult<T> = Result<T, BackendError>;

/// Part of every write that ends a job: its webhook falls due at once (`now` names the
/// parameter holding the write's time) when the upload named a target; see
/// [`MetadataStore::take_due_webhooks`].
fn webhook_due(now: &str) -> String {
    format!(
        "webhook_due_at = CASE WHEN callback_url IS NOT NULL THEN {now}::timestamptz END, \
         webhook_attempts = 0"
    )
}

/// How long the round trip that checks a pooled connection before reuse may take. deadpool
/// tries the next idle connection when one fails the check, so with a host gone silent
/// (no reset) a call may spend this on each idle connection in turn before it gets a new
/// one: a healthy server answers in milliseconds, so this is kept short.
const RECYCLE_CHECK: Duration = Duration::from_secs(2);

/// A [`MetadataStore`] in PostgreSQL.
///
/// Every call waits at most `wait_timeout` for a free pooled connection and `query_timeout`
/// for its statements. Pooled connections are checked with a round trip before reuse (at
/// most [`RECYCLE_CHECK`] each), so after a PostgreSQL restart the dead ones are replaced
/// instead of failing one call each (at the cost of one short round trip per call).
///
/// Lease and update times come from the calling host's clock, like the `now` the relay
/// passes, so gateway and worker hosts must keep their clocks in sync (NTP); a worker host
/// running fast shortens the leases it takes.
///
/// Connections are unencrypted (`NoTls`): a URL that demands TLS (`sslmode=require`) fails
/// to connect. Keep the database on a private network until TLS support is added.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    query_timeout: Duration,
    description: String,
}

impl PostgresStore {
    /// Builds the pool, creates the schema if one is configured and applies the embedded
    /// migrations, all before the store serves a call.
    pub async fn connect(config: &PostgresConfig) -> PgResult<Self> {
        let driver = config.driver_config()?;
        let description = config::describe(&driver, config.schema.as_deref());
        let manager = Manager::from_config(
            driver,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.query_timeout.min(RECYCLE_CHECK)))
            .build()
            .map_err(|e| BackendError::new(BACKEND, ErrorKind::Internal, e.to_string()))?;
        let store = Self {
            pool,
            query_timeout: config.query_timeout,
            description,
        };
        store.migrate(config.schema.as_deref()).await?;
        tracing::info!(store = %store.description, "postgres metadata store ready");
        Ok(store)
    }

    async fn migrate(&self, schema: Option<&str>) -> PgResult<()> {
        let mut client = self.client().await?;
        // Migrations may take longer than one query; give them a generous fixed bound.
        let bound = self.query_timeout.max(Duration::from_secs(60));
        let outcome = tokio::time::timeout(bound, migrate(&mut client, schema, bound)).await;
        // The advisory lock is per session: on any failure close the connection rather
        // than hand a session that may still hold it back to the pool.
        match outcome {
            Ok(Ok(applied)) => {
                tracing::info!(applied, "postgres migrations applied");
                Ok(())
            }
            Ok(Err(error)) => {
                drop(Object::take(client));
                Err(error)
            }
            Err(_) => {
                drop(Object::take(client));
                Err(BackendError::timeout(BACKEND, "migrations timed out"))
            }
        }
    }

    async fn client(&self) -> PgResult<Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Bounds one call's statements by `query_timeout`.
    fn deadline<F: Future>(&self, work: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(self.query_timeout, work)
    }

    /// Ends a call begun with [`Self::deadline`]. A call that timed out may have left a
    /// statement running on its connection, so that connection is closed instead of
    /// returned to the pool.
    fn settle<T>(&self, client: Object, outcome: Result<PgResult<T>, Elapsed>) -> PgResult<T> {
        match outcome {
            Ok(result) => result,
            Err(_) => {
                drop(Object::take(client));
                tracing::warn!(store = %self.description, "postgres call timed out");
                Err(BackendError::timeout(BACKEND, "query timed out"))
            }
        }
    }
}

/// Creates the schema and applies the embedded migrations under an advisory lock.
async fn migrate(client: &mut Object, schema: Option<&str>, bound: Duration) -> PgResult<usize> {
    // Every session starts with `statement_timeout` at `query_timeout`; the lock wait and a
    // migration's statements (an index on a large table) get the whole bound instead. Reset
    // at the end: the session goes back to the pool (on failure it is closed instead).
    client
        .batch_execute(&format!("SET statement_timeout = {}", bound.as_millis()))
        .await
        .map_err(pg_error)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    if let Some(schema) = schema {
        // The name passed `check_schema_name`, so it is safe unquoted.
        let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
        client.batch_execute(&create).await.map_err(pg_error)?;
    }
    let report = embedded::migrations::runner()
        .run_async(&mut ***client)
        .await
        .map_err(|e| BackendError::new(BACKEND, ErrorKind::Internal, e.to_string()))?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    client
        .batch_execute("RESET statement_timeout")
        .await
        .map_err(pg_error)?;
    Ok(report.applied_migrations().len())
}

async fn select_one(
    client: &Object,
    filter: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Option<StoredRow>> {
    let sql = format!("SELECT {COLUMNS} FROM images WHERE {filter}");
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let row = client
        .query_opt(&statement, params)
        .await
        .map_err(pg_error)?;
    row.as_ref().map(read_row).transpose()
}

async fn by_owner(client: &Object, owner: &Owner, id: ImageId) -> PgResult<Option<ImageRecord>> {
    let params: [&(dyn ToSql + Sync); 2] = [&id.as_uuid(), &owner.as_str()];
    let row = select_one(client, "id = $1 AND owner = $2", &params).await?;
    Ok(row.map(|row| row.record))
}

async fn by_key(client: &Object, owner: &Owner, key: &str) -> PgResult<Option<ImageRecord>> {
    let params: [&(dyn ToSql + Sync); 2] = [&owner.as_str(), &key];
    let row = select_one(client, "owner = $1 AND idempotency_key = $2", &params).await?;
    Ok(row.map(|row| row.record))
}

async fn insert(client: &Object, image: &NewImage) -> PgResult<Result<ImageRecord, ImageRecord>> {
    let sql = format!(
        "INSERT INTO images (id, owner, status, spec, original, variants, attempts, \
             dispatch_at, idempotency_key, created_at, updated_at, callback_url, request_id) \
         VALUES ($1, $2, 'PENDING', $3, $4, '[]'::jsonb, 0, $5, $6, $7, $7, $8, $9) \
         ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING {COLUMNS}"
    );
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let created_at = to_micros(image.created_at);
    // Stored exactly as `mark_dispatched` will compare it.
    let dispatch_at = to_micros(image.dispatch_at);
    let params: [&(dyn ToSql + Sync); 9] = [
        &image.id.as_uuid(),
        &image.owner.as_str(),
        &Json(&image.spec),
        &Json(&image.original),
        &dispatch_at,
        &image.idempotency_key,
        &created_at,
        &image.callback_url,
        &image.request_id,
    ];
    // A conflict waits for the other insert to commit, then inserts nothing; the existing
    // row is then visible to the next statement. Should it be deleted in between, try again.
    for _ in 0..3 {
        if let Some(row) = client
            .query_opt(&statement, &params)
            .await
            .map_err(pg_error)?
        {
            return Ok(Ok(read_row(&row)?.record));
        }
        let key = image.idempotency_key.as_deref().unwrap_or_default();
        if let Some(existing) = by_key(client, &image.owner, key).await? {
            return Ok(Err(existing));
        }
    }
    // Every try inserted nothing (the conflict), so this row was certainly not written.
    Err(BackendError::new(
        BACKEND,
        ErrorKind::Internal,
        "idempotency key kept conflicting with a row that was deleted",
    )
    .not_applied())
}

async fn list(client: &Object, owner: &Owner, query: &ListQuery) -> PgResult<Page> {
    let limit = page_limit(query.limit);
    let owner = owner.as_str();
    let status = query.status.map(|s| s.as_str());
    let after = query
        .after
        .map(|c| (to_micros(c.created_at), c.id.as_uuid()));
    let fetch = i64::from(limit) + 1;

    let mut filters = vec!["owner = $1".to_owned()];
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&owner];
    if let Some(status) = &status {
        params.push(status);
        filters.push(format!("status = ${}", params.len()));
    }
    if let Some((created_at, id)) = &after {
        params.push(created_at);
        params.push(id);
        let (at, id) = (params.len() - 1, params.len());
        filters.push(format!("(created_at, id) < (${at}, ${id})"));
    }
    params.push(&fetch);
    // One row beyond the page says whether a next page exists.
    let sql = format!(
        "SELECT {COLUMNS} FROM images WHERE {} ORDER BY created_at DESC, id DESC LIMIT ${}",
        filters.join(" AND "),
        params.len()
    );
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let rows = client.query(&statement, &params).await.map_err(pg_error)?;
    let mut items = rows
        .iter()
        .map(|row| read_row(row).map(|row| row.record))
        .collect::<PgResult<Vec<_>>>()?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(Cursor::of)
    } else {
        None
    };
    Ok(Page { items, next })
}

async fn delete(client: &Object, owner: &Owner, id: ImageId) -> PgResult<Option<ImageRecord>> {
    let sql = format!("DELETE FROM images WHERE id = $1 AND owner = $2 RETURNING {COLUMNS}");
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let params: [&(dyn ToSql + Sync); 2] = [&id.as_uuid(), &owner.as_str()];
    let row = client
        .query_opt(&statement, &params)
        .await
        .map_err(pg_error)?;
    Ok(row
        .as_ref()
        .map(read_row)
        .transpose()?
        .map(|row| row.record))
}

async fn claim(
    client: &mut Object,
    id: ImageId,
    lease: Duration,
    max_attempts: u32,
) -> PgResult<Claim> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let select = format!("SELECT {COLUMNS} FROM images WHERE id = $1 FOR UPDATE");
    let select = tx.prepare_cached(&select).await.map_err(pg_error)?;
    let Some(row) = tx
        .query_opt(&select, &[&id.as_uuid()])
        .await
        .map_err(pg_error)?
    else {
        return Ok(Claim::Missing);
    };
    let row = read_row(&row)?;
    let now = now_micros();
    let state = ClaimRow {
        status: row.record.status,
        attempts: row.record.attempts,
        lease_expires_at: row.lease_expires_at,
        dispatch_at: row.dispatch_at,
        last_error: row.record.error.as_ref(),
    };
    let claim = match decide_claim(&state, now, lease, max_attempts) {
        ClaimStep::Finished => Claim::Finished,
        ClaimStep::LeasedElsewhere => Claim::LeasedElsewhere,
        ClaimStep::NotDue => Claim::NotDue,
        ClaimStep::Exhaust(error) => {
            let sql = format!(
                "UPDATE images SET status = 'FAILED', error_code = $2, error_message = $3, \
                     lease_expires_at = NULL, dispatch_at = NULL, updated_at = $4, {} \
                 WHERE id = $1 RETURNING {COLUMNS}",
                webhook_due("$4")
            );
            let params: [&(dyn ToSql + Sync); 4] =
                [&id.as_uuid(), &error.code, &error.message, &now];
            let row = tx.query_one(&sql, &params).await.map_err(pg_error)?;
            Claim::Exhausted(read_row(&row)?.record)
        }
        ClaimStep::Take {
            attempt,
            lease_until,
        } => {
            let stored_attempt = attempt_param(attempt).ok_or_else(|| {
                BackendError::new(BACKEND, ErrorKind::Rejected, "attempt number too large")
            })?;
            let sql = format!(
                "UPDATE images SET status = 'PROCESSING', attempts = $2, \
                     lease_expires_at = $3, dispatch_at = NULL, updated_at = $4 \
                 WHERE id = $1 RETURNING {COLUMNS}"
            );
            let params: [&(dyn ToSql + Sync); 4] =
                [&id.as_uuid(), &stored_attempt, &lease_until, &now];
            let row = tx.query_one(&sql, &params).await.map_err(pg_error)?;
            let record = read_row(&row)?.record;
            Claim::Claimed(ClaimedJob { attempt, record })
        }
    };
    tx.commit().await.map_err(pg_error)?;
    Ok(claim)
}

/// Moves the lease of a live attempt on (see [`MetadataStore::renew_lease`]). A lease the
/// relay has taken back is `NULL`, so the guard keeps a re-dispatched job re-dispatched.
async fn renew_lease(
    client: &Object,
    id: ImageId,
    attempt: u32,
    lease: Duration,
) -> PgResult<bool> {
    let Some(attempt) = attempt_param(attempt) else {
        return Ok(false);
    };
    let statement = client
        .prepare_cached(
            "UPDATE images SET lease_expires_at = $3 \
             WHERE id = $1 AND attempts = $2 AND status = 'PROCESSING' \
                   AND lease_expires_at IS NOT NULL",
        )
        .await
        .map_err(pg_error)?;
    let until = to_micros(later_by(now_micros(), lease));
    let changed = client
        .execute(&statement, &[&id.as_uuid(), &attempt, &until])
        .await
        .map_err(pg_error)?;
    Ok(changed == 1)
}

/// A worker's write, guarded by its attempt: only the current attempt of a job still in
/// `PROCESSING` may change the row. `set` uses parameters from `$4` on.
async fn guarded_update(
    client: &Object,
    set: &str,
    id: ImageId,
    attempt: u32,
    values: &[&(dyn ToSql + Sync)],
) -> PgResult<bool> {
    let Some(attempt) = attempt_param(attempt) else {
        return Ok(false);
    };
    let sql = format!(
        "UPDATE images SET {set}, lease_expires_at = NULL, updated_at = $3 \
         WHERE id = $1 AND attempts = $2 AND status = 'PROCESSING'"
    );
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let (id, now) = (id.as_uuid(), now_micros());
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &attempt, &now];
    params.extend_from_slice(values);
    let changed = client
        .execute(&statement, &params)
        .await
        .map_err(pg_error)?;
    Ok(changed == 1)
}

async fn due_dispatches(
    client: &mut Object,
    now: DateTime<Utc>,
    limit: u32,
) -> PgResult<Vec<(JobMessage, DateTime<Utc>)>> {
    let now = to_micros(now);
    let limit = i64::from(limit);
    let tx = client.transaction().await.map_err(pg_error)?;
    // An expired lease means its worker died: mark the job due now so the relay's confirm
    // (`mark_dispatched`) has a mark to clear. Dropping the lease keeps the next scan from
    // finding the same job again once the confirm cleared the mark. Rows a claim is
    // locking right now are skipped: that claim is taking the job anyway.
    tx.execute(
        "UPDATE images SET dispatch_at = $1, lease_expires_at = NULL \
         WHERE id IN (SELECT id FROM images \
                      WHERE status = 'PROCESSING' AND lease_expires_at <= $1 \
                      ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&now, &limit],
    )
    .await
    .map_err(pg_error)?;
    let rows = tx
        .query(
            "SELECT id, owner, dispatch_at, request_id FROM images WHERE dispatch_at <= $1 \
             ORDER BY dispatch_at, id LIMIT $2",
            &[&now, &limit],
        )
        .await
        .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    rows.iter().map(dispatch_of).collect()
}

async fn take_due_webhooks(
    client: &Object,
    now: DateTime<Utc>,
    hold: Duration,
    limit: u32,
) -> PgResult<Vec<DueWebhook>> {
    let now = to_micros(now);
    let held_until = to_micros(later_by(now, hold));
    // Rows another sender is taking right now are skipped; once it commits, their marks
    // lie in the future and no longer match.
    let sql = format!(
        "UPDATE images SET webhook_due_at = $2, webhook_attempts = webhook_attempts + 1 \
         WHERE id IN (SELECT id FROM images WHERE webhook_due_at <= $1 \
                      ORDER BY webhook_due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}, webhook_attempts"
    );
    let statement = client.prepare_cached(&sql).await.map_err(pg_error)?;
    let params: [&(dyn ToSql + Sync); 3] = [&now, &held_until, &i64::from(limit)];
    let rows = client.query(&statement, &params).await.map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            let attempts: i32 = row.try_get(14).map_err(pg_error)?;
            Ok(DueWebhook {
                record: read_row(row)?.record,
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                held_until,
            })
        })
        .collect()
}

fn dispatch_of(row: &tokio_postgres::Row) -> PgResult<(JobMessage, DateTime<Utc>)> {
    let owner: String = row.try_get(1).map_err(pg_error)?;
    let owner = Owner::parse(owner).map_err(|e| {
        BackendError::new(BACKEND, ErrorKind::Internal, "undecodable images row").with_source(e)
    })?;
    let job = JobMessage {
        image_id: ImageId::from_uuid(row.try_get(0).map_err(pg_error)?),
        owner,
        trace_id: row.try_get(3).map_err(pg_error)?,
    };
    Ok((job, row.try_get(2).map_err(pg_error)?))
}

#[async_trait]
impl MetadataStore for PostgresStore {
    async fn insert(
        &self,
        image: &NewImage,
    ) -> Result<Result<ImageRecord, ImageRecord>, BackendError> {
        let client = self.client().await?;
        let outcome = self.deadline(insert(&client, image)).await;
        self.settle(client, outcome)
    }

    async fn get(&self, owner: &Owner, id: ImageId) -> Result<Option<ImageRecord>, BackendError> {
        let client = self.client().await?;
        let outcome = self.deadline(by_owner(&client, owner, id)).await;
        self.settle(client, outcome)
    }

    async fn find_by_idempotency_key(
        &self,
        owner: &Owner,
        key: &str,
    ) -> Result<Option<ImageRecord>, BackendError> {
        let client = self.client().await?;
        let outcome = self.deadline(by_key(&client, owner, key)).await;
        self.settle(client, outcome)
    }

    async fn list(&self, owner: &Owner, query: &ListQuery) -> Result<Page, BackendError> {
        let client = self.client().await?;
        let outcome = self.deadline(list(&client, owner, query)).await;
        self.settle(client, outcome)
    }

    async fn delete(
        &self,
        owner: &Owner,
        id: ImageId,
    ) -> Result<Option<ImageRecord>, BackendError> {
        let client = self.client().await?;
        let outcome = self.deadline(delete(&client, owner, id)).await;
        self.settle(client, outcome)
    }

    async fn claim(
        &self,
        id: ImageId,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Claim, BackendError> {
        let mut client = self.client().await?;
        let outcome = self
            .deadline(claim(&mut client, id, lease, max_attempts))
            .await;
        self.settle(client, outcome)
    }

    async fn renew_lease(
        &self,
        id: ImageId,
        attempt: u32,
        lease: Duration,
    ) -> Result<bool, BackendError> {
        let client = self.client().await?;
        let outcome = self
            .deadline(renew_lease(&client, id, attempt, lease))
            .await;
        self.settle(client, outcome)
    }

    async fn complete(
        &self,
        id: ImageId,
        attempt: u32,
        done: &Completion,
    ) -> Result<bool, BackendError> {
        let client = self.client().await?;
        let set = format!(
            "status = 'COMPLETED', variants = $4, error_code = NULL, \
             error_message = NULL, dispatch_at = NULL, {}",
            webhook_due("$3")
        );
        let variants = Json(&done.variants);
        let outcome = self
            .deadline(guarded_update(&client, &set, id, attempt, &[&variants]))
            .await;
        self.settle(client, outcome)
    }

    async fn fail(
        &self,
        id: ImageId,
        attempt: u32,
        error: &JobError,
    ) -> Result<bool, BackendError> {
        let client = self.client().await?;
        let set = format!(
            "status = 'FAILED', error_code = $4, error_message = $5, dispatch_at = NULL, \
             {}",
            webhook_due("$3")
        );
        let values: [&(dyn ToSql + Sync); 2] = [&error.code, &error.message];
        let outcome = self
            .deadline(guarded_update(&client, &set, id, attempt, &values))
            .await;
        self.settle(client, outcome)
    }

    async fn retry_later(
        &self,
        id: ImageId,
        attempt: u32,
        error: &JobError,
        retry_at: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let client = self.client().await?;
        let set = "status = 'PENDING', error_code = $4, error_message = $5, dispatch_at = $6";
        let retry_at = to_micros(retry_at);
        let values: [&(dyn ToSql + Sync); 3] = [&error.code, &error.message, &retry_at];
        let outcome = self
            .deadline(guarded_update(&client, set, id, attempt, &values))
            .await;
        self.settle(client, outcome)
    }

    async fn mark_dispatched(&self, id: ImageId, due: DateTime<Utc>) -> Result<(), BackendError> {
        let client = self.client().await?;
        let due = to_micros(due);
        let work = async {
            let sql = "UPDATE images SET dispatch_at = NULL WHERE id = $1 AND dispatch_at = $2";
            let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
            let params: [&(dyn ToSql + Sync); 2] = [&id.as_uuid(), &due];
            client
                .execute(&statement, &params)
                .await
                .map_err(pg_error)?;
            Ok(())
        };
        let outcome = self.deadline(work).await;
        self.settle(client, outcome)
    }

    async fn due_dispatches(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(JobMessage, DateTime<Utc>)>, BackendError> {
        let mut client = self.client().await?;
        let outcome = self.deadline(due_dispatches(&mut client, now, limit)).await;
        self.settle(client, outcome)
    }

    async fn redispatch_unfinished(&self, now: DateTime<Utc>) -> Result<u64, BackendError> {
        let client = self.client().await?;
        let now = to_micros(now);
        // Standalone mode only (one engine): a `PROCESSING` job's worker is gone, so its
        // lease goes too, or the job would wait for it to expire.
        let work = async {
            let sql = "UPDATE images SET dispatch_at = $1, \
                           lease_expires_at = CASE WHEN status = 'PROCESSING' THEN NULL \
                                                   ELSE lease_expires_at END \
                       WHERE status IN ('PENDING', 'PROCESSING')";
            client.execute(sql, &[&now]).await.map_err(pg_error)
        };
        let outcome = self.deadline(work).await;
        self.settle(client, outcome)
    }

    async fn take_due_webhooks(
        &self,
        now: DateTime<Utc>,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<DueWebhook>, BackendError> {
        let client = self.client().await?;
        let outcome = self
            .deadline(take_due_webhooks(&client, now, hold, limit))
            .await;
        self.settle(client, outcome)
    }

    async fn settle_webhook(
        &self,
        id: ImageId,
        held_until: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, BackendError> {
        let client = self.client().await?;
        let (held_until, next) = (to_micros(held_until), next.map(to_micros));
        let work = async {
            let sql = "UPDATE images SET webhook_due_at = $3 \
                       WHERE id = $1 AND webhook_due_at = $2";
            let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
            let params: [&(dyn ToSql + Sync); 3] = [&id.as_uuid(), &held_until, &next];
            let changed = client
                .execute(&statement, &params)
                .await
                .map_err(pg_error)?;
            Ok(changed == 1)
        };
        let outcome = self.deadline(work).await;
        self.settle(client, outcome)
    }

    async fn existing(&self, ids: &[ImageId]) -> Result<Vec<ImageId>, BackendError> {
        let client = self.client().await?;
        let ids: Vec<Uuid> = ids.iter().map(ImageId::as_uuid).collect();
        let work = async {
            let statement = client
                .prepare_cached("SELECT id FROM images WHERE id = ANY($1)")
                .await
                .map_err(pg_error)?;
            let rows = client.query(&statement, &[&ids]).await.map_err(pg_error)?;
            rows.iter()
                .map(|row| row.try_get(0).map(ImageId::from_uuid).map_err(pg_error))
                .collect()
        };
        let outcome = self.deadline(work).await;
        self.settle(client, outcome)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let client = self.client().await?;
        let work = async {
            client.simple_query("SELECT 1").await.map_err(pg_error)?;
            Ok(())
        };
        let outcome = self.deadline(work).await;
        self.settle(client, outcome)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
