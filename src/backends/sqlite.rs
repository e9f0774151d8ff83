//! The embedded metadata store for standalone mode: one SQLite file in the data directory.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a write the store acknowledged is on
//! disk and survives a crash or power loss, not only a clean restart.
//!
//! Every statement on a hot path is prepared once per connection and kept
//! (`prepare_cached`): parsing the SQL again for each read and write was a tenth of the
//! standalone server's CPU outside rendering in a throughput profile (BENCHMARKS.md).

mod codec;
mod committer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pixmill_actors::ports::{
    BackendError, Claim, ClaimedJob, Completion, DueWebhook, ErrorKind, JobMessage, MetadataStore,
};
use pixmill_actors::record::{Cursor, ListQuery, NewImage, Page};
use pixmill_actors::{ImageId, ImageRecord, JobError, Owner};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use self::codec::{
    json_text, micros, read_dispatch, read_row, StoredRow, COLUMNS, DISPATCH_COLUMNS,
};
use self::committer::Committer;
use super::metadata_rules::{
    decide_claim, later_by, now_micros, page_limit, to_micros, ClaimRow, ClaimStep,
};

const BACKEND: &str = "sqlite";

/// The schema, in steps: step N is applied when the file's `user_version` is below N.
const MIGRATIONS: [&str; 4] = [
    include_str!("../../sql/sqlite/1_create_images.sql"),
    include_str!("../../sql/sqlite/2_add_callback_url.sql"),
    include_str!("../../sql/sqlite/3_add_webhook_outbox.sql"),
    include_str!("../../sql/sqlite/4_add_request_id.sql"),
];

/// Part of every write that ends a job: its webhook falls due at once (`now` is the
/// parameter holding the write's time) when the upload named a target; see
/// [`MetadataStore::take_due_webhooks`].
fn webhook_due(now: &str) -> String {
    format!(
        "webhook_due_at = CASE WHEN callback_url IS NOT NULL THEN {now} END, webhook_attempts = 0"
    )
}

/// Prepared statements kept per connection: more than the distinct statements the store
/// runs (reads, writes, the listing's filter combinations), so none is evicted and parsed
/// again.
const STATEMENT_CACHE: usize = 48;

/// How long a statement waits for a lock held by another process on the same file (a
/// second `pixmill` pointed at the same data directory) before failing with `Timeout`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`MetadataStore`] in one SQLite file.
///
/// Two connections: writes go to one thread that commits whatever is waiting in one
/// transaction (see [`committer`]), reads to a second connection behind a mutex on the
/// blocking pool, so a status read never waits for a write's flush (WAL lets the reader see
/// every committed write meanwhile). SQLite has one writer, and batching is how it keeps up
/// with a standalone engine's uploads and status writes; a deployment that outgrows one
/// writer thread belongs on PostgreSQL.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Committer,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up to date. Creates
    /// the parent directory if needed. Blocks the calling thread briefly: call it at start.
    pub fn open(path: &Path) -> Result<Self, BackendError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| BackendError::unavailable(BACKEND, e))?;
        }
        let mut conn = Connection::open(path).map_err(sql_error)?;
        configure(&conn)?;
        migrate(&mut conn).map_err(sql_error)?;
        let reader = Connection::open(path).map_err(sql_error)?;
        configure(&reader)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(sql_error)?;
        let writer = Committer::start(conn).map_err(|e| BackendError::unavailable(BACKEND, e))?;
        tracing::info!(path = %path.display(), "sqlite metadata store open");
        Ok(Self {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_owned(),
        })
    }

    /// Runs the write `op` in the committer's next transaction (see [`committer`]).
    async fn write<T, F>(&self, op: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.writer.write(op).await
    }

    /// Runs the read `op` on the reading connection, off the async executor.
    async fn read<T, F>(&self, op: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.reader);
        let task = tokio::task::spawn_blocking(move || {
            // A read changes nothing, so a panic inside `op` leaves the connection usable.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            op(&conn)
        });
        match task.await {
            Ok(result) => result.map_err(sql_error),
            Err(join) => Err(BackendError::internal(BACKEND, join)),
        }
    }
}

