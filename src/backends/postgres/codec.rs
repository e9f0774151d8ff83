//! How an `images` row maps to and from PostgreSQL values (see `sql/V*.sql`).

use chrono::{DateTime, Utc};
use pixmill_actors::ports::{BackendError, ErrorKind};
use pixmill_actors::record::StoredVariant;
use pixmill_actors::{ImageId, ImageRecord, JobError, JobSpec, Owner, Status, StoredImage};
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use super::errors::pg_error;
use super::BACKEND;

/// The columns every read selects, in the order [`read_row`] expects.
pub const COLUMNS: &str = "id, owner, status, spec, original, variants, error_code, \
     error_message, attempts, created_at, updated_at, lease_expires_at, callback_url, \
     dispatch_at";

/// A row as read: the record plus the lease and the dispatch mark, which only claims look at.
pub struct StoredRow {
    pub record: ImageRecord,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub dispatch_at: Option<DateTime<Utc>>,
}

/// Decodes a row selected with [`COLUMNS`]. A value that does not decode (a row written
/// by hand, a newer schema) is an `Internal` error naming what was wrong.
pub fn read_row(row: &Row) -> Result<StoredRow, BackendError> {
    let error = match (
        row.try_get::<_, Option<String>>(6).map_err(pg_error)?,
        row.try_get::<_, Option<String>>(7).map_err(pg_error)?,
    ) {
        (Some(code), Some(message)) => Some(JobError { code, message }),
        _ => None,
    };
    let owner: String = row.try_get(1).map_err(pg_error)?;
    let status: String = row.try_get(2).map_err(pg_error)?;
    let attempts: i32 = row.try_get(8).map_err(pg_error)?;
    let Json(spec): Json<JobSpec> = row.try_get(3).map_err(pg_error)?;
    let Json(original): Json<StoredImage> = row.try_get(4).map_err(pg_error)?;
    let Json(variants): Json<Vec<StoredVariant>> = row.try_get(5).map_err(pg_error)?;
    let record = ImageRecord {
        id: ImageId::from_uuid(row.try_get::<_, Uuid>(0).map_err(pg_error)?),
        owner: Owner::parse(owner).map_err(corrupt)?,
        status: status.parse::<Status>().map_err(corrupt)?,
        spec,
        original,
        variants,
        error,
        attempts: u32::try_from(attempts).map_err(corrupt)?,
        created_at: row.try_get(9).map_err(pg_error)?,
        updated_at: row.try_get(10).map_err(pg_error)?,
        callback_url: row.try_get(12).map_err(pg_error)?,
    };
    Ok(StoredRow {
        record,
        lease_expires_at: row.try_get(11).map_err(pg_error)?,
        dispatch_at: row.try_get(13).map_err(pg_error)?,
    })
}

/// An attempt number as stored; one beyond `i32` can never match a row.
pub fn attempt_param(attempt: u32) -> Option<i32> {
    i32::try_from(attempt).ok()
}

fn corrupt(error: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError::new(BACKEND, ErrorKind::Internal, "undecodable images row").with_source(error)
}