fn configure(conn: &Connection) -> Result<(), BackendError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql_error)?;
    // The reading connection and the batching writer rely on WAL's readers-beside-a-writer;
    // SQLite keeps the old journal where the filesystem cannot share WAL's index.
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(BackendError::new(
            BACKEND,
            ErrorKind::Unavailable,
            format!("SQLite cannot use its WAL journal here (it stayed in {mode} mode: WAL needs shared memory beside the file, which network filesystems do not offer); put the data directory on a local disk"),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql_error)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read inside the write transaction, so two processes opening one file cannot both
    // apply the same step.
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (step, sql) in (1..).zip(MIGRATIONS) {
        if version < step {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", step)?;
        }
    }
    tx.commit()
}

/// Maps SQLite's error codes onto the ports' kinds.
fn sql_error(error: rusqlite::Error) -> BackendError {
    use rusqlite::ErrorCode as Code;

    let kind = match error.sqlite_error_code() {
        Some(Code::DatabaseBusy | Code::DatabaseLocked) => ErrorKind::Timeout,
        Some(Code::CannotOpen | Code::SystemIoFailure | Code::DiskFull | Code::ReadOnly) => {
            ErrorKind::Unavailable
        }
        Some(Code::ConstraintViolation) => ErrorKind::Rejected,
        _ => ErrorKind::Internal,
    };
    BackendError::new(BACKEND, kind, error.to_string()).with_source(error)
}

fn select_one(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Option<StoredRow>> {
    let sql = format!("SELECT {COLUMNS} FROM images WHERE {filter}");
    conn.prepare_cached(&sql)?
        .query_row(params, read_row)
        .optional()
}

/// Runs one statement that returns no rows, prepared once per connection.
fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

fn by_id(conn: &Connection, id: ImageId) -> rusqlite::Result<Option<StoredRow>> {
    select_one(conn, "id = ?1", [id.to_string()])
}

fn by_owner(conn: &Connection, owner: &Owner, id: ImageId) -> rusqlite::Result<Option<StoredRow>> {
    select_one(
        conn,
        "id = ?1 AND owner = ?2",
        [id.to_string(), owner.to_string()],
    )
}

fn by_key(conn: &Connection, owner: &Owner, key: &str) -> rusqlite::Result<Option<StoredRow>> {
    select_one(
        conn,
        "owner = ?1 AND idempotency_key = ?2",
        [owner.as_str(), key],
    )
}

/// Re-reads a row the caller just wrote inside the same transaction.
fn reread(conn: &Connection, id: ImageId) -> rusqlite::Result<ImageRecord> {
    by_id(conn, id)?
        .map(|row| row.record)
        .ok_or(rusqlite::Error::QueryReturnedNoRows)
}

fn insert(tx: &Connection, image: &NewImage) -> rusqlite::Result<Result<ImageRecord, ImageRecord>> {
    // The one writer serialises writes, so check-then-insert cannot race; the unique index
    // still backs it up against a second process on the same file.
    if let Some(key) = &image.idempotency_key {
        if let Some(existing) = by_key(tx, &image.owner, key)? {
            return Ok(Err(existing.record));
        }
    }
    let created = micros(to_micros(image.created_at));
    execute(
        tx,
        "INSERT INTO images (id, owner, status, spec, original, variants, attempts, \
             dispatch_at, idempotency_key, created_at, updated_at, callback_url, request_id) \
         VALUES (?1, ?2, 'PENDING', ?3, ?4, '[]', 0, ?5, ?6, ?7, ?7, ?8, ?9)",
        params![
            image.id.to_string(),
            image.owner.as_str(),
            json_text(&image.spec)?,
            json_text(&image.original)?,
            micros(image.dispatch_at),
            image.idempotency_key,
            created,
            image.callback_url,
            image.request_id,
        ],
    )?;
    Ok(Ok(reread(tx, image.id)?))
}

fn list(conn: &Connection, owner: &Owner, query: &ListQuery) -> rusqlite::Result<Page> {
    let limit = page_limit(query.limit);
    let mut filters = vec!["owner = ?".to_owned()];
    let mut values = vec![Value::Text(owner.to_string())];
    if let Some(status) = query.status {
        filters.push("status = ?".to_owned());
        values.push(Value::Text(status.as_str().to_owned()));
    }
    if let Some(after) = query.after {
        filters.push("(created_at < ? OR (created_at = ? AND id < ?))".to_owned());
        let at = micros(to_micros(after.created_at));
        values.extend([
            Value::Integer(at),
            Value::Integer(at),
            Value::Text(after.id.to_string()),
        ]);
    }
    // One row beyond the page says whether a next page exists.
    values.push(Value::Integer(i64::from(limit) + 1));
    let sql = format!(
        "SELECT {COLUMNS} FROM images WHERE {} ORDER BY created_at DESC, id DESC LIMIT ?",
        filters.join(" AND ")
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values), read_row)?;
    let mut items = rows
        .map(|row| row.map(|row| row.record))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(Cursor::of)
    } else {
        None
    };
    Ok(Page { items, next })
}

fn delete(tx: &Connection, owner: &Owner, id: ImageId) -> rusqlite::Result<Option<ImageRecord>> {
    let Some(row) = by_owner(tx, owner, id)? else {
        return Ok(None);
    };
    execute(tx, "DELETE FROM images WHERE id = ?1", [id.to_string()])?;
    Ok(Some(row.record))
}

fn claim(
    tx: &Connection,
    id: ImageId,
    lease: Duration,
    max_attempts: u32,
) -> rusqlite::Result<Claim> {
    let Some(row) = by_id(tx, id)? else {
        return Ok(Claim::Missing);
    };
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
            execute(
                tx,
                &format!(
                    "UPDATE images SET status = 'FAILED', error_code = ?2, error_message = ?3, \
                         lease_expires_at = NULL, dispatch_at = NULL, updated_at = ?4, {} \
                     WHERE id = ?1",
                    webhook_due("?4")
                ),
                params![id.to_string(), error.code, error.message, micros(now)],
            )?;
            Claim::Exhausted(reread(tx, id)?)
        }
        ClaimStep::Take {
            attempt,
            lease_until,
        } => {
            execute(
                tx,
                "UPDATE images SET status = 'PROCESSING', attempts = ?2, \
                     lease_expires_at = ?3, dispatch_at = NULL, updated_at = ?4 \
                 WHERE id = ?1",
                params![id.to_string(), attempt, micros(lease_until), micros(now)],
            )?;
            let record = reread(tx, id)?;
            Claim::Claimed(ClaimedJob { attempt, record })
        }
    };
    Ok(claim)
}

/// Moves the lease of a live attempt on (see [`MetadataStore::renew_lease`]). A lease the
/// relay has taken back is `NULL`, so the guard keeps a re-dispatched job re-dispatched.
fn renew_lease(
    conn: &Connection,
    id: ImageId,
    attempt: u32,
    lease: Duration,
) -> rusqlite::Result<bool> {
    let until = to_micros(later_by(now_micros(), lease));
    let changed = execute(
        conn,
        "UPDATE images SET lease_expires_at = ?1 \
         WHERE id = ?2 AND attempts = ?3 AND status = 'PROCESSING' \
               AND lease_expires_at IS NOT NULL",
        params![micros(until), id.to_string(), attempt],
    )?;
    Ok(changed == 1)
}

/// Runs a worker's write, guarded by its attempt: only the current attempt of a job still
/// in `PROCESSING` may change the row.
fn guarded_update(
    conn: &Connection,
    set: &str,
    id: ImageId,
    attempt: u32,
    values: Vec<Value>,
) -> rusqlite::Result<bool> {
    let sql = format!(
        "UPDATE images SET {set}, lease_expires_at = NULL, updated_at = ? \
         WHERE id = ? AND attempts = ? AND status = 'PROCESSING'"
    );
    let guard = [
        Value::Integer(micros(now_micros())),
        Value::Text(id.to_string()),
        Value::Integer(i64::from(attempt)),
    ];
    let changed = execute(
        conn,
        &sql,
        params_from_iter(values.into_iter().chain(guard)),
    )?;
    Ok(changed == 1)
}

fn error_values(error: &JobError) -> [Value; 2] {
    [
        Value::Text(error.code.clone()),
        Value::Text(error.message.clone()),
    ]
}

fn due_dispatches(
    tx: &Connection,
    now: DateTime<Utc>,
    limit: u32,
) -> rusqlite::Result<Vec<(JobMessage, DateTime<Utc>)>> {
    let now = micros(to_micros(now));
    // An expired lease means its worker died: mark the job due now so the relay's confirm
    // (`mark_dispatched`) has a mark to clear. Dropping the lease keeps the next scan from
    // finding the same job again once the confirm cleared the mark.
    execute(
        tx,
        "UPDATE images SET dispatch_at = ?1, lease_expires_at = NULL \
         WHERE id IN (SELECT id FROM images \
                      WHERE status = 'PROCESSING' AND lease_expires_at <= ?1 \
                      ORDER BY lease_expires_at LIMIT ?2)",
        params![now, limit],
    )?;
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {DISPATCH_COLUMNS} FROM images WHERE dispatch_at <= ?1 \
         ORDER BY dispatch_at, id LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![now, limit], read_dispatch)?;
    rows.collect()
}

fn take_due_webhooks(
    tx: &Connection,
    now: DateTime<Utc>,
    hold: Duration,
    limit: u32,
) -> rusqlite::Result<Vec<DueWebhook>> {
    let now = to_micros(now);
    let held_until = to_micros(later_by(now, hold));
    // The one writer serialises this select and the updates after it, so no other take
    // can see the same marks in between.
    let due = {
        let mut statement = tx.prepare_cached(&format!(
            "SELECT {COLUMNS}, webhook_attempts FROM images WHERE webhook_due_at <= ?1 \
             ORDER BY webhook_due_at, id LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![micros(now), limit], |row| {
            Ok((read_row(row)?.record, row.get::<_, u32>(14)?))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut taken = Vec::with_capacity(due.len());
    for (record, attempts) in due {
        let attempt = attempts.saturating_add(1);
        execute(
            tx,
            "UPDATE images SET webhook_due_at = ?2, webhook_attempts = ?3 WHERE id = ?1",
            params![record.id.to_string(), micros(held_until), attempt],
        )?;
        taken.push(DueWebhook {
            record,
            attempt,
            held_until,
        });
    }
    Ok(taken)
}

/// Ids per statement, well under SQLite's limit on bound parameters.
const IDS_PER_QUERY: usize = 500;

fn existing(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<ImageId>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let marks = vec!["?"; chunk.len()].join(", ");
        // Not kept: its text changes with the number of ids, and the sweeper runs rarely.
        let mut statement =
            conn.prepare(&format!("SELECT id FROM images WHERE id IN ({marks})"))?;
        let rows = statement.query_map(params_from_iter(chunk), |row| row.get::<_, String>(0))?;
        for id in rows {
            // The ids asked for were valid, so the ones found are too.
            if let Ok(id) = id?.parse() {
                found.push(id);
            }
        }
    }
    Ok(found)
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn insert(
        &self,
        image: &NewImage,
    ) -> Result<Result<ImageRecord, ImageRecord>, BackendError> {
        let image = image.clone();
        self.write(move |conn| insert(conn, &image)).await
    }

    async fn get(&self, owner: &Owner, id: ImageId) -> Result<Option<ImageRecord>, BackendError> {
        let owner = owner.clone();
        self.read(move |conn| Ok(by_owner(conn, &owner, id)?.map(|row| row.record)))
            .await
    }

    async fn find_by_idempotency_key(
        &self,
        owner: &Owner,
        key: &str,
    ) -> Result<Option<ImageRecord>, BackendError> {
        let (owner, key) = (owner.clone(), key.to_owned());
        self.read(move |conn| Ok(by_key(conn, &owner, &key)?.map(|row| row.record)))
            .await
    }

    async fn list(&self, owner: &Owner, query: &ListQuery) -> Result<Page, BackendError> {
        let (owner, query) = (owner.clone(), query.clone());
        self.read(move |conn| list(conn, &owner, &query)).await
    }

    async fn delete(
        &self,
        owner: &Owner,
        id: ImageId,
    ) -> Result<Option<ImageRecord>, BackendError> {
        let owner = owner.clone();
        self.write(move |conn| delete(conn, &owner, id)).await
    }

    async fn claim(
        &self,
        id: ImageId,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Claim, BackendError> {
        self.write(move |conn| claim(conn, id, lease, max_attempts))
            .await
    }

    async fn renew_lease(
        &self,
        id: ImageId,
        attempt: u32,
        lease: Duration,
    ) -> Result<bool, BackendError> {
        self.write(move |conn| renew_lease(conn, id, attempt, lease))
            .await
    }

    async fn complete(
        &self,
        id: ImageId,
        attempt: u32,
        done: &Completion,
    ) -> Result<bool, BackendError> {
        let variants = json_text(&done.variants).map_err(sql_error)?;
        let now = Value::Integer(micros(now_micros()));
        self.write(move |conn| {
            let set = format!(
                "status = 'COMPLETED', variants = ?, error_code = NULL, \
                 error_message = NULL, dispatch_at = NULL, {}",
                webhook_due("?")
            );
            guarded_update(conn, &set, id, attempt, vec![Value::Text(variants), now])
        })
        .await
    }

    async fn fail(
        &self,
        id: ImageId,
        attempt: u32,
        error: &JobError,
    ) -> Result<bool, BackendError> {
        let mut values = error_values(error).to_vec();
        values.push(Value::Integer(micros(now_micros())));
        self.write(move |conn| {
            let set = format!(
                "status = 'FAILED', error_code = ?, error_message = ?, dispatch_at = NULL, \
                 {}",
                webhook_due("?")
            );
            guarded_update(conn, &set, id, attempt, values)
        })
        .await
    }

    async fn retry_later(
        &self,
        id: ImageId,
        attempt: u32,
        error: &JobError,
        retry_at: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let mut values = error_values(error).to_vec();
        values.push(Value::Integer(micros(to_micros(retry_at))));
        self.write(move |conn| {
            let set = "status = 'PENDING', error_code = ?, error_message = ?, dispatch_at = ?";
            guarded_update(conn, set, id, attempt, values)
        })
        .await
    }

    async fn mark_dispatched(&self, id: ImageId, due: DateTime<Utc>) -> Result<(), BackendError> {
        let due = micros(to_micros(due));
        self.write(move |conn| {
            execute(
                conn,
                "UPDATE images SET dispatch_at = NULL WHERE id = ?1 AND dispatch_at = ?2",
                params![id.to_string(), due],
            )
            .map(drop)
        })
        .await
    }

    async fn due_dispatches(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(JobMessage, DateTime<Utc>)>, BackendError> {
        self.write(move |conn| due_dispatches(conn, now, limit))
            .await
    }

    async fn redispatch_unfinished(&self, now: DateTime<Utc>) -> Result<u64, BackendError> {
        let now = micros(to_micros(now));
        self.write(move |conn| {
            // Only one engine runs on this file, so a `PROCESSING` job's worker is gone: its
            // lease goes too, or the job would wait for it to expire.
            let changed = execute(
                conn,
                "UPDATE images SET dispatch_at = ?1, \
                     lease_expires_at = CASE WHEN status = 'PROCESSING' THEN NULL \
                                             ELSE lease_expires_at END \
                 WHERE status IN ('PENDING', 'PROCESSING')",
                [now],
            )?;
            Ok(changed as u64)
        })
        .await
    }

    async fn take_due_webhooks(
        &self,
        now: DateTime<Utc>,
        hold: Duration,
        limit: u32,
    ) -> Result<Vec<DueWebhook>, BackendError> {
        // Asked every second and whenever a job ends, and mostly nothing is due: the reading
        // connection answers that without a turn on the one writer, which uploads wait for.
        let at = micros(to_micros(now));
        let any_due = self
            .read(move |conn| {
                conn.prepare_cached("SELECT 1 FROM images WHERE webhook_due_at <= ?1 LIMIT 1")?
                    .exists([at])
            })
            .await?;
        if !any_due {
            return Ok(Vec::new());
        }
        self.write(move |conn| take_due_webhooks(conn, now, hold, limit))
            .await
    }

    async fn settle_webhook(
        &self,
        id: ImageId,
        held_until: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, BackendError> {
        let held_until = micros(to_micros(held_until));
        let next = next.map(|next| micros(to_micros(next)));
        self.write(move |conn| {
            let changed = execute(
                conn,
                "UPDATE images SET webhook_due_at = ?3 WHERE id = ?1 AND webhook_due_at = ?2",
                params![id.to_string(), held_until, next],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn existing(&self, ids: &[ImageId]) -> Result<Vec<ImageId>, BackendError> {
        let ids: Vec<String> = ids.iter().map(ImageId::to_string).collect();
        self.read(move |conn| existing(conn, &ids)).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await?;
        // The writing thread too: a ready store must take writes. An empty transaction
        // writes nothing to the WAL; it waits (up to the busy timeout) only while a second
        // process holds the file's write lock.
        self.write(|_| Ok(())).await
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
}
